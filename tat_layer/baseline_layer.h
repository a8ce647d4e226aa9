#ifndef BASELINE_LAYER_H
#define BASELINE_LAYER_H
/*
 * Darknet glue of the two baseline distillation methods (the math is in tat.h), so that they
 * run through the same `darknet distill` path as TaT:
 *   [kd_distill]      logit distillation (Hinton et al. 2015): T^2 * KL(softmax(t/T) || softmax(s/T))
 *   [fitnet_distill]  feature distillation (FitNets, Romero et al. 2015): a learned 1x1 conv + BN
 *                     lifts the student map to the teacher's channels; MSE against the teacher map
 * Like the TaT layers they pass their input through unchanged (output and delta alias the
 * previous layer's) and, with a teacher attached and in training, add their gradient to the
 * delta of the student layer `from`; otherwise they do nothing at all.
 */
#include <stdio.h>

#include "darknet.h"
#include "list.h"

layer parse_kd_distill(list *options, network *net, int index);
layer parse_fitnet_distill(list *options, network *net, int index);

void forward_baseline_layer(const layer l, network net);
void backward_baseline_layer(const layer l, network net);
void update_baseline_layer(const layer l, update_args a);
#ifdef GPU
void forward_baseline_layer_gpu(const layer l, network net);
void backward_baseline_layer_gpu(const layer l, network net);
void update_baseline_layer_gpu(const layer l, update_args a);
#endif

/* Weights file: [fitnet_distill] writes its projection (BN biases, BN scales, conv weights);
 * [kd_distill] has no parameters and writes nothing. */
void save_baseline_weights(layer l, FILE *fp);
void load_baseline_weights(layer l, FILE *fp);
void free_baseline_layer(layer l);

float baseline_layer_loss(const layer *l);
size_t baseline_layer_params(const layer *l);
double baseline_layer_flops(const layer *l);

#endif
