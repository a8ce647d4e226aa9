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
#include "tat.h"

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

/* 0 for NaN and +-Inf; reliable under -ffast-math, unlike isfinite(). */
int distill_finite(float x);
/* Weighted loss of the last forward, averaged over images. */
float tat_distill_layer_loss(const layer *l);
/* Learned parameters the layer owns, and its forward FLOPs per image. */
size_t tat_distill_layer_params(const layer *l);
double tat_distill_layer_flops(const layer *l);

/* Shared with the other distillation layer types (baseline_layer.c). A bad field is reported
 * as one line "<cfg>: [<section>] (layer N) <field>: <problem>", exit 1. */
void cfg_fail(network *net, int index, LAYER_TYPE t, const char *field, const char *fmt, ...);
/* Fails on a field that is neither in `known` (NULL-terminated) nor one of Darknet's own. */
void check_fields(list *options, network *net, int index, LAYER_TYPE t, const char **known);
int int_field(list *options, network *net, int index, LAYER_TYPE t, const char *field, int def,
              int required);
float float_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                  float def);
/* 0 for `zero` (or absent), 1 for `one` */
int choice_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                 const char *zero, const char *one);
/* A student layer index: negative counts back from this layer; must be earlier. */
int student_index(network *net, int index, LAYER_TYPE t, int v);
/* SGD step of an embedding as Darknet's convolution with batch_normalize does it. */
void update_embedding(tat_embedding *e, update_args a, float learning_rate);
/* Weights file record of an embedding: BN biases, BN scales, conv weights. */
void embedding_io(tat_embedding *e, FILE *fp, int save);

/* The distilled map's size (the student layer `from`). */
void distill_layer_map_size(const layer *l, int *h, int *w);
/* What "one-to-many" means, for one student position (y, x) of image 0: the attention weights
 * over the teacher's positions, from the maps the student and teacher forwards left in their
 * layers. q and k are recomputed (training-mode BatchNorm over the batch: the image itself when
 * the batch is 1). map (h*w floats) gets each teacher position's weight; for patch groups the
 * key at an intra-patch offset spans all patches of the group, so its weight is drawn on each
 * of them; for anchors, on the anchor's whole window; 0 elsewhere. Returns NULL, or a message
 * saying why there is no map (no teacher attached, the position is outside the term). */
const char *distill_layer_attention(const layer *l, network *net, int y, int x, float *map);

#endif
