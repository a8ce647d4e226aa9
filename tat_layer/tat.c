/* TaT distillation math: see tat.h for layouts and conventions. */
#include "tat.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CBLAS
#include <cblas.h>
#endif

static void *tat_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "tat: out of memory allocating %zu bytes\n", n * size);
        exit(1);
    }
    return p;
}

/* ---- GEMM ----------------------------------------------------------------------------- */

void tat_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
#ifdef CBLAS
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    int i, j, k;
    for (i = 0; i < M; ++i) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0) {
            for (j = 0; j < N; ++j) c[j] = 0;
        } else if (beta != 1) {
            for (j = 0; j < N; ++j) c[j] *= beta;
        }
        if (!trans_b) {
            /* i-k-j order: the inner loop streams rows of B and C */
            for (k = 0; k < K; ++k) {
                float a = alpha * (trans_a ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                const float *b = B + (size_t)k * ldb;
                for (j = 0; j < N; ++j) c[j] += a * b[j];
            }
        } else {
            for (j = 0; j < N; ++j) {
                const float *b = B + (size_t)j * ldb;
                float sum = 0;
                if (!trans_a) {
                    const float *a = A + (size_t)i * lda;
                    for (k = 0; k < K; ++k) sum += a[k] * b[k];
                } else {
                    for (k = 0; k < K; ++k) sum += A[(size_t)k * lda + i] * b[k];
                }
                c[j] += alpha * sum;
            }
        }
    }
#endif
}

/* ---- Convolution (stride 1, "same" padding) --------------------------------------------- */

size_t tat_conv_workspace_floats(int in_c, int h, int w, int ksize)
{
    return ksize == 1 ? 0 : (size_t)in_c * ksize * ksize * h * w;
}

/* col[(c*k + ky)*k + kx][y*w + x] = in[c][y + ky - pad][x + kx - pad], 0 outside */
static void im2col_same(float *col, const float *in, int c, int h, int w, int ksize)
{
    int pad = ksize / 2, ch, ky, kx, y, x;
    for (ch = 0; ch < c; ++ch)
        for (ky = 0; ky < ksize; ++ky)
            for (kx = 0; kx < ksize; ++kx) {
                float *row = col + ((size_t)(ch * ksize + ky) * ksize + kx) * h * w;
                for (y = 0; y < h; ++y) {
                    int iy = y + ky - pad;
                    for (x = 0; x < w; ++x) {
                        int ix = x + kx - pad;
                        row[y * w + x] = (iy >= 0 && iy < h && ix >= 0 && ix < w)
                                             ? in[((size_t)ch * h + iy) * w + ix]
                                             : 0;
                    }
                }
            }
}

/* The adjoint of im2col_same: d_in += col put back where it came from. */
static void col2im_same_add(float *d_in, const float *col, int c, int h, int w, int ksize)
{
    int pad = ksize / 2, ch, ky, kx, y, x;
    for (ch = 0; ch < c; ++ch)
        for (ky = 0; ky < ksize; ++ky)
            for (kx = 0; kx < ksize; ++kx) {
                const float *row = col + ((size_t)(ch * ksize + ky) * ksize + kx) * h * w;
                for (y = 0; y < h; ++y) {
                    int iy = y + ky - pad;
                    if (iy < 0 || iy >= h) continue;
                    for (x = 0; x < w; ++x) {
                        int ix = x + kx - pad;
                        if (ix >= 0 && ix < w) d_in[((size_t)ch * h + iy) * w + ix] += row[y * w + x];
                    }
                }
            }
}

void tat_conv_forward(float *out, const float *in, const float *weight, float *workspace, int batch,
                      int in_c, int h, int w, int out_c, int ksize)
{
    int hw = h * w, kk = in_c * ksize * ksize, b;
    for (b = 0; b < batch; ++b) {
        const float *x = in + (size_t)b * in_c * hw;
        const float *col = x;
        if (ksize != 1) {
            im2col_same(workspace, x, in_c, h, w, ksize);
            col = workspace;
        }
        tat_gemm(0, 0, out_c, hw, kk, 1, weight, kk, col, hw, 0, out + (size_t)b * out_c * hw, hw);
    }
}

