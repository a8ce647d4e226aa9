#ifndef DISTILL_LAYER_TYPES_H
#define DISTILL_LAYER_TYPES_H
/*
 * The plugin's cfg layer types, as an X-macro: X(LAYER_TYPE value, section name without the
 * brackets). Darknet's darknet.h expands it into its LAYER_TYPE enum (patch 0007), so adding a
 * type here and its functions to the table in distill_plugin.c needs no Darknet patch.
 * Included by darknet.h before anything is declared: macros only.
 */
#define DISTILL_LAYER_TYPES(X)               \
    X(TAT_DISTILL, "tat_distill")           \
    X(ANCHOR_DISTILL, "anchor_distill")     \
    X(KD_DISTILL, "kd_distill")             \
    X(FITNET_DISTILL, "fitnet_distill")

#endif
