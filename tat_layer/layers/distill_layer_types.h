#ifndef DISTILL_LAYER_TYPES_H
#define DISTILL_LAYER_TYPES_H
/*
 * The plugin's cfg layer types, as an X-macro: X(LAYER_TYPE value, section name without the
 * brackets). They take Darknet's plugin values PLUGIN_LAYER, PLUGIN_LAYER + 1, ... (struct
 * darknet_plugin in darknet.h), so adding a type here (its value below) and its functions to
 * the table in distill_plugin.c needs no Darknet patch.
 */
#include "darknet.h"

#define DISTILL_LAYER_TYPES(X)               \
    X(TAT_DISTILL, "tat_distill")           \
    X(ANCHOR_DISTILL, "anchor_distill")     \
    X(KD_DISTILL, "kd_distill")             \
    X(FITNET_DISTILL, "fitnet_distill")     \
    X(YOLO_DISTILL, "yolo_distill")

/* LAYER_TYPE values, so that comparing them with a layer's type needs no cast */
#define TAT_DISTILL ((LAYER_TYPE)(PLUGIN_LAYER + 0))
#define ANCHOR_DISTILL ((LAYER_TYPE)(PLUGIN_LAYER + 1))
#define KD_DISTILL ((LAYER_TYPE)(PLUGIN_LAYER + 2))
#define FITNET_DISTILL ((LAYER_TYPE)(PLUGIN_LAYER + 3))
#define YOLO_DISTILL ((LAYER_TYPE)(PLUGIN_LAYER + 4))

#endif
