/* The backend's threaded [maxpool], [shortcut] and Adam update (tat_layer/backend/backend_passes.c)
 * against Darknet's own functions in one binary. They promise Darknet's results bit for bit
 * (disjoint pieces, Darknet's arithmetic in Darknet's order), so every array is compared
 * exactly: forward outputs and maxpool indexes, and after a backward from the same delta the
 * gradients added into the (pre-filled) input and added-layer deltas; for Adam the weights,
 * gradients and both moments after two steps. Shapes: odd maps, windows at the border (pad 0, 1
 * and 2, sizes that do not divide), stride 1, batch 1 and odd batches, channel counts that do not
 * split evenly over the threads; ties in the maxpool windows (inputs on a coarse grid), so the
 * first maximal position must win as in Darknet. The threads are 3 here (TAT_NUM_THREADS), so the
 * pieces land on them unevenly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "blas.h"
#include "maxpool_layer.h"
#include "shortcut_layer.h"
#include "backend.h"
#include "test_helpers.h"
#include "backend_test_helpers.h"

static void same(const char *what, const char *name, const void *got, const void *want, size_t bytes)
{
    char full[160];
    size_t i, at = bytes;
    for (i = 0; i < bytes; ++i)
        if (((const unsigned char *)got)[i] != ((const unsigned char *)want)[i]) { at = i; break; }
    snprintf(full, sizeof(full), "backend_passes_%s_%s", what, name);
    report(at == bytes, full, "differs from Darknet's at byte %zu of %zu", at, bytes);
}

/* values on a grid of 1/4: equal values in many windows */
static float *coarse_array(size_t n)
{
    float *x = rand_array(n, 2);
    size_t i;
    for (i = 0; i < n; ++i) x[i] = (float)(int)(x[i] * 4) / 4;
    return x;
}

typedef struct {
    const char *name;
    int batch, c, h, w, size, stride, pad;
} pool_case;

static const pool_case pool_cases[] = {
    {"3x3_s2_p1_stem_b3", 3, 5, 11, 9, 3, 2, 1},     /* ResNet's stem: size 3, stride 2, pad 1 as Darknet counts it */
    {"2x2_s2_p0_odd_b1", 1, 3, 7, 9, 2, 2, 0},
    {"2x2_s2_default_pad_b2", 2, 4, 8, 6, 2, 2, 1},  /* Darknet's default padding: size - 1 */
    {"3x3_s1_p2_b1", 1, 7, 5, 6, 3, 1, 2},
    {"5x5_s3_p2_odd_b3", 3, 2, 13, 10, 5, 3, 2},
};

static void pool_case_run(const pool_case *k)
{
    layer ref = make_maxpool_layer(k->batch, k->h, k->w, k->c, k->size, k->stride, k->pad);
    layer thr = make_maxpool_layer(k->batch, k->h, k->w, k->c, k->size, k->stride, k->pad);
    size_t in_n = (size_t)k->batch * k->c * k->h * k->w, out_n = (size_t)ref.outputs * k->batch;
    float *input = coarse_array(in_n), *delta0 = rand_array(in_n, 1), *d = rand_array(out_n, 1);
    float *ref_delta = copy_array(delta0, in_n), *thr_delta = copy_array(delta0, in_n);
    network net = {0};

    backend_prepare_pass_layer(&thr);
    report(thr.forward == backend_forward_maxpool, "backend_passes_maxpool_prepared", "%s: Darknet's function kept",
           k->name);
    net.input = input;
    ref.forward(ref, net);
    thr.forward(thr, net);
    same("maxpool_forward", k->name, thr.output, ref.output, out_n * sizeof(float));
    same("maxpool_indexes", k->name, thr.indexes, ref.indexes, out_n * sizeof(int));
    backward_both(ref, ref_delta, thr, thr_delta, d, out_n, net);
    same("maxpool_input_gradient", k->name, thr_delta, ref_delta, in_n * sizeof(float));
    free(input), free(delta0), free(d), free(ref_delta), free(thr_delta);
    free_layer(ref), free_layer(thr);
}

typedef struct {
    const char *name;
    int batch, w, h, c;    /* the shortcut's output (its input layer) */
    int w2, h2, c2;        /* the added layer */
    float alpha, beta;
    ACTIVATION act;
} shortcut_case;

static const shortcut_case shortcut_cases[] = {
    {"identity_b3_linear", 3, 7, 5, 6, 7, 5, 6, 1, 1, LINEAR},
    {"identity_b1_leaky", 1, 9, 7, 5, 9, 7, 5, 1, 1, LEAKY},
    {"added_larger_stride2_b3_alpha_beta", 3, 4, 3, 5, 8, 6, 3, .5f, 2, LINEAR},
    {"added_smaller_sample2_b2_logistic", 2, 6, 4, 3, 3, 2, 7, 1, .25f, LOGISTIC},
};