void tat_conv_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                       const float *weight, float *workspace, int batch, int in_c, int h, int w,
                       int out_c, int ksize)
{
    int hw = h * w, kk = in_c * ksize * ksize, b;
    for (b = 0; b < batch; ++b) {
        const float *x = in + (size_t)b * in_c * hw;
        const float *dy = d_out + (size_t)b * out_c * hw;
        const float *col = x;
        if (ksize != 1) {
            im2col_same(workspace, x, in_c, h, w, ksize);
            col = workspace;
        }
        tat_gemm(0, 1, out_c, kk, hw, 1, dy, hw, col, hw, 1, d_weight, kk);
        if (!d_in) continue;
        float *dx = d_in + (size_t)b * in_c * hw;
        if (ksize == 1) {
            tat_gemm(1, 0, in_c, hw, out_c, 1, weight, kk, dy, hw, 1, dx, hw);
        } else {
            tat_gemm(1, 0, kk, hw, out_c, 1, weight, kk, dy, hw, 0, workspace, hw);
            col2im_same_add(dx, workspace, in_c, h, w, ksize);
        }
    }
}

/* ---- BatchNorm (training mode) --------------------------------------------------------- */

/* A statistics group is a set of `count` runs of `spatial` floats, `stride` apart. In batch
 * mode group c is channel c of every image; in per-image mode group (b, c) is one run. */
typedef struct { int n_groups, runs, c; size_t stride; } bn_groups;

static bn_groups bn_layout(int batch, int c, int spatial, int per_image)
{
    bn_groups g;
    g.c = c;
    g.n_groups = per_image ? batch * c : c;
    g.runs = per_image ? 1 : batch;
    g.stride = (size_t)c * spatial;
    return g;
}

/* Offset of run r of group index gi. */
static size_t bn_run_offset(bn_groups g, int gi, int r, int spatial, int per_image)
{
    if (per_image) return (size_t)gi * spatial; /* gi = b*c + ch: runs are contiguous NCHW planes */
    return (size_t)r * g.stride + (size_t)gi * spatial;
}

void tat_batchnorm_forward(float *out, float *x_hat, float *mean, float *inv_std, const float *in,
                           const float *gamma, const float *beta, int batch, int c, int spatial,
                           int per_image)
{
    bn_groups g = bn_layout(batch, c, spatial, per_image);
    double count = (double)g.runs * spatial;
    int gi, r, i;
    for (gi = 0; gi < g.n_groups; ++gi) {
        int ch = gi % c;
        double sum = 0, sq = 0;
        for (r = 0; r < g.runs; ++r) {
            const float *x = in + bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) sum += x[i];
        }
        double mu = sum / count;
        for (r = 0; r < g.runs; ++r) {
            const float *x = in + bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) sq += (x[i] - mu) * (x[i] - mu);
        }
        float is = (float)(1.0 / sqrt(sq / count + TAT_BN_EPS));
        mean[gi] = (float)mu;
        inv_std[gi] = is;
        for (r = 0; r < g.runs; ++r) {
            size_t off = bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) {
                float xh = (in[off + i] - (float)mu) * is;
                x_hat[off + i] = xh;
                out[off + i] = gamma[ch] * xh + beta[ch];
            }
        }
    }
}

void tat_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                            const float *x_hat, const float *inv_std, const float *gamma, int batch,
                            int c, int spatial, int per_image)
{
    bn_groups g = bn_layout(batch, c, spatial, per_image);
    double count = (double)g.runs * spatial;
    int gi, r, i;
    for (gi = 0; gi < g.n_groups; ++gi) {
        int ch = gi % c;
        double sum_dy = 0, sum_dy_xh = 0;
        for (r = 0; r < g.runs; ++r) {
            size_t off = bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) {
                sum_dy += d_out[off + i];
                sum_dy_xh += (double)d_out[off + i] * x_hat[off + i];
            }
        }
        d_gamma[ch] += (float)sum_dy_xh;
        d_beta[ch] += (float)sum_dy;
        if (!d_in) continue;
        /* dx = gamma*inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)) */
        float k = gamma[ch] * inv_std[gi];
        float m_dy = (float)(sum_dy / count), m_dy_xh = (float)(sum_dy_xh / count);
        for (r = 0; r < g.runs; ++r) {
            size_t off = bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i)
                d_in[off + i] += k * (d_out[off + i] - m_dy - x_hat[off + i] * m_dy_xh);
        }
    }
}

/* ---- Embedding ------------------------------------------------------------------------- */

