#ifndef TAT_DISTILL_LAYER_H
#define TAT_DISTILL_LAYER_H
/*
 * Darknet glue of the TaT distillation layers (the math is in tat.h):
 *   [tat_distill]     patch-group TaT (grid 1,1 = the full one-to-all form)
 *   [anchor_distill]  anchor-point TaT, with its own embeddings or those of a [tat_distill]
 * Both pass their input through unchanged (output and delta alias the previous layer's). With
 * a teacher attached (network.teacher) and in training, they add the distillation gradient to
 * the delta of the student layer `from`; otherwise they do nothing at all. One set of layer
 * functions serves both types.
 */
#include <limits.h>

#include "darknet.h"
#include "distill_common.h"
#include "tat.h"

/* An optional integer field that was not given. */
#define DISTILL_UNSET INT_MIN

/* The query/value embeddings (student map -> teacher channels) and the key. from and
 * teacher_layer as written in the cfg: negative counts back (from this layer, from the
 * teacher's end). */
typedef struct {
    int from, teacher_layer, teacher_channels;
    int ksize;        /* 1 or 3 */
    int key_learned;  /* 0: the teacher map itself is the key */
    int bn_per_image; /* 0: BatchNorm statistics over the batch, 1: per image */
} distill_embedding_options;

/* How a term computes its attention (the cfg's attention=): auto streams when the
 * materialised matrices would exceed the math's memory budget (tat_term_prefers_streaming on
 * the host; on a device, the two N x N matrices per block that the device path keeps). */
typedef enum { DISTILL_ATTENTION_AUTO, DISTILL_ATTENTION_MATERIALIZED, DISTILL_ATTENTION_STREAMING } distill_attention_mode;

typedef struct {
    distill_embedding_options emb;
    distill_attention_mode attention;
    int grid_h, grid_w, groups;
    float loss_weight;
} distill_tat_options;

typedef struct {
    /* an earlier [tat_distill] (as written) whose embeddings this layer uses, or DISTILL_UNSET
       for its own; when shared, emb.from/teacher_layer/teacher_channels are DISTILL_UNSET or
       must equal the shared layer's, and emb's other fields are not used */
    int embeddings;
    distill_embedding_options emb;
    distill_attention_mode attention;
    int anchor_h, anchor_w;
    float loss_weight;
} distill_anchor_options;

/* Weights file: for each embedding the layer owns (query, value, then key when learned):
 * BN biases, BN scales, conv weights; nothing for a layer sharing another's embeddings. */
extern const distill_type_ops distill_tat_ops, distill_anchor_ops;

/* Build a layer from options (the parsers read them from a cfg section first). A problem is one
 * line "<cfg>: [<section>] (layer N) <field>: <problem>", exit 1. */
layer make_tat_distill_layer(network *net, int index, const distill_tat_options *o);
layer make_anchor_distill_layer(network *net, int index, const distill_anchor_options *o);

void forward_tat_distill_layer(const layer l, network net);
void backward_tat_distill_layer(const layer l, network net);
void update_tat_distill_layer(const layer l, update_args a);
#ifdef GPU
void forward_tat_distill_layer_gpu(const layer l, network net);
void backward_tat_distill_layer_gpu(const layer l, network net);
void update_tat_distill_layer_gpu(const layer l, update_args a);
#endif

/* The distilled map's size (the student layer `from`). */
void distill_tat_map_size(const layer *l, int *h, int *w);
/* What "one-to-many" means, for one student position (y, x) of image 0: the attention weights
 * over the teacher's positions, from the maps the student and teacher forwards left in their
 * layers. q and k are recomputed (training-mode BatchNorm over the batch: the image itself when
 * the batch is 1), then drawn by tat_term_attention_map (tat.h): map (h*w floats) gets each
 * teacher position's weight; for patch groups the key at an intra-patch offset spans all
 * patches of the group, so its weight is drawn on each of them; for anchors, on the anchor's
 * whole window; 0 elsewhere. Returns NULL, or a message saying why there is no map (no teacher
 * attached, the position is outside the term). */
const char *distill_tat_attention_map(const layer *l, network *net, int y, int x, float *map);

#endif
