/* The oneDNN backend's [convolutional] against Darknet's own (im2col + sgemm) in one binary, on
 * odd shapes: sizes the stride does not divide, 1x1 stride 2, groups, pad 0 and 1, batch 1 and
 * odd batches, BatchNorm on and off, every activation the backend fuses and one it does not.
 * Two layers made alike from the same numbers: one keeps Darknet's functions, the other gets
 * the backend's (backend_prepare_layer). Compared: the forward output (training and inference;
 * with BatchNorm the rolling statistics too), and after a backward from the same delta, the
 * accumulated input gradient (net.delta starts non-zero: Darknet adds into it), weight, bias and
 * scale gradients (also pre-filled). A second step runs after an update, so that weights
 * reordered once per update are the updated ones; the second update is Adam's (the backend runs
 * the weights' Adam on threads).
 *
 * Tolerance: the relative error of tests/test_helpers.h (max |a - b| over max |b|) at most 1e-4
 * on every array. Both paths sum the same float products in different orders (oneDNN's blocked
 * kernels, OpenBLAS's core): for the reductions here (at most 3 x 3 x 8 = 72 terms per output,
 * 2 x 9 x 11 = 198 per weight gradient) the float32 rounding is ~1e-6 of the largest value,
 * whatever the OpenBLAS core; BatchNorm's division by the batch deviation is kept O(1) by inputs
 * of unit scale. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "convolutional_layer.h"
#include "backend.h"
#include "test_helpers.h"
#include "backend_test_helpers.h"

#define TOL 1e-4

typedef struct {
    const char *name;
    int batch, c, h, w, n, groups, size, stride, pad, bn;
    ACTIVATION act;
} conv_case;

static const conv_case cases[] = {
    {"3x3_s1_p1_b3_leaky", 3, 3, 7, 9, 5, 1, 3, 1, 1, 0, LEAKY},
    {"3x3_s2_p1_odd_b1_relu", 1, 4, 9, 11, 6, 1, 3, 2, 1, 0, RELU},
    {"3x3_s2_p0_odd_b5_bn_relu", 5, 3, 9, 8, 4, 1, 3, 2, 0, 1, RELU},
    {"1x1_s2_p0_odd_b3_bn_linear", 3, 6, 7, 9, 8, 1, 1, 2, 0, 1, LINEAR},
    {"1x1_s1_p0_b2_linear", 2, 5, 6, 7, 3, 1, 1, 1, 0, 0, LINEAR},
    {"groups2_3x3_s1_p1_b3_bn_leaky", 3, 4, 6, 5, 6, 2, 3, 1, 1, 1, LEAKY},
    {"groups4_1x1_s2_b1_logistic", 1, 8, 5, 7, 8, 4, 1, 2, 0, 0, LOGISTIC},
    {"5x5_s3_p1_b3_tanh_unfused", 3, 2, 11, 10, 4, 1, 5, 3, 1, 0, TANH},
    {"7x7_s2_p3_b2_bn_relu_stem", 2, 3, 17, 15, 8, 1, 7, 2, 3, 1, RELU},
    {"3x3_s1_p1_b1_bn_leaky_odd", 1, 3, 5, 7, 5, 1, 3, 1, 1, 1, LEAKY},
    {"3x3_s2_p1_b3_bn_tanh_unfused", 3, 2, 9, 7, 4, 1, 3, 2, 1, 1, TANH},
    {"1x1_s1_p0_b2_bn_logistic", 2, 5, 6, 5, 7, 1, 1, 1, 0, 1, LOGISTIC},
    /* filters a multiple of 16 (and 8): BatchNorm on oneDNN's channel-blocked arrays */
    {"3x3_s1_p1_b3_bn_relu_f16_blocked", 3, 16, 7, 9, 16, 1, 3, 1, 1, 1, RELU},
    {"3x3_s2_p1_b1_bn_leaky_f32_blocked", 1, 16, 9, 11, 32, 1, 3, 2, 1, 1, LEAKY},
    {"1x1_s2_p0_b2_bn_linear_f16_blocked", 2, 16, 7, 7, 16, 1, 1, 2, 0, 1, LINEAR},
    {"3x3_s1_p1_b2_bn_tanh_f16_blocked", 2, 32, 5, 6, 16, 1, 3, 1, 1, 1, TANH},
};

