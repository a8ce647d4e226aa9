#ifndef FITNET_DISTILL_LAYER_H
#define FITNET_DISTILL_LAYER_H
/*
 * [fitnet_distill]: feature distillation (FitNets, Romero et al. 2015), the one-to-one baseline
 * TaT is compared with: a learned 1x1 conv + BN lifts the student map to the teacher's channels;
 * loss_weight * MSE against the teacher map at the same position. Like every distillation layer
 * it passes its input through unchanged and, with a teacher attached and in training, adds its
 * gradient to the delta of the student layer `from`.
 */
#include "darknet.h"
#include "distill_common.h"

typedef struct {
    int from, teacher_layer; /* as written: negative counts back */
    int teacher_channels;
    int bn_per_image;        /* 0: BatchNorm statistics over the batch, 1: per image */
    float loss_weight;
} distill_fitnet_options;

/* Weights file: the projection's BN biases, BN scales, conv weights. */
extern const distill_type_ops distill_fitnet_ops;

layer make_fitnet_distill_layer(network *net, int index, const distill_fitnet_options *o);
void forward_fitnet_distill_layer(const layer l, network net);
void backward_fitnet_distill_layer(const layer l, network net);
void update_fitnet_distill_layer(const layer l, update_args a);
#ifdef GPU
void forward_fitnet_distill_layer_gpu(const layer l, network net);
void backward_fitnet_distill_layer_gpu(const layer l, network net);
void update_fitnet_distill_layer_gpu(const layer l, update_args a);
#endif

#endif
