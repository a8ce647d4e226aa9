/* Darknet's BatchNorm of a [convolutional] layer and the layer's activation, fused: the backend's
 * convolutions call these instead of forward_batchnorm_layer + activate_array and gradient_array
 * + backward_batchnorm_layer. Darknet's semantics are kept to float rounding: the batch variance
 * divides by N - 1, the normalisation by sqrt(var + 1e-5), the rolling statistics move by 0.01
 * per forward, l.x keeps the convolution's output and l.x_norm the normalised one, the bias and
 * scale gradients are added into bias_updates / scale_updates, l.mean_delta and
 * l.variance_delta hold what Darknet's backward leaves there.
 *
 * Darknet runs these as seven to nine scalar passes over the map on one thread; here the forward
 * reads the map twice for the statistics and once more to write x, x_norm and the output, the
 * backward reads it twice. Channels are independent, so they are split over OpenMP's threads
 * (the runtime oneDNN's convolutions already use); each channel's sums are taken by one thread
 * in one order, so the results do not depend on the thread count. */
#include "backend.h"

#include <math.h>

#include "activations.h"

#define BN_EPSILON .00001f

/* the activations with a branch-free form here; others go through Darknet's own per slice */
static int act_inline(ACTIVATION a) { return a == LINEAR || a == RELU || a == LEAKY; }

static void activate_slice(float *y, int n, ACTIVATION a)
{
    int i;
    if (a == RELU)
        for (i = 0; i < n; ++i) y[i] = y[i] * (y[i] > 0);
    else if (a == LEAKY)
        for (i = 0; i < n; ++i) y[i] = y[i] > 0 ? y[i] : .1f * y[i];
    else if (a != LINEAR)
        activate_array(y, n, a);
}

/* delta *= the activation's derivative at the output y (Darknet's gradient_array) */
static void gradient_slice(const float *y, int n, ACTIVATION a, float *delta)
{
    int i;
    if (a == RELU)
        for (i = 0; i < n; ++i) delta[i] *= (y[i] > 0);
    else if (a == LEAKY)
        for (i = 0; i < n; ++i) delta[i] *= y[i] > 0 ? 1.f : .1f;
    else if (a != LINEAR)
        gradient_array(y, n, a, delta);
}

void backend_batchnorm_forward(const layer *l, int train)
{
    const int channels = l->out_c, spatial = l->out_h * l->out_w, batch = l->batch;
    const size_t image = (size_t)channels * spatial;
    const float n = (float)batch * spatial;
    const ACTIVATION act = l->activation;
    int f;
#pragma omp parallel for schedule(static)
    for (f = 0; f < channels; ++f) {
        float mean, variance, inv_std, scale = l->scales[f], bias = l->biases[f];
        int b, i;
        if (train) {
            float sum = 0, squares = 0;
            for (b = 0; b < batch; ++b) {
                const float *y = l->output + b * image + (size_t)f * spatial;
                float s = 0;
                for (i = 0; i < spatial; ++i) s += y[i];
                sum += s;
            }
            mean = sum / n;
            for (b = 0; b < batch; ++b) {
                const float *y = l->output + b * image + (size_t)f * spatial;
                float s = 0;
                for (i = 0; i < spatial; ++i) s += (y[i] - mean) * (y[i] - mean);
                squares += s;
            }
            variance = squares / (n - 1);
            l->mean[f] = mean;
            l->variance[f] = variance;
            l->rolling_mean[f] = l->rolling_mean[f] * .99f + .01f * mean;
            l->rolling_variance[f] = l->rolling_variance[f] * .99f + .01f * variance;
        } else {
            mean = l->rolling_mean[f];
            variance = l->rolling_variance[f];
        }
        inv_std = 1.f / sqrtf(variance + BN_EPSILON);
        for (b = 0; b < batch; ++b) {
            const size_t at = b * image + (size_t)f * spatial;
            float *y = l->output + at, *x = l->x + at, *x_norm = train ? l->x_norm + at : 0;
            for (i = 0; i < spatial; ++i) {
                float v = y[i], xn = (v - mean) * inv_std;
                x[i] = v;
                if (x_norm) x_norm[i] = xn;
                y[i] = xn * scale + bias;
            }
            if (act_inline(act)) activate_slice(y, spatial, act);
        }
        if (!act_inline(act))
            for (b = 0; b < batch; ++b) activate_slice(l->output + b * image + (size_t)f * spatial, spatial, act);
    }
}

