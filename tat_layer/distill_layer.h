#ifndef DISTILL_LAYER_H
#define DISTILL_LAYER_H
/*
 * Darknet glue of the TaT distillation layers (the math is in tat.h):
 *   [tat_distill]     patch-group TaT (grid 1,1 = the full one-to-all form)
 *   [anchor_distill]  anchor-point TaT, with its own embeddings or those of a [tat_distill]
 * Both pass their input through unchanged (output and delta alias the previous layer's). With
 * a teacher attached (network.teacher) and in training, they add the distillation gradient to
 * the delta of the student layer `from`; otherwise they do nothing at all.
 */
#include <stdio.h>

#include "darknet.h"
#include "list.h"

layer parse_tat_distill(list *options, network *net, int index);
layer parse_anchor_distill(list *options, network *net, int index);

void forward_distill_layer(const layer l, network net);
void backward_distill_layer(const layer l, network net);
void update_distill_layer(const layer l, update_args a);
#ifdef GPU
void forward_distill_layer_gpu(const layer l, network net);
void backward_distill_layer_gpu(const layer l, network net);
void update_distill_layer_gpu(const layer l, update_args a);
/* sync_layer_hook (patch 0031): averages a distillation layer's embeddings over the GPU
   replicas; returns 0 for any other layer, which Darknet then syncs itself. */
int distill_sync_layer(network **nets, int n, int j);
#endif

/* Weights file: for each embedding the layer owns (query, value, then key when learned):
 * BN biases, BN scales, conv weights; nothing for a layer sharing another's embeddings. */
void save_distill_weights(layer l, FILE *fp);
void load_distill_weights(layer l, FILE *fp);
void free_distill_layer(layer l);

int is_distill_layer(const layer *l);
/* 0 for NaN and +-Inf; reliable under -ffast-math, unlike isfinite(). */
int distill_finite(float x);
/* Weighted loss of the last forward, averaged over images. */
float distill_layer_loss(const layer *l);
/* Learned parameters the layer owns, and its forward FLOPs per image. */
size_t distill_layer_params(const layer *l);
double distill_layer_flops(const layer *l);

#endif