static float *grad(size_t n) { return rand_array(n, 1); }

static void copy_params(layer *to, const layer *from)
{
    memcpy(to->weights, from->weights, from->nweights * sizeof(float));
    memcpy(to->biases, from->biases, from->n * sizeof(float));
    memcpy(to->weight_updates, from->weight_updates, from->nweights * sizeof(float));
    memcpy(to->bias_updates, from->bias_updates, from->n * sizeof(float));
    if (from->batch_normalize) {
        memcpy(to->scales, from->scales, from->n * sizeof(float));
        memcpy(to->scale_updates, from->scale_updates, from->n * sizeof(float));
        memcpy(to->rolling_mean, from->rolling_mean, from->n * sizeof(float));
        memcpy(to->rolling_variance, from->rolling_variance, from->n * sizeof(float));
    }
}

static void compare(const char *what, const conv_case *k, int step, const float *got, const float *want, size_t n)
{
    char name[160];
    snprintf(name, sizeof(name), "backend_conv_%s_%s_step%d", what, k->name, step);
    check_close(name, got, want, n, TOL);
}

static void run_case(const conv_case *k)
{
    layer ref = make_convolutional_layer(k->batch, k->h, k->w, k->c, k->n, k->groups, k->size, k->stride, k->pad,
                                         k->act, k->bn, 0, 0, 1);
    layer dnn = make_convolutional_layer(k->batch, k->h, k->w, k->c, k->n, k->groups, k->size, k->stride, k->pad,
                                         k->act, k->bn, 0, 0, 1);
    size_t in_n = (size_t)k->batch * k->c * k->h * k->w, out_n = (size_t)ref.outputs * k->batch;
    network net = {0};
    float *input = rand_array(in_n, 1), *delta0 = rand_array(in_n, 1);
    float *ref_delta = copy_array(delta0, in_n), *dnn_delta = copy_array(delta0, in_n);
    int step, i;
    update_args ua = {0};

    fill_uniform(ref.weights, ref.nweights, -.5, .5);
    fill_uniform(ref.biases, ref.n, -.3, .3);
    fill_uniform(ref.weight_updates, ref.nweights, -.1, .1);
    fill_uniform(ref.bias_updates, ref.n, -.1, .1);
    if (k->bn) {
        fill_uniform(ref.scales, ref.n, .5, 1.5);
        fill_uniform(ref.scale_updates, ref.n, -.1, .1);
        fill_uniform(ref.rolling_mean, ref.n, -.2, .2);
        fill_uniform(ref.rolling_variance, ref.n, .5, 1.5);
    }
    copy_params(&dnn, &ref);
    backend_prepare_layer(&dnn, &net);
    if (dnn.forward != backend_forward_convolutional) {
        report(0, "backend_conv_prepared", "%s: the layer was not given the backend's functions", k->name);
        return;
    }
    net.workspace = test_alloc(ref.workspace_size + sizeof(float));
    net.input = input;
    ua.learning_rate = .1f, ua.momentum = .9f, ua.decay = 5e-4f, ua.batch = k->batch;

    for (step = 0; step < 2; ++step) {
        float *d = grad(out_n);
        /* training forward */
        net.train = 1;
        ref.forward(ref, net);
        dnn.forward(dnn, net);
        if (step == 0) {
            report(backend_layer_on_onednn(&dnn), "backend_conv_runs_on_onednn", "%s: oneDNN refused the shape (Darknet's path ran)", k->name);
            /* where oneDNN blocks channels (AVX2 and AVX-512 kernels), these cases take that path */
            if (strstr(k->name, "_blocked") && __builtin_cpu_supports("avx2"))
                report(backend_layer_bn_blocked(&dnn), "backend_conv_bn_on_blocked_arrays",
                       "%s: BatchNorm ran on NCHW copies, not on oneDNN's blocked arrays", k->name);
        }
        compare("forward_train", k, step, dnn.output, ref.output, out_n);
        if (k->bn) {
            compare("rolling_mean", k, step, dnn.rolling_mean, ref.rolling_mean, ref.n);
            compare("rolling_variance", k, step, dnn.rolling_variance, ref.rolling_variance, ref.n);
        }
        /* backward from one delta: both add into net.delta and the parameter gradients */
        backward_both(ref, ref_delta, dnn, dnn_delta, d, out_n, net);
        compare("input_gradient", k, step, dnn_delta, ref_delta, in_n);
        compare("weight_gradient", k, step, dnn.weight_updates, ref.weight_updates, ref.nweights);
        compare("bias_gradient", k, step, dnn.bias_updates, ref.bias_updates, ref.n);
        if (k->bn) compare("scale_gradient", k, step, dnn.scale_updates, ref.scale_updates, ref.n);
        /* the first layer of a network has no net.delta */
        if (step == 1) {
            backward_both(ref, NULL, dnn, NULL, d, out_n, net);
            compare("weight_gradient_no_input_delta", k, step, dnn.weight_updates, ref.weight_updates, ref.nweights);
        }
        free(d);
        /* inference forward (rolling statistics) */
        net.train = 0;
        ref.forward(ref, net);
        dnn.forward(dnn, net);
        compare("forward_inference", k, step, dnn.output, ref.output, out_n);
        /* the update (SGD with momentum, then Adam), then the next step reads the updated weights */
        ua.adam = step == 1, ua.B1 = .9f, ua.B2 = .999f, ua.eps = 1e-7f, ua.t = 1;
        ref.update(ref, ua);
        dnn.update(dnn, ua);
        compare("updated_weights", k, step, dnn.weights, ref.weights, ref.nweights);
        for (i = 0; i < (int)in_n; ++i) input[i] = -input[i] * .9f;
    }
    /* an inference forward after an update sees the new weights, not the ones cached */
    net.train = 0;
    ref.forward(ref, net);
    dnn.forward(dnn, net);
    compare("forward_inference_after_update", k, 2, dnn.output, ref.output, out_n);
    /* a new batch size rebuilds the primitives */
    backend_release(&net);
    free(net.workspace);
    free(input), free(delta0), free(ref_delta), free(dnn_delta);
    free_layer(ref);
    dnn.plugin_state = 0;
    free_layer(dnn);
}