/* The backward's first pass over channel f: delta becomes g = delta x activation', Darknet's
 * bias and scale gradients are added, l->mean_delta and l->variance_delta set, and the
 * gradient at the convolution's output is then a g + c (x - mean) + d, with a, c, d returned. */
typedef struct {
    float a, c, d;
} bn_delta_coefficients;

static bn_delta_coefficients channel_gradient_sums(const layer *l, int f, float mean, float variance)
{
    const int spatial = l->out_h * l->out_w;
    const size_t image = (size_t)l->out_c * spatial;
    const float n = (float)l->batch * spatial, scale = l->scales[f];
    const float inv_std = 1.f / sqrtf(variance + BN_EPSILON);
    float sum_g = 0, sum_g_xn = 0, sum_g_xc = 0, mean_delta, variance_delta;
    bn_delta_coefficients k;
    int b, i;
    for (b = 0; b < l->batch; ++b) {
        const size_t at = b * image + (size_t)f * spatial;
        const float *x = l->x + at, *x_norm = l->x_norm + at;
        float *delta = l->delta + at;
        float sg = 0, sgn = 0, sgc = 0;
        gradient_slice(l->output + at, spatial, l->activation, delta);
        for (i = 0; i < spatial; ++i) {
            sg += delta[i];
            sgn += delta[i] * x_norm[i];
            sgc += delta[i] * (x[i] - mean);
        }
        sum_g += sg, sum_g_xn += sgn, sum_g_xc += sgc;
    }
    l->bias_updates[f] += sum_g;
    l->scale_updates[f] += sum_g_xn;
    /* after Darknet's scale_bias the delta is scale x g */
    mean_delta = scale * sum_g * -inv_std;
    variance_delta = scale * sum_g_xc * -.5f * inv_std * inv_std * inv_std;
    l->mean_delta[f] = mean_delta;
    l->variance_delta[f] = variance_delta;
    k.a = scale * inv_std;
    k.c = variance_delta * 2 / n;
    k.d = mean_delta / n;
    return k;
}

void backend_batchnorm_backward(const layer *l, int train)
{
    const int channels = l->out_c, spatial = l->out_h * l->out_w, batch = l->batch;
    const size_t image = (size_t)channels * spatial;
    /* Darknet's backward outside training normalises with the rolling statistics */
    const float *means = train ? l->mean : l->rolling_mean;
    const float *variances = train ? l->variance : l->rolling_variance;
    int f;
#pragma omp parallel for schedule(static)
    for (f = 0; f < channels; ++f) {
        const float mean = means[f];
        const bn_delta_coefficients k = channel_gradient_sums(l, f, mean, variances[f]);
        int b, i;
        for (b = 0; b < batch; ++b) {
            const size_t at = b * image + (size_t)f * spatial;
            const float *x = l->x + at;
            float *delta = l->delta + at;
            for (i = 0; i < spatial; ++i) delta[i] = delta[i] * k.a + k.c * (x[i] - mean) + k.d;
        }
    }
}

/* The same two functions on the convolution's side of the layout: oneDNN's channel-blocked
 * aBcd<block>b arrays (image, channel / block, y, x, channel % block; channels a multiple of
 * block), so that the reorder between that layout and Darknet's NCHW is done by these passes
 * instead of one more pass of its own. The forward reads the convolution's blocked output and
 * writes Darknet's l->x, l->x_norm and l->output; the backward writes the gradient at the
 * convolution's output into the blocked array the backward primitives read (l->delta then holds
 * the gradient behind the activation only). The same sums as above, to float rounding. */
#define BN_MAX_BLOCK 16

