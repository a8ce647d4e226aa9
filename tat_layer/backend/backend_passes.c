/* Darknet's [maxpool] and [shortcut] layers and its Adam update (of the convolutions and of the
 * distillation embeddings) on OpenMP's threads, the runtime the backend's convolutions already
 * run on. In a ResNet step they ran on one thread while the other core waited; the stem's maxpool
 * alone took ~14 ms at batch 8, Darknet's generic loop testing every window position against the
 * borders (3.8 ms here on 2 threads).
 *
 * Each keeps Darknet's results bit for bit, whatever the thread count: the work is split into
 * pieces that write disjoint memory (maxpool planes, shortcut images, Adam slices), and each
 * piece runs Darknet's own arithmetic in Darknet's order (the shortcut and Adam pieces call
 * Darknet's functions on their slice; the maxpool visits each window's positions in Darknet's
 * order with the same strict comparison, only skipping the positions outside the map, which can
 * never win). */
#include "backend.h"

#include <float.h>

#include "activations.h"
#include "blas.h"
#include "maxpool_layer.h"
#include "shortcut_layer.h"

static int imin(int a, int b) { return a < b ? a : b; }

/* One sweep of a maxpool output row for window position (n, m): the outputs j0..j1-1 compare
 * input at + j * stride with their best so far. Each output's comparison is independent of the
 * others', so the compiler vectorises the loop, where one window's comparisons form a chain. */
static inline void maxpool_sweep(const float *restrict in, float *restrict out, int *restrict idx, int j0, int j1,
                                 int at, int stride, int plane)
{
    int j;
    for (j = j0; j < j1; ++j) {
        float v = in[at + j * stride], o = out[j];
        int better = v > o;
        out[j] = better ? v : o;
        idx[j] = better ? plane + at + j * stride : idx[j];
    }
}

/* One input plane (image b, channel k) of the maxpool; plane is its offset in net.input, which
 * Darknet's indexes count from. Each output row is swept once per window position (n, m), in
 * Darknet's order. */
static void maxpool_plane(const layer *l, const float *input, int plane, float *output, int *indexes)
{
    const int offset = -l->pad / 2, w = l->w, h = l->h, stride = l->stride, size = l->size;
    const int out_w = l->out_w, out_h = l->out_h;
    const float *in = input + plane;
    int i, j, n, m;
    for (i = 0; i < out_h; ++i) {
        float *out = output + i * out_w;
        int *idx = indexes + i * out_w;
        for (j = 0; j < out_w; ++j) out[j] = -FLT_MAX, idx[j] = -1;
        for (n = 0; n < size; ++n) {
            int y = offset + i * stride + n;
            if (y < 0 || y >= h) continue;
            for (m = 0; m < size; ++m) {
                /* the outputs whose column offset + j * stride + m lies in the map */
                int first = offset + m;
                int j0 = first >= 0 ? 0 : (-first + stride - 1) / stride;
                int j1 = first < w ? imin(out_w, (w - 1 - first) / stride + 1) : 0;
                if (stride == 2) /* the common case, with a constant stride */
                    maxpool_sweep(in, out, idx, j0, j1, y * w + first, 2, plane);
                else
                    maxpool_sweep(in, out, idx, j0, j1, y * w + first, stride, plane);
            }
        }
    }
}

void backend_forward_maxpool(layer l, network net)
{
    int planes = l.batch * l.c, p;
    int in_plane = l.w * l.h, out_plane = l.out_w * l.out_h;
#pragma omp parallel for schedule(static)
    for (p = 0; p < planes; ++p)
        maxpool_plane(&l, net.input, p * in_plane, l.output + (size_t)p * out_plane, l.indexes + (size_t)p * out_plane);
}

/* Each output plane's indexes point into its own input plane, so planes are independent; within
 * one, the gradients are added in Darknet's order. A window wholly outside the map (index -1)
 * has no input to send its gradient to (Darknet would write before the array). */
void backend_backward_maxpool(layer l, network net)
{
    int planes = l.batch * l.c, out_plane = l.out_w * l.out_h, p;
    if (!net.delta) return;
#pragma omp parallel for schedule(static)
    for (p = 0; p < planes; ++p) {
        const int *idx = l.indexes + (size_t)p * out_plane;
        const float *d = l.delta + (size_t)p * out_plane;
        int i;
        for (i = 0; i < out_plane; ++i)
            if (idx[i] >= 0) net.delta[idx[i]] += d[i];
    }
}

/* Darknet's shortcut, image by image: l.w x l.h x l.c are the added layer's dimensions. */
void backend_forward_shortcut(layer l, network net)
{
    int added = l.w * l.h * l.c, b;
    const float *from = net.layers[l.index].output;
#pragma omp parallel for schedule(static)
    for (b = 0; b < l.batch; ++b) {
        float *out = l.output + (size_t)b * l.outputs;
        copy_cpu(l.outputs, net.input + (size_t)b * l.outputs, 1, out, 1);
        shortcut_cpu(1, l.w, l.h, l.c, (float *)from + (size_t)b * added, l.out_w, l.out_h, l.out_c, l.alpha, l.beta,
                     out);
        activate_array(out, l.outputs, l.activation);
    }
}

void backend_backward_shortcut(layer l, network net)
{
    int added = l.w * l.h * l.c, b;
    float *to = net.layers[l.index].delta;
#pragma omp parallel for schedule(static)
    for (b = 0; b < l.batch; ++b) {
        float *delta = l.delta + (size_t)b * l.outputs;
        gradient_array(l.output + (size_t)b * l.outputs, l.outputs, l.activation, delta);
        if (net.delta) axpy_cpu(l.outputs, l.alpha, delta, 1, net.delta + (size_t)b * l.outputs, 1);
        if (to) shortcut_cpu(1, l.out_w, l.out_h, l.out_c, delta, l.w, l.h, l.c, 1, l.beta, to + (size_t)b * added);
    }
}

/* Darknet's adam_update_cpu, the same arguments, on slices of the arrays: element by element, so
 * the slices may run in any order on any thread */
void backend_adam_update(float *w, float *d, float *m, float *v, float B1, float B2, float eps, float decay,
                         float rate, int n, int batch, int t, int decoupled)
{
    enum { SLICE = 1 << 15 };
    int start;
#pragma omp parallel for schedule(static)
    for (start = 0; start < n; start += SLICE)
        adam_update_cpu(w + start, d + start, m + start, v + start, B1, B2, eps, decay, rate, imin(SLICE, n - start),
                        batch, t, decoupled);
}

void backend_prepare_pass_layer(layer *l)
{
    if (l->type == MAXPOOL && l->forward == forward_maxpool_layer) {
        l->forward = backend_forward_maxpool;
        l->backward = backend_backward_maxpool;
    } else if (l->type == SHORTCUT && l->forward == forward_shortcut_layer) {
        l->forward = backend_forward_shortcut;
        l->backward = backend_backward_shortcut;
    }
}
