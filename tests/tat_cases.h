#ifndef TAT_CASES_H
#define TAT_CASES_H
/* The one table of distillation cases on odd shapes. Every backend runs every case:
 *   tests/test_tat_math.c           the composed CPU pipeline (student embeddings q, v, the key
 *                                   embedding or identity key, the terms, the loss), finite
 *                                   differences and invariants;
 *   tests/test_kernel_emulation.c   the GPU steps emulated on the CPU against tat.c: the student
 *                                   embedding and each term of the case;
 *   tests/gpu/test_gpu.c            the same, on a device.
 * A case is one pipeline: a patch term when grid_h > 0, an anchor term when anchor_h > 0 (at
 * least one of them). The term-level backends feed each term random q, k, v maps of teacher
 * shape (batch x teacher_c x h x w); the pipeline computes them from a student map.
 *
 * The first five entries are test_tat_math's original pipeline cases: their random inputs come
 * from the sequence that test shares with the checks after them, so they stay first, in this
 * order and unchanged. Add new cases at the end: there, each draws from a seed of its own and
 * changes no other check's inputs. */
#include <stdio.h>

#include "tat.h"

typedef struct {
    const char *name;                /* short tag, unique: names the checks of every backend */
    int batch, student_c, teacher_c, h, w;
    int grid_h, grid_w, groups;      /* patch-group term; grid_h 0 = none (1,1,1 = full)     */
    int anchor_h, anchor_w;          /* anchor term; 0 = none                                */
    int key_learned;                 /* 1: 1x1 key embedding of the teacher (d_k computed)   */
    int ksize;                       /* student embeddings: 1 or 3                           */
    int per_image;                   /* BatchNorm statistics per image (1) or per batch (0)  */
    float patch_weight, anchor_weight; /* the pipeline's loss weights; 0 = 1                 */
    float qk_scale;                  /* term-level tests: q, k uniform in +-qk_scale; 0 = 1.5 */
} tat_case;

