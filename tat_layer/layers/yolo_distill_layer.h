#ifndef YOLO_DISTILL_LAYER_H
#define YOLO_DISTILL_LAYER_H
/*
 * [yolo_distill]: detection KD on YOLOv3 outputs, objectness-scaled distillation (Mehta and
 * Ozturk 2018; the math is tat_yolo_kd_* in core/yolo_kd.h): the student's objectness against
 * the teacher's, and its class probabilities against the teacher's weighted by the teacher's
 * objectness, loss_weight * the sum over anchors and cells, mean over images. Put it between
 * the student's convolution and its [yolo] (from=-1); teacher_layer names the teacher's [yolo]
 * of the same stride (the same map size, anchors per cell and classes). Like every distillation
 * layer it passes its input through unchanged and, with a teacher attached and in training,
 * adds its gradient to the delta of the student layer `from`.
 */
#include "darknet.h"
#include "distill_common.h"

typedef struct {
    int from, teacher_layer; /* as written: negative counts back */
    float loss_weight;
} distill_yolo_options;

extern const distill_type_ops distill_yolo_ops;

layer make_yolo_distill_layer(network *net, int index, const distill_yolo_options *o);
void forward_yolo_distill_layer(const layer l, network net);
void backward_yolo_distill_layer(const layer l, network net);
#ifdef GPU
void forward_yolo_distill_layer_gpu(const layer l, network net);
void backward_yolo_distill_layer_gpu(const layer l, network net);
#endif

#endif