void backend_batchnorm_forward_blocked(const layer *l, const float *conv_out, int block, int train)
{
    const int channels = l->out_c, spatial = l->out_h * l->out_w, batch = l->batch;
    const int blocks = channels / block;
    const size_t image = (size_t)channels * spatial, block_size = (size_t)spatial * block;
    const float n = (float)batch * spatial;
    const ACTIVATION act = l->activation;
    int cb;
#pragma omp parallel for schedule(static)
    for (cb = 0; cb < blocks; ++cb) {
        float mean[BN_MAX_BLOCK], inv_std[BN_MAX_BLOCK], sum[BN_MAX_BLOCK] = {0}, part[BN_MAX_BLOCK];
        int b, i, j;
        if (train) {
            /* the lanes of a block side by side: one sweep per statistic */
            for (b = 0; b < batch; ++b) {
                const float *y = conv_out + ((size_t)b * blocks + cb) * block_size;
                for (j = 0; j < block; ++j) part[j] = 0;
                for (i = 0; i < spatial; ++i)
                    for (j = 0; j < block; ++j) part[j] += y[(size_t)i * block + j];
                for (j = 0; j < block; ++j) sum[j] += part[j];
            }
            for (j = 0; j < block; ++j) mean[j] = sum[j] / n, sum[j] = 0;
            for (b = 0; b < batch; ++b) {
                const float *y = conv_out + ((size_t)b * blocks + cb) * block_size;
                for (j = 0; j < block; ++j) part[j] = 0;
                for (i = 0; i < spatial; ++i)
                    for (j = 0; j < block; ++j) {
                        float c = y[(size_t)i * block + j] - mean[j];
                        part[j] += c * c;
                    }
                for (j = 0; j < block; ++j) sum[j] += part[j];
            }
        }
        for (j = 0; j < block; ++j) {
            const int f = cb * block + j;
            float variance;
            if (train) {
                variance = sum[j] / (n - 1);
                l->mean[f] = mean[j];
                l->variance[f] = variance;
                l->rolling_mean[f] = l->rolling_mean[f] * .99f + .01f * mean[j];
                l->rolling_variance[f] = l->rolling_variance[f] * .99f + .01f * variance;
            } else {
                mean[j] = l->rolling_mean[f];
                variance = l->rolling_variance[f];
            }
            inv_std[j] = 1.f / sqrtf(variance + BN_EPSILON);
        }
        /* one image's block (spatial x block floats) at a time, lane by lane into NCHW */
        for (b = 0; b < batch; ++b)
            for (j = 0; j < block; ++j) {
                const int f = cb * block + j;
                const float *from = conv_out + ((size_t)b * blocks + cb) * block_size + j;
                const size_t at = b * image + (size_t)f * spatial;
                const float m = mean[j], s = inv_std[j], scale = l->scales[f], bias = l->biases[f];
                float *y = l->output + at, *x = l->x + at, *x_norm = train ? l->x_norm + at : 0;
                for (i = 0; i < spatial; ++i) {
                    float v = from[(size_t)i * block], xn = (v - m) * s;
                    x[i] = v;
                    if (x_norm) x_norm[i] = xn;
                    y[i] = xn * scale + bias;
                }
                activate_slice(y, spatial, act);
            }
    }
}

void backend_batchnorm_backward_blocked(const layer *l, float *conv_delta, int block, int train)
{
    const int channels = l->out_c, spatial = l->out_h * l->out_w, batch = l->batch;
    const int blocks = channels / block;
    const size_t image = (size_t)channels * spatial, block_size = (size_t)spatial * block;
    const float *means = train ? l->mean : l->rolling_mean;
    const float *variances = train ? l->variance : l->rolling_variance;
    int cb;
#pragma omp parallel for schedule(static)
    for (cb = 0; cb < blocks; ++cb) {
        bn_delta_coefficients k[BN_MAX_BLOCK];
        int b, i, j;
        for (j = 0; j < block; ++j) k[j] = channel_gradient_sums(l, cb * block + j, means[cb * block + j], variances[cb * block + j]);
        /* one image's block at a time, lane by lane from NCHW */
        for (b = 0; b < batch; ++b)
            for (j = 0; j < block; ++j) {
                const int f = cb * block + j;
                const size_t at = b * image + (size_t)f * spatial;
                const float *x = l->x + at, *delta = l->delta + at, mean = means[f];
                float *to = conv_delta + ((size_t)b * blocks + cb) * block_size + j;
                for (i = 0; i < spatial; ++i) to[(size_t)i * block] = delta[i] * k[j].a + k[j].c * (x[i] - mean) + k[j].d;
            }
    }
}