static const tat_case tat_cases[] = {
    /* test_tat_math's original five (see above) */
    {.name = "groups_anchors_learnedkey_k3_perimage_7x9", .batch = 2, .student_c = 3,
     .teacher_c = 4, .h = 7, .w = 9, .grid_h = 2, .grid_w = 3, .groups = 3, .anchor_h = 3,
     .anchor_w = 2, .key_learned = 1, .ksize = 3, .per_image = 1, .patch_weight = 1.0f,
     .anchor_weight = 0.5f},
    {.name = "groups_anchors_identity_k1_batch_5x7", .batch = 2, .student_c = 4, .teacher_c = 3,
     .h = 5, .w = 7, .grid_h = 2, .grid_w = 2, .groups = 2, .anchor_h = 2, .anchor_w = 3,
     .key_learned = 0, .ksize = 1, .per_image = 0, .patch_weight = 0.9f, .anchor_weight = 0.7f},
    {.name = "full_identity_k3_batch_6x5", .batch = 3, .student_c = 3, .teacher_c = 5, .h = 6,
     .w = 5, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 0, .ksize = 3, .per_image = 0,
     .patch_weight = 1.0f},
    {.name = "anchors_learnedkey_k1_batch_11x6", .batch = 2, .student_c = 2, .teacher_c = 3,
     .h = 11, .w = 6, .anchor_h = 4, .anchor_w = 2, .key_learned = 1, .ksize = 1, .per_image = 0,
     .anchor_weight = 0.8f},
    {.name = "onegroup_grid3x2_learnedkey_k1_perimage_9x8", .batch = 2, .student_c = 3,
     .teacher_c = 2, .h = 9, .w = 8, .grid_h = 3, .grid_w = 2, .groups = 1, .key_learned = 1,
     .ksize = 1, .per_image = 1, .patch_weight = 1.2f},

    /* the term shapes the emulation and GPU tests had: grids and anchors that leave rows and
     * columns over, groups > 1, full one-to-all */
    {.name = "groups2_anchors_learnedkey_k3_batch_11x13", .batch = 2, .student_c = 4,
     .teacher_c = 3, .h = 11, .w = 13, .grid_h = 3, .grid_w = 4, .groups = 2, .anchor_h = 4,
     .anchor_w = 5, .key_learned = 1, .ksize = 3, .per_image = 0},
    {.name = "groups3_identity_k1_perimage_9x10", .batch = 3, .student_c = 3, .teacher_c = 2,
     .h = 9, .w = 10, .grid_h = 2, .grid_w = 3, .groups = 3, .key_learned = 0, .ksize = 1,
     .per_image = 1},
    {.name = "full_learnedkey_k1_perimage_5x7", .batch = 2, .student_c = 3, .teacher_c = 4, .h = 5,
     .w = 7, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 1, .ksize = 1, .per_image = 1},
    /* (anchors alone on this shape leave q a gradient too small for the pipeline's finite
     * differences: the identity key pooled over 3x4 barely varies) */
    {.name = "groups3_anchors_identity_k3_perimage_10x9", .batch = 3, .student_c = 4,
     .teacher_c = 2, .h = 10, .w = 9, .grid_h = 3, .grid_w = 2, .groups = 3, .anchor_h = 3,
     .anchor_w = 2, .key_learned = 0, .ksize = 3, .per_image = 1},
    /* N = 323 > 256: a row longer than a block of threads, each thread takes several columns */
    {.name = "full_N323_learnedkey_k1_batch_17x19", .batch = 1, .student_c = 3, .teacher_c = 2,
     .h = 17, .w = 19, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 1, .ksize = 1,
     .per_image = 0},
    {.name = "groups2_N323_learnedkey_k1_perimage_34x38", .batch = 1, .student_c = 3,
     .teacher_c = 4, .h = 34, .w = 38, .grid_h = 2, .grid_w = 2, .groups = 2, .key_learned = 1,
     .ksize = 1, .per_image = 1},
    /* logits in the hundreds, as with BN-normalised embeddings of 256+ channels: expf would
     * overflow without the max subtracted (term-level tests; the pipeline normalises its own) */
    {.name = "full_logits500_learnedkey_k3_perimage_4x5", .batch = 2, .student_c = 3,
     .teacher_c = 8, .h = 4, .w = 5, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 1,
     .ksize = 3, .per_image = 1, .qk_scale = 12.f},
    {.name = "full_logits100_learnedkey_k1_batch_7x7", .batch = 2, .student_c = 5, .teacher_c = 8,
     .h = 7, .w = 7, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 1, .ksize = 1,
     .per_image = 0, .qk_scale = 6.f},

    /* the embedding shapes the emulation and GPU tests had, each in both BN modes */
    {.name = "groups4_identity_k1_batch_7x6", .batch = 3, .student_c = 5, .teacher_c = 4, .h = 7,
     .w = 6, .grid_h = 2, .grid_w = 2, .groups = 4, .key_learned = 0, .ksize = 1, .per_image = 0},
    {.name = "anchors_learnedkey_k1_perimage_7x6", .batch = 3, .student_c = 5, .teacher_c = 4,
     .h = 7, .w = 6, .anchor_h = 3, .anchor_w = 4, .key_learned = 1, .ksize = 1, .per_image = 1},
    {.name = "groups3_anchors_learnedkey_k3_batch_5x9", .batch = 2, .student_c = 3, .teacher_c = 6,
     .h = 5, .w = 9, .grid_h = 1, .grid_w = 3, .groups = 3, .anchor_h = 2, .anchor_w = 2,
     .key_learned = 1, .ksize = 3, .per_image = 0, .patch_weight = 0.6f, .anchor_weight = 1.3f},
    {.name = "onegroup_grid2x2_identity_k3_perimage_5x9", .batch = 2, .student_c = 3,
     .teacher_c = 6, .h = 5, .w = 9, .grid_h = 2, .grid_w = 2, .groups = 1, .key_learned = 0,
     .ksize = 3, .per_image = 1},
    {.name = "groups3_grid3x3_learnedkey_k1_batch_7x9", .batch = 3, .student_c = 5, .teacher_c = 4,
     .h = 7, .w = 9, .grid_h = 3, .grid_w = 3, .groups = 3, .key_learned = 1, .ksize = 1,
     .per_image = 0},
    {.name = "anchors_identity_k1_perimage_7x9", .batch = 3, .student_c = 5, .teacher_c = 4,
     .h = 7, .w = 9, .anchor_h = 2, .anchor_w = 4, .key_learned = 0, .ksize = 1, .per_image = 1},
    {.name = "full_identity_k3_batch_7x9", .batch = 3, .student_c = 5, .teacher_c = 4, .h = 7,
     .w = 9, .grid_h = 1, .grid_w = 1, .groups = 1, .key_learned = 0, .ksize = 3, .per_image = 0},
    {.name = "groups6_anchors_learnedkey_k3_perimage_7x9", .batch = 3, .student_c = 5,
     .teacher_c = 4, .h = 7, .w = 9, .grid_h = 2, .grid_w = 3, .groups = 6, .anchor_h = 3,
     .anchor_w = 3, .key_learned = 1, .ksize = 3, .per_image = 1},
};