void tat_embedding_init(tat_embedding *e, int in_c, int out_c, int ksize)
{
    size_t nw = (size_t)out_c * in_c * ksize * ksize, i;
    float scale = sqrtf(2.f / (in_c * ksize * ksize));
    memset(e, 0, sizeof(*e));
    e->in_c = in_c;
    e->out_c = out_c;
    e->ksize = ksize;
    e->weights = tat_calloc(nw, sizeof(float));
    e->weight_grads = tat_calloc(nw, sizeof(float));
    e->scales = tat_calloc(out_c, sizeof(float));
    e->scale_grads = tat_calloc(out_c, sizeof(float));
    e->biases = tat_calloc(out_c, sizeof(float));
    e->bias_grads = tat_calloc(out_c, sizeof(float));
    for (i = 0; i < nw; ++i) e->weights[i] = scale * (2.f * rand() / (float)RAND_MAX - 1.f);
    for (i = 0; i < (size_t)out_c; ++i) e->scales[i] = 1;
}

void tat_embedding_alloc_activations(tat_embedding *e, int batch, int h, int w)
{
    size_t n = (size_t)batch * e->out_c * h * w;
    free(e->x_hat);
    free(e->out);
    free(e->out_grad);
    free(e->mean);
    free(e->inv_std);
    e->x_hat = tat_calloc(n, sizeof(float));
    e->out = tat_calloc(n, sizeof(float));
    e->out_grad = tat_calloc(n, sizeof(float));
    e->mean = tat_calloc((size_t)batch * e->out_c, sizeof(float));
    e->inv_std = tat_calloc((size_t)batch * e->out_c, sizeof(float));
}

void tat_embedding_free(tat_embedding *e)
{
    free(e->weights);
    free(e->scales);
    free(e->biases);
    free(e->weight_grads);
    free(e->scale_grads);
    free(e->bias_grads);
    free(e->x_hat);
    free(e->out);
    free(e->out_grad);
    free(e->mean);
    free(e->inv_std);
    memset(e, 0, sizeof(*e));
}

size_t tat_embedding_num_params(const tat_embedding *e)
{
    return (size_t)e->out_c * e->in_c * e->ksize * e->ksize + 2 * (size_t)e->out_c;
}

void tat_embedding_forward(tat_embedding *e, const float *in, float *workspace, int batch, int h,
                           int w, int per_image)
{
    size_t n = (size_t)batch * e->out_c * h * w;
    /* the conv result goes into x_hat first; BN then normalises it into x_hat and out */
    tat_conv_forward(e->x_hat, in, e->weights, workspace, batch, e->in_c, h, w, e->out_c, e->ksize);
    tat_batchnorm_forward(e->out, e->x_hat, e->mean, e->inv_std, e->x_hat, e->scales, e->biases,
                          batch, e->out_c, h * w, per_image);
    memset(e->out_grad, 0, n * sizeof(float));
}

void tat_embedding_backward(tat_embedding *e, float *d_in, const float *in, float *workspace,
                            int batch, int h, int w, int per_image)
{
    /* d(conv out) is needed whole before the conv backward: reuse out, which is dead now */
    size_t n = (size_t)batch * e->out_c * h * w;
    memset(e->out, 0, n * sizeof(float));
    tat_batchnorm_backward(e->out, e->scale_grads, e->bias_grads, e->out_grad, e->x_hat, e->inv_std,
                           e->scales, batch, e->out_c, h * w, per_image);
    tat_conv_backward(d_in, e->weight_grads, e->out, in, e->weights, workspace, batch, e->in_c, h,
                      w, e->out_c, e->ksize);
}

/* ---- Patch regrouping ------------------------------------------------------------------ */

/* Calls visit(block_offset, map_offset) for every covered element; shared by the gather and
 * its adjoint so both use one index map. */
