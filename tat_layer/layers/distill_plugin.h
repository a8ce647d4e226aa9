#ifndef DISTILL_PLUGIN_H
#define DISTILL_PLUGIN_H
/*
 * One entry point for every distillation layer type (listed in distill_layer_types.h):
 * Darknet's parser, weights reader/writer, free_layer, get_layer_string and multi-GPU sync
 * call these (patches 0007, 0031), and so does `darknet distill`; they dispatch through one
 * table of per-type functions to tat_distill_layer.c ([tat_distill], [anchor_distill]),
 * kd_distill_layer.c and fitnet_distill_layer.c.
 */
#include <stdio.h>

#include "darknet.h"
#include "distill_common.h" /* type names: distill_is_layer_type, distill_layer_type_name, ... */
#include "list.h"

/* Parses section `t` as layer `index` of `net`. A bad field exits 1 with one line naming the
 * cfg, the section and the field. */
layer distill_parse_section(LAYER_TYPE t, list *options, network *net, int index);
void distill_save_section_weights(layer l, FILE *fp);
void distill_load_section_weights(layer l, FILE *fp);
void distill_free_section(layer l);
#ifdef GPU
/* Averages layer j's learned parameters over the n GPU replicas (Darknet's sync_layer only
 * knows its own layer types). */
void distill_sync_section(network **nets, int n, int j);
#endif

int distill_is_layer(const layer *l);
/* The section name of one of the plugin's types, NULL for any other type. */
const char *distill_layer_name(LAYER_TYPE t);
/* Called by load_weights_upto (patch 0051) after the header, with the bytes left in the file:
 * 1 when they fit layers start..cutoff-1 without the distillation layers (whole, or cut at a
 * layer boundary) but not with them, i.e. a student's weights from before distillation; the
 * loader then skips the distillation layers, which keep their initial values, and one line
 * says so. 0 otherwise (the file loads as before). */
int distill_skip_weights(network *net, const char *filename, int start, int cutoff, long bytes);
/* 1 when the last weights file loaded held no weights for the distillation sections (they
 * kept their fresh initialisation: distill_skip_weights loaded the file around them). */
int distill_weights_skipped_sections(void);
/* Weighted loss of the last forward, averaged over images (0 when not distilling). */
float distill_layer_loss(const layer *l);
/* Learned parameters the layer owns, and its forward FLOPs per image. */
size_t distill_layer_params(const layer *l);
double distill_layer_flops(const layer *l);
/* The layer's learned parameters (grads = 0) or gradients (grads = 1), host or device arrays. */
void distill_layer_tensors(const layer *l, int grads, tat_tensor_list *host, tat_tensor_list *device);

#endif