#define TAT_NUM_CASES ((int)(sizeof tat_cases / sizeof tat_cases[0]))

static inline float tat_case_patch_weight(const tat_case *c)
{
    return c->patch_weight ? c->patch_weight : 1.f;
}
static inline float tat_case_anchor_weight(const tat_case *c)
{
    return c->anchor_weight ? c->anchor_weight : 1.f;
}
static inline float tat_case_qk_scale(const tat_case *c)
{
    return c->qk_scale ? c->qk_scale : 1.5f;
}

/* "b2 c4->3 11x13 k3 BN batch" (student embedding) */
static inline void tat_case_embedding_desc(char *buf, size_t n, const tat_case *c)
{
    snprintf(buf, n, "b%d c%d->%d %dx%d k%d BN %s", c->batch, c->student_c, c->teacher_c, c->h,
             c->w, c->ksize, c->per_image ? "per image" : "batch");
}

/* "b2 c3 11x13 grid 3,4 groups 2, learned key" or "... anchors 4,5, identity key" */
static inline void tat_case_term_desc(char *buf, size_t n, const tat_case *c, int anchors)
{
    if (anchors)
        snprintf(buf, n, "b%d c%d %dx%d anchors %d,%d, %s key", c->batch, c->teacher_c, c->h, c->w,
                 c->anchor_h, c->anchor_w, c->key_learned ? "learned" : "identity");
    else
        snprintf(buf, n, "b%d c%d %dx%d grid %d,%d groups %d, %s key", c->batch, c->teacher_c, c->h,
                 c->w, c->grid_h, c->grid_w, c->groups, c->key_learned ? "learned" : "identity");
}

/* The case's patch term (anchors 0) or anchor term as a geometry, and "<name>: <kind> term
 * (<desc>)" in what; returns tat_term_geom_*'s message when the geometry is rejected. */
static inline const char *tat_case_term(const tat_case *c, int anchors, tat_term_geom *g,
                                        char *what, size_t n)
{
    char desc[120];
    tat_case_term_desc(desc, sizeof(desc), c, anchors);
    snprintf(what, n, "%s: %s term (%s)", c->name, anchors ? "anchor" : "patch", desc);
    return anchors ? tat_term_geom_anchor(g, c->batch, c->teacher_c, c->h, c->w, c->anchor_h, c->anchor_w)
                   : tat_term_geom_patch(g, c->batch, c->teacher_c, c->h, c->w, c->grid_h, c->grid_w,
                                         c->groups);
}

#endif