#define TAT_PATCH_FOR_EACH(batch, c, h, w, grid_h, grid_w, groups, BODY)                         \
    do {                                                                                       \
        int ph_ = (h) / (grid_h), pw_ = (w) / (grid_w), P_ = (grid_h) * (grid_w);              \
        int per_ = P_ / (groups), N_ = ph_ * pw_, d_ = per_ * (c), b_, a_, e_, r_;             \
        for (b_ = 0; b_ < (batch); ++b_)                                                       \
            for (a_ = 0; a_ < (groups); ++a_)                                                  \
                for (e_ = 0; e_ < d_; ++e_) {                                                  \
                    int pp_ = a_ * per_ + e_ / (c), ch_ = e_ % (c);                            \
                    int y0_ = (pp_ / (grid_w)) * ph_, x0_ = (pp_ % (grid_w)) * pw_;            \
                    size_t blk_ = (((size_t)b_ * (groups) + a_) * d_ + e_) * N_;               \
                    size_t map_ = (((size_t)b_ * (c) + ch_) * (h) + y0_) * (w) + x0_;          \
                    for (r_ = 0; r_ < N_; ++r_) {                                              \
                        size_t bi = blk_ + r_;                                                 \
                        size_t mi = map_ + (size_t)(r_ / pw_) * (w) + r_ % pw_;                \
                        BODY;                                                                  \
                    }                                                                          \
                }                                                                              \
    } while (0)

void tat_patch_gather(float *blocks, const float *x, int batch, int c, int h, int w, int grid_h,
                      int grid_w, int groups)
{
    TAT_PATCH_FOR_EACH(batch, c, h, w, grid_h, grid_w, groups, blocks[bi] = x[mi]);
}

void tat_patch_scatter_add(float *d_x, const float *d_blocks, int batch, int c, int h, int w,
                           int grid_h, int grid_w, int groups)
{
    TAT_PATCH_FOR_EACH(batch, c, h, w, grid_h, grid_w, groups, d_x[mi] += d_blocks[bi]);
}

/* ---- Anchor pooling -------------------------------------------------------------------- */

void tat_avgpool_forward(float *out, const float *in, int batch, int c, int h, int w, int kh, int kw)
{
    int oh = h / kh, ow = w / kw, p, oy, ox, y, x;
    float inv = 1.f / (kh * kw);
    for (p = 0; p < batch * c; ++p) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * oh * ow;
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                float sum = 0;
                for (y = 0; y < kh; ++y)
                    for (x = 0; x < kw; ++x) sum += src[(oy * kh + y) * w + ox * kw + x];
                dst[oy * ow + ox] = sum * inv;
            }
    }
}

void tat_avgpool_backward(float *d_in, const float *d_out, int batch, int c, int h, int w, int kh,
                          int kw)
{
    int oh = h / kh, ow = w / kw, p, oy, ox, y, x;
    float inv = 1.f / (kh * kw);
    for (p = 0; p < batch * c; ++p) {
        float *dst = d_in + (size_t)p * h * w;
        const float *src = d_out + (size_t)p * oh * ow;
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                float g = src[oy * ow + ox] * inv;
                for (y = 0; y < kh; ++y)
                    for (x = 0; x < kw; ++x) dst[(oy * kh + y) * w + ox * kw + x] += g;
            }
    }
}

/* ---- Attention ------------------------------------------------------------------------- */

/* Row softmax in place, max subtracted: the logits are unscaled dot products of
 * BN-normalised vectors and reach tens to hundreds. */
static void softmax_rows(float *s, int rows, int cols)
{
    int i, j;
    for (i = 0; i < rows; ++i) {
        float *row = s + (size_t)i * cols;
        float mx = -FLT_MAX, sum = 0;
        for (j = 0; j < cols; ++j) mx = row[j] > mx ? row[j] : mx;
        for (j = 0; j < cols; ++j) {
            row[j] = expf(row[j] - mx);
            sum += row[j];
        }
        float inv = 1.f / sum;
        for (j = 0; j < cols; ++j) row[j] *= inv;
    }
}

double tat_attention_forward(float *O, float *A, const float *Q, const float *K, const float *V,
                             const float *T, int n_blocks, int N, int d)
{
    size_t blk = (size_t)d * N, i;
    double sse = 0;
    int b;
    for (b = 0; b < n_blocks; ++b) {
        float *a = A + (size_t)b * N * N, *o = O + b * blk;
        const float *t = T + b * blk;
        tat_gemm(1, 0, N, N, d, 1, Q + b * blk, N, K + b * blk, N, 0, a, N); /* S = Q^T K */
        softmax_rows(a, N, N);
        tat_gemm(0, 1, d, N, N, 1, V + b * blk, N, a, N, 0, o, N); /* O = V A^T */
        for (i = 0; i < blk; ++i) sse += (double)(o[i] - t[i]) * (o[i] - t[i]);
    }
    return sse;
}

