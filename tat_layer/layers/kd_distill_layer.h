#ifndef KD_DISTILL_LAYER_H
#define KD_DISTILL_LAYER_H
/*
 * [kd_distill]: logit distillation (Hinton et al. 2015), the baseline TaT is compared with:
 * loss_weight * T^2 * KL(softmax(t/T) || softmax(s/T)) per image (the math is tat_kd_* in tat.h).
 * Like every distillation layer it passes its input through unchanged and, with a teacher
 * attached and in training, adds its gradient to the delta of the student layer `from`.
 */
#include "darknet.h"
#include "distill_common.h"

typedef struct {
    int from, teacher_layer; /* as written: negative counts back */
    float temperature;
    float loss_weight;
} distill_kd_options;

extern const distill_type_ops distill_kd_ops;

layer make_kd_distill_layer(network *net, int index, const distill_kd_options *o);
void forward_kd_distill_layer(const layer l, network net);
void backward_kd_distill_layer(const layer l, network net);
#ifdef GPU
void forward_kd_distill_layer_gpu(const layer l, network net);
void backward_kd_distill_layer_gpu(const layer l, network net);
#endif

#endif