/* the same layer called with another batch: the primitives follow the shape */
static void batch_change(void)
{
    layer l = make_convolutional_layer(4, 6, 6, 3, 4, 1, 3, 2, 1, LEAKY, 0, 0, 0, 0);
    layer ref = make_convolutional_layer(4, 6, 6, 3, 4, 1, 3, 2, 1, LEAKY, 0, 0, 0, 0);
    network net = {0};
    float *input = rand_array(4 * 3 * 6 * 6, 1);
    copy_params(&ref, &l);
    backend_prepare_layer(&l, &net);
    net.input = input;
    net.workspace = test_alloc(l.workspace_size);
    l.forward(l, net);
    l.batch = ref.batch = 1;
    l.forward(l, net);
    ref.forward(ref, net);
    check_close("backend_conv_batch_change_rebuilds", l.output, ref.output, ref.outputs, TOL);
    backend_release(&net);
    free(input), free(net.workspace);
    l.plugin_state = 0;
    l.batch = ref.batch = 4;
    free_layer(l), free_layer(ref);
}

int main(void)
{
    size_t i;
    if (!backend_compiled()) {
        report_skip("backend_conv", "this build has no oneDNN backend (ONEDNN=0)");
        return 0;
    }
    rng_seed(21);
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) run_case(&cases[i]);
    batch_change();
    return test_exit_status();
}