size_t tat_attention_scratch_floats(int N, int d)
{
    return (size_t)d * N + (size_t)N * N + N;
}

void tat_attention_backward(float *d_Q, float *d_K, float *d_V, const float *Q, const float *K,
                            const float *V, const float *T, const float *A, const float *O, float w,
                            float *scratch, int n_blocks, int N, int d)
{
    size_t blk = (size_t)d * N, i;
    float *dO = scratch, *dS = scratch + blk, *D = dS + (size_t)N * N;
    int b, r, j, c;
    for (b = 0; b < n_blocks; ++b) {
        const float *a = A + (size_t)b * N * N, *o = O + b * blk, *t = T + b * blk;
        const float *q = Q + b * blk, *k = K + b * blk, *v = V + b * blk;
        for (i = 0; i < blk; ++i) dO[i] = 2 * w * (o[i] - t[i]);
        tat_gemm(0, 0, d, N, N, 1, dO, N, a, N, 1, d_V + b * blk, N);   /* dV += dO A   */
        tat_gemm(1, 0, N, N, d, 1, dO, N, v, N, 0, dS, N);              /* dP = dO^T V  */
        for (r = 0; r < N; ++r) D[r] = 0;
        for (c = 0; c < d; ++c)                                          /* D_i = dO_i.o_i */
            for (r = 0; r < N; ++r) D[r] += dO[(size_t)c * N + r] * o[(size_t)c * N + r];
        for (r = 0; r < N; ++r) {                                        /* dS = A (dP - D) */
            float *row = dS + (size_t)r * N;
            const float *arow = a + (size_t)r * N;
            for (j = 0; j < N; ++j) row[j] = arow[j] * (row[j] - D[r]);
        }
        tat_gemm(0, 1, d, N, N, 1, k, N, dS, N, 1, d_Q + b * blk, N);   /* dQ += K dS^T */
        if (d_K) tat_gemm(0, 0, d, N, N, 1, q, N, dS, N, 1, d_K + b * blk, N); /* dK += Q dS */
    }
}

/* ---- Terms ------------------------------------------------------------------------------ */

const char *tat_patch_geometry_error(int h, int w, int grid_h, int grid_w, int groups)
{
    if (grid_h < 1 || grid_w < 1) return "the patch grid must be at least 1,1";
    if (grid_h > h || grid_w > w) return "the patch grid is larger than the feature map";
    if (groups < 1) return "groups must be at least 1";
    if ((grid_h * grid_w) % groups) return "groups does not divide the number of patches";
    return NULL;
}

const char *tat_anchor_geometry_error(int h, int w, int anchor_h, int anchor_w)
{
    if (anchor_h < 1 || anchor_w < 1) return "the anchor grid must be at least 1,1";
    if (anchor_h > h || anchor_w > w) return "the anchor grid is larger than the feature map";
    return NULL;
}

static void term_alloc(tat_term *t)
{
    size_t n = (size_t)t->n_blocks * t->N * t->d;
    if (!t->direct) {
        t->q_buf = tat_calloc(n, sizeof(float));
        t->k_buf = tat_calloc(n, sizeof(float));
        t->v_buf = tat_calloc(n, sizeof(float));
        t->t_buf = tat_calloc(n, sizeof(float));
        t->dq_buf = tat_calloc(n, sizeof(float));
        t->dk_buf = tat_calloc(n, sizeof(float));
        t->dv_buf = tat_calloc(n, sizeof(float));
    }
    t->o = tat_calloc(n, sizeof(float));
    t->attn = tat_calloc((size_t)t->n_blocks * t->N * t->N, sizeof(float));
    t->scratch = tat_calloc(tat_attention_scratch_floats(t->N, t->d), sizeof(float));
}

void tat_term_init_patch(tat_term *t, int batch, int c, int h, int w, int grid_h, int grid_w,
                         int groups)
{
    memset(t, 0, sizeof(*t));
    t->kind = TAT_TERM_PATCH_GROUPS;
    t->batch = batch;
    t->c = c;
    t->h = h;
    t->w = w;
    t->grid_h = grid_h;
    t->grid_w = grid_w;
    t->groups = groups;
    t->n_blocks = batch * groups;
    t->N = (h / grid_h) * (w / grid_w);
    t->d = grid_h * grid_w / groups * c;
    /* one patch covering the map: an NCHW image already is the block */
    t->direct = grid_h == 1 && grid_w == 1;
    term_alloc(t);
}

