#ifndef DISTILL_PLUGIN_H
#define DISTILL_PLUGIN_H
/*
 * One entry point for every distillation layer type (listed in distill_layer_types.h):
 * Darknet's parser, weights reader/writer, free_layer and get_layer_string call these
 * (patch 0007), and so does `darknet distill`; they dispatch to the type's own functions
 * (distill_layer.c: [tat_distill], [anchor_distill]; baseline_layer.c: [kd_distill],
 * [fitnet_distill]).
 */
#include <stdio.h>

#include "darknet.h"
#include "list.h"

int is_distill_layer_type(LAYER_TYPE t);
/* "[kd_distill]" -> KD_DISTILL; BLANK for a section that is not one of ours. */
LAYER_TYPE distill_layer_type_of_section(const char *section);
/* "kd_distill" for KD_DISTILL (no brackets). */
const char *distill_layer_type_name(LAYER_TYPE t);

/* Parses section `t` as layer `index` of `net`. A bad field exits 1 with one line naming the
 * cfg, the section and the field. */
layer parse_distill_section(LAYER_TYPE t, list *options, network *net, int index);
void save_distill_section_weights(layer l, FILE *fp);
void load_distill_section_weights(layer l, FILE *fp);
void free_distill_section(layer l);

int is_distill_layer(const layer *l);
/* Weighted loss of the last forward, averaged over images (0 when not distilling). */
float distill_layer_loss(const layer *l);
/* Learned parameters the layer owns, and its forward FLOPs per image. */
size_t distill_layer_params(const layer *l);
double distill_layer_flops(const layer *l);

/* A non-finite distillation loss stops training before this step's update and before any
 * save, so the backups on disk stay the last good ones: one line naming the cfg, the layer
 * and the iteration, exit 1. */
void distill_stop_if_not_finite(const network *net, const layer *l, int index, float loss);

#endif