static void shortcut_case_run(const shortcut_case *k)
{
    size_t added_n = (size_t)k->batch * k->w2 * k->h2 * k->c2, n = (size_t)k->batch * k->w * k->h * k->c;
    layer ref = make_shortcut_layer(k->batch, 0, k->w, k->h, k->c, k->w2, k->h2, k->c2);
    layer thr = make_shortcut_layer(k->batch, 0, k->w, k->h, k->c, k->w2, k->h2, k->c2);
    layer added = {0};
    network net = {0};
    float *input = rand_array(n, 1), *delta0 = rand_array(n, 1), *d = rand_array(n, 1);
    float *added_delta0 = rand_array(added_n, 1);
    float *ref_delta = copy_array(delta0, n), *thr_delta = copy_array(delta0, n);
    float *ref_added_delta = copy_array(added_delta0, added_n), *thr_added_delta = copy_array(added_delta0, added_n);

    ref.alpha = thr.alpha = k->alpha, ref.beta = thr.beta = k->beta;
    ref.activation = thr.activation = k->act;
    added.output = rand_array(added_n, 1);
    net.layers = &added;
    net.input = input;
    backend_prepare_pass_layer(&thr);
    report(thr.forward == backend_forward_shortcut, "backend_passes_shortcut_prepared", "%s: Darknet's function kept",
           k->name);
    ref.forward(ref, net);
    thr.forward(thr, net);
    same("shortcut_forward", k->name, thr.output, ref.output, n * sizeof(float));
    memcpy(ref.delta, d, n * sizeof(float));
    memcpy(thr.delta, d, n * sizeof(float));
    net.delta = ref_delta, added.delta = ref_added_delta;
    ref.backward(ref, net);
    net.delta = thr_delta, added.delta = thr_added_delta;
    thr.backward(thr, net);
    same("shortcut_input_gradient", k->name, thr_delta, ref_delta, n * sizeof(float));
    same("shortcut_added_gradient", k->name, thr_added_delta, ref_added_delta, added_n * sizeof(float));
    same("shortcut_delta", k->name, thr.delta, ref.delta, n * sizeof(float));
    free(input), free(delta0), free(d), free(added_delta0), free(added.output);
    free(ref_delta), free(thr_delta), free(ref_added_delta), free(thr_added_delta);
    free_layer(ref), free_layer(thr);
}

/* Adam, AdamW's decoupled decay too: n not a multiple of the slice, two steps */
static void adam_case(int decoupled)
{
    const int n = 3 * (1 << 15) + 1237;
    float *w = rand_array(n, 1), *g = rand_array(n, 1), *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    float *w2 = copy_array(w, n), *g2 = copy_array(g, n);
    float *m2 = calloc(n, sizeof(float)), *v2 = calloc(n, sizeof(float));
    const char *name = decoupled ? "adamw" : "adam";
    update_args a = {0};
    int t;
    a.B1 = .9f, a.B2 = .999f, a.eps = 1e-7f, a.batch = 3, a.decoupled_decay = decoupled, a.adam = 1;
    for (t = 1; t <= 2; ++t) {
        a.t = t;
        adam_update_cpu(w, g, m, v, a.B1, a.B2, a.eps, 5e-4f, .01f, n, a.batch, a.t, a.decoupled_decay);
        backend_adam_update(w2, g2, m2, v2, a.B1, a.B2, a.eps, 5e-4f, .01f, n, a.batch, a.t, a.decoupled_decay);
        fill_uniform(g, n, -1, 1);
        memcpy(g2, g, n * sizeof(float));
    }
    same("adam_weights", name, w2, w, n * sizeof(float));
    same("adam_first_moment", name, m2, m, n * sizeof(float));
    same("adam_second_moment", name, v2, v, n * sizeof(float));
    free(w), free(g), free(m), free(v), free(w2), free(g2), free(m2), free(v2);
}

int main(void)
{
    size_t i;
    if (!backend_compiled()) {
        report_skip("backend_passes", "this build has no oneDNN backend (ONEDNN=0)");
        return 0;
    }
    setenv("TAT_NUM_THREADS", "3", 1);
    backend_set_threads();
    rng_seed(23);
    for (i = 0; i < sizeof(pool_cases) / sizeof(pool_cases[0]); ++i) pool_case_run(&pool_cases[i]);
    for (i = 0; i < sizeof(shortcut_cases) / sizeof(shortcut_cases[0]); ++i) shortcut_case_run(&shortcut_cases[i]);
    adam_case(0);
    adam_case(1);
    return test_exit_status();
}