void tat_term_init_anchor(tat_term *t, int batch, int c, int h, int w, int anchor_h, int anchor_w)
{
    memset(t, 0, sizeof(*t));
    t->kind = TAT_TERM_ANCHORS;
    t->batch = batch;
    t->c = c;
    t->h = h;
    t->w = w;
    t->groups = 1;
    t->pool_h = h / anchor_h;
    t->pool_w = w / anchor_w;
    t->n_blocks = batch;
    /* as avg_pool2d: the pooled map may hold more anchors than asked (11 / (11/4) = 5) */
    t->N = (h / t->pool_h) * (w / t->pool_w);
    t->d = c;
    t->direct = 0;
    term_alloc(t);
}

void tat_term_free(tat_term *t)
{
    free(t->q_buf);
    free(t->k_buf);
    free(t->v_buf);
    free(t->t_buf);
    free(t->dq_buf);
    free(t->dk_buf);
    free(t->dv_buf);
    free(t->o);
    free(t->attn);
    free(t->scratch);
    memset(t, 0, sizeof(*t));
}

size_t tat_term_elements_per_image(const tat_term *t)
{
    return (size_t)(t->n_blocks / t->batch) * t->N * t->d;
}

double tat_term_flops_per_image(const tat_term *t)
{
    return 4.0 * t->N * t->N * t->d * (t->n_blocks / t->batch);
}

/* Maps one NCHW map into the term's blocks. */
static void to_blocks(const tat_term *t, float *blocks, const float *x)
{
    if (t->kind == TAT_TERM_PATCH_GROUPS)
        tat_patch_gather(blocks, x, t->batch, t->c, t->h, t->w, t->grid_h, t->grid_w, t->groups);
    else
        tat_avgpool_forward(blocks, x, t->batch, t->c, t->h, t->w, t->pool_h, t->pool_w);
}

/* The adjoint of to_blocks: d_x += the blocks' gradient mapped back. */
static void from_blocks_add(const tat_term *t, float *d_x, const float *d_blocks)
{
    if (t->kind == TAT_TERM_PATCH_GROUPS)
        tat_patch_scatter_add(d_x, d_blocks, t->batch, t->c, t->h, t->w, t->grid_h, t->grid_w,
                              t->groups);
    else
        tat_avgpool_backward(d_x, d_blocks, t->batch, t->c, t->h, t->w, t->pool_h, t->pool_w);
}

double tat_term_forward(tat_term *t, const float *q, const float *k, const float *v,
                        const float *target)
{
    if (t->direct) {
        t->Q = q;
        t->K = k;
        t->V = v;
        t->T = target;
    } else {
        to_blocks(t, t->q_buf, q);
        to_blocks(t, t->k_buf, k);
        to_blocks(t, t->v_buf, v);
        to_blocks(t, t->t_buf, target);
        t->Q = t->q_buf;
        t->K = t->k_buf;
        t->V = t->v_buf;
        t->T = t->t_buf;
    }
    return tat_attention_forward(t->o, t->attn, t->Q, t->K, t->V, t->T, t->n_blocks, t->N, t->d);
}

void tat_term_backward(tat_term *t, float *d_q, float *d_k, float *d_v, float w)
{
    if (t->direct) {
        tat_attention_backward(d_q, d_k, d_v, t->Q, t->K, t->V, t->T, t->attn, t->o, w, t->scratch,
                               t->n_blocks, t->N, t->d);
        return;
    }
    size_t n = (size_t)t->n_blocks * t->N * t->d;
    memset(t->dq_buf, 0, n * sizeof(float));
    memset(t->dv_buf, 0, n * sizeof(float));
    if (d_k) memset(t->dk_buf, 0, n * sizeof(float));
    tat_attention_backward(t->dq_buf, d_k ? t->dk_buf : NULL, t->dv_buf, t->Q, t->K, t->V, t->T,
                           t->attn, t->o, w, t->scratch, t->n_blocks, t->N, t->d);
    from_blocks_add(t, d_q, t->dq_buf);
    from_blocks_add(t, d_v, t->dv_buf);
    if (d_k) from_blocks_add(t, d_k, t->dk_buf);
}
