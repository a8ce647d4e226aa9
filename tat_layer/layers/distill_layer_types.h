#ifndef DISTILL_LAYER_TYPES_H
#define DISTILL_LAYER_TYPES_H
/*
 * The plugin's cfg layer types, as an X-macro: X(LAYER_TYPE value, section name without the
 * brackets). They take Darknet's plugin values PLUGIN_LAYER, PLUGIN_LAYER + 1, ... (struct
 * darknet_plugin in darknet.h), so adding a type here and its functions to the table in
 * distill_plugin.c needs no Darknet patch.
 */
#include "darknet.h"

#define DISTILL_LAYER_TYPES(X)               \
    X(TAT_DISTILL, "tat_distill")           \
    X(ANCHOR_DISTILL, "anchor_distill")     \
    X(KD_DISTILL, "kd_distill")             \
    X(FITNET_DISTILL, "fitnet_distill")

enum { /* int constants: compared with LAYER_TYPE values */
    DISTILL_LAYER_BEFORE_FIRST = PLUGIN_LAYER - 1,
#define DISTILL_LAYER_ENUM(type, section) type,
    DISTILL_LAYER_TYPES(DISTILL_LAYER_ENUM)
#undef DISTILL_LAYER_ENUM
};

#endif
