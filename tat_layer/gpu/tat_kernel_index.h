#ifndef TAT_KERNEL_INDEX_H
#define TAT_KERNEL_INDEX_H
/*
 * The per-element bodies of the CUDA kernels in tat_kernels.cu, as host+device inline functions.
 *
 * Every kernel is a thin loop "for each index in my share: call one function below"; the
 * functions hold all the index arithmetic and the arithmetic on values. Compiled by nvcc they
 * run on the device; compiled by a C compiler they run on the host, where
 * tests/test_kernel_emulation.c walks them over the whole index space (and, for the
 * reductions, over every thread of a block) and compares with the CPU reference in tat.c.
 * So a wrong index here fails a CPU test, on a machine without a GPU.
 *
 * The cuBLAS calls are described the same way: tat_gemm_map() turns one row-major batched
 * product (as tat.c writes them) into the column-major arguments cuBLAS takes, and the GPU
 * code passes exactly that struct to cublasSgemmStridedBatched.
 */
#include <math.h>
#include <stddef.h>

#include "tat.h" /* the geometry structs */

#ifdef __CUDACC__
#define TAT_HD __host__ __device__ static inline
#else
#define TAT_HD static inline
#endif

/* Threads per block of every reduction kernel (BatchNorm statistics, softmax rows, loss sum). */
#define TAT_REDUCE_THREADS 256

/* ---- Patch regrouping ------------------------------------------------------------------ */
/* Same geometry and numbering as tat_patch_gather in tat.c. */
TAT_HD size_t tat_patch_block_elements(tat_patch_geom g)
{
    /* batch * groups blocks of d * N, with d * N = (P / groups) * c * ph * pw */
    size_t per = (size_t)(g.grid_h * g.grid_w / g.groups);
    return (size_t)g.batch * g.groups * per * g.c * (g.h / g.grid_h) * (g.w / g.grid_w);
}

/* ---- Average pooling, kernel = stride = (kh, kw), no padding --------------------------- */
TAT_HD size_t tat_pool_out_elements(tat_pool_geom g)
{
    return (size_t)g.planes * (g.h / g.kh) * (g.w / g.kw);
}

/* ---- im2col for a stride-1 "same" convolution (pad = ksize / 2) ------------------------- */
/* Batch-wide layout: one (c*k*k) x (batch*h*w) matrix, image b in columns b*h*w .. so the
 * weight gradient over the whole batch is ONE product with K = batch*h*w, and the per-image
 * products address their columns through ldb/ldc = batch*h*w. With ksize 1 it is the plain
 * NCHW -> C x (batch*h*w) permutation (used for the output gradient too). tat.c's im2col_same
 * is the one-image case (batch 1). */
TAT_HD size_t tat_col_elements(tat_conv_geom g)
{
    return (size_t)g.batch * g.c * g.ksize * g.ksize * g.h * g.w;
}

/* ---- Stacked embeddings ----------------------------------------------------------------- */
/* n embeddings of one input (the query and the value) run their conv as ONE product: stacked
 * weights (n*c x kk) give a channel-major output (n*c x batch*hw). Their NCHW buffers (x_hat,
 * out) are contiguous, embedding after embedding, so the stack is one n x batch x c x hw array;
 * these map it to and from the channel-major matrix. */
typedef struct {
    int n, batch, c, hw;
} tat_stack_geom;

TAT_HD size_t tat_stack_elements(tat_stack_geom g) { return (size_t)g.n * g.batch * g.c * g.hw; }

/* ---- Index arithmetic: 64-bit, and 32-bit where the sizes allow ----------------------- */
/* tat_kernel_index_body.h holds every per-element function that divides an index (patch map,
 * pooling, im2col/col2im, stack permutation, dS rows), written once over TAT_IDX: here it is
 * instantiated with size_t (the names as written) and with unsigned int (the names + _32).
 * 64-bit division is many times slower than 32-bit on a GPU; a kernel uses the _32 functions
 * when tat_index_fits_32 holds for every buffer it indexes. */
TAT_HD int tat_index_fits_32(size_t max_elements) { return max_elements < ((size_t)1 << 31); }

#define TAT_IDX size_t
#define TAT_FN(name) name
#include "tat_kernel_index_body.h"
#undef TAT_IDX
#undef TAT_FN
#define TAT_IDX unsigned int
#define TAT_FN(name) name##_32
#include "tat_kernel_index_body.h"
#undef TAT_IDX
#undef TAT_FN

/* ---- BatchNorm (training mode), same statistics groups as tat.c ----------------------- */
/* Group gi: channel gi of every image (per_image 0) or plane gi = b*c + ch (per_image 1).
 * A group has count = runs * spatial elements; element j is at tat_bn_offset(g, gi, j). */
TAT_HD int tat_bn_groups(tat_bn_geom g) { return g.per_image ? g.batch * g.c : g.c; }
TAT_HD size_t tat_bn_count(tat_bn_geom g)
{
    return (size_t)(g.per_image ? 1 : g.batch) * g.spatial;
}
TAT_HD size_t tat_bn_offset(tat_bn_geom g, int gi, size_t j)
{
    size_t run = j / g.spatial, i = j % g.spatial;
    if (g.per_image) return (size_t)gi * g.spatial + i;
    return (run * g.c + gi) * g.spatial + i;
}

/* A group's statistics are split over `splits` blocks (tat_bn_splits), block s taking the
 * contiguous chunk [s * chunk, min((s + 1) * chunk, count)) of the group's elements; each block
 * reduces its chunk in its tree, and the splits' partial sums are combined in split order
 * (tat_bn_combine), so the result is the same run after run. Enough blocks in all to give
 * every SM TAT_REDUCE_WAVES of them, at least TAT_BN_MIN_PER_THREAD elements per thread, at
 * most TAT_BN_MAX_SPLITS per group. */
#define TAT_REDUCE_WAVES 4
#define TAT_BN_MIN_PER_THREAD 8
#define TAT_BN_MAX_SPLITS 64
TAT_HD int tat_bn_splits(tat_bn_geom g, int sm_count)
{
    size_t groups = (size_t)tat_bn_groups(g), n = tat_bn_count(g);
    size_t per_block = (size_t)TAT_REDUCE_THREADS * TAT_BN_MIN_PER_THREAD;
    size_t want = ((size_t)(sm_count > 0 ? sm_count : 1) * TAT_REDUCE_WAVES + groups - 1) / groups;
    size_t most = (n + per_block - 1) / per_block;
    if (want > most) want = most;
    if (want > TAT_BN_MAX_SPLITS) want = TAT_BN_MAX_SPLITS;
    return want < 1 ? 1 : (int)want;
}
TAT_HD size_t tat_bn_chunk(tat_bn_geom g, int splits)
{
    return (tat_bn_count(g) + splits - 1) / splits;
}
/* The chunk [*j0, *j1) of split s. */
TAT_HD void tat_bn_chunk_range(tat_bn_geom g, int splits, int s, size_t *j0, size_t *j1)
{
    size_t c = tat_bn_chunk(g, splits), n = tat_bn_count(g);
    *j0 = (size_t)s * c < n ? (size_t)s * c : n;
    *j1 = *j0 + c < n ? *j0 + c : n;
}
/* The splits' partials of one group, at stride `stride` (1, or 2 for interleaved pairs), in
 * split order. */
TAT_HD double tat_bn_combine(const double *partials, int splits, int stride)
{
    double s = 0;
    int k;
    for (k = 0; k < splits; ++k) s += partials[(size_t)k * stride];
    return s;
}

/* Thread tid of nt: its share (j = j0 + tid, j0 + tid + nt, ... below j1) of the group's sum. */
TAT_HD double tat_bn_partial_sum(tat_bn_geom g, const float *x, int gi, size_t j0, size_t j1,
                                 int tid, int nt)
{
    size_t j;
    double s = 0;
    for (j = j0 + tid; j < j1; j += nt) s += x[tat_bn_offset(g, gi, j)];
    return s;
}

TAT_HD double tat_bn_partial_sqdev(tat_bn_geom g, const float *x, int gi, double mean, size_t j0,
                                   size_t j1, int tid, int nt)
{
    size_t j;
    double s = 0;
    for (j = j0 + tid; j < j1; j += nt) {
        double v = x[tat_bn_offset(g, gi, j)] - mean;
        s += v * v;
    }
    return s;
}

/* From the reduced sums: mean and 1/sqrt(var + eps), biased variance, as tat.c. */
TAT_HD void tat_bn_stats(tat_bn_geom g, double sum, double sqdev, float eps, float *mean,
                         float *inv_std)
{
    double count = (double)tat_bn_count(g);
    *mean = (float)(sum / count);
    *inv_std = (float)(1.0 / sqrt(sqdev / count + eps));
}

/* Writes x_hat and out for element j of group gi. in may alias x_hat. */
TAT_HD void tat_bn_normalize(tat_bn_geom g, float *out, float *x_hat, const float *in,
                             const float *gamma, const float *beta, int gi, float mean,
                             float inv_std, size_t j)
{
    size_t off = tat_bn_offset(g, gi, j);
    int ch = gi % g.c;
    float v = (in[off] - mean) * inv_std;
    x_hat[off] = v;
    out[off] = gamma[ch] * v + beta[ch];
}

/* Backward sums of group gi: sum dy and sum dy * x_hat, thread tid's share of [j0, j1). */
TAT_HD void tat_bn_partial_dsums(tat_bn_geom g, const float *dy, const float *x_hat, int gi,
                                 size_t j0, size_t j1, int tid, int nt, double *sum_dy,
                                 double *sum_dy_xh)
{
    size_t j;
    double a = 0, b = 0;
    for (j = j0 + tid; j < j1; j += nt) {
        size_t off = tat_bn_offset(g, gi, j);
        a += dy[off];
        b += (double)dy[off] * x_hat[off];
    }
    *sum_dy = a;
    *sum_dy_xh = b;
}

/* Channel ch's parameter gradients from the backward partials (groups x splits pairs of
 * sum dy, sum dy * x_hat): group after group (image order in per-image mode), each group's
 * splits in order, as tat.c adds them image by image. */
TAT_HD void tat_bn_param_grads(tat_bn_geom g, const double *partials, int splits, int ch,
                               float *d_gamma, float *d_beta)
{
    int b, runs = g.per_image ? g.batch : 1;
    for (b = 0; b < runs; ++b) {
        int gi = g.per_image ? b * g.c + ch : ch;
        const double *p = partials + (size_t)gi * splits * 2;
        d_gamma[ch] += (float)tat_bn_combine(p + 1, splits, 2);
        d_beta[ch] += (float)tat_bn_combine(p, splits, 2);
    }
}

/* d_in for element j of group gi: assigned (assign 1: the embedding backward writes a fresh
 * buffer) or accumulated. */
TAT_HD void tat_bn_backward_element(tat_bn_geom g, float *d_in, const float *dy,
                                    const float *x_hat, const float *gamma, const float *inv_std,
                                    int gi, double sum_dy, double sum_dy_xh, int assign, size_t j)
{
    size_t off = tat_bn_offset(g, gi, j);
    double count = (double)tat_bn_count(g);
    float k = gamma[gi % g.c] * inv_std[gi];
    float m_dy = (float)(sum_dy / count), m_dy_xh = (float)(sum_dy_xh / count);
    float v = k * (dy[off] - m_dy - x_hat[off] * m_dy_xh);
    if (assign) d_in[off] = v;
    else d_in[off] += v;
}

/* ---- Row softmax, max subtracted ------------------------------------------------------- */
/* Threads that share one row: a warp for rows up to TAT_SOFTMAX_WARP_COLS (the patch-group
 * terms have N = 16 .. 1024: a 256-thread block would leave most threads idle), a block of
 * TAT_REDUCE_THREADS beyond. Either way the shares combine in a halving tree (a warp's
 * xor-shuffle butterfly gives every lane the tree's value). */
#define TAT_WARP 32
#define TAT_SOFTMAX_WARP_COLS 1024
TAT_HD int tat_softmax_row_threads(int cols)
{
    return cols <= TAT_SOFTMAX_WARP_COLS ? TAT_WARP : TAT_REDUCE_THREADS;
}

TAT_HD float tat_softmax_partial_max(const float *row, int cols, int tid, int nt)
{
    float mx = -3.402823466e38f;
    int j;
    for (j = tid; j < cols; j += nt) mx = row[j] > mx ? row[j] : mx;
    return mx;
}

TAT_HD float tat_softmax_partial_expsum(const float *row, int cols, float mx, int tid, int nt)
{
    float s = 0;
    int j;
    for (j = tid; j < cols; j += nt) s += expf(row[j] - mx);
    return s;
}

TAT_HD void tat_softmax_write(float *row, int cols, float mx, float sum, int tid, int nt)
{
    float inv = 1.f / sum;
    int j;
    for (j = tid; j < cols; j += nt) row[j] = expf(row[j] - mx) * inv;
}

/* ---- Loss and attention backward ------------------------------------------------------- */
/* The residual runs on a 2-D thread block: TAT_RESID_ROWS consecutive rows (row = blk * N + r,
 * one position of one block) by TAT_RESID_SPLIT threads sharing its d channels, so that even a
 * few anchor blocks fill the GPU and neighbouring threads read neighbouring positions. */
#define TAT_RESID_ROWS 32
#define TAT_RESID_SPLIT 8

/* Thread ty of ny on row `row`: for its channels ch = ty, ty + ny, .. of o's d x N block, o
 * becomes the residual o - t in place; returns its share of D_r = sum_c (o - t) o (the
 * backward's row dot, before the 2w factor) and puts its share of the squared error in *sse. */
TAT_HD float tat_residual_partial(float *o, const float *t, size_t row, int N, int d, int ty,
                                  int ny, double *sse)
{
    size_t blk = row / N, r = row % N;
    const float *tb = t + blk * d * N;
    float *ob = o + blk * d * N, D = 0;
    double s = 0;
    int ch;
    for (ch = ty; ch < d; ch += ny) {
        size_t i = (size_t)ch * N + r;
        float diff = ob[i] - tb[i];
        D += diff * ob[i];
        s += (double)diff * diff;
        ob[i] = diff;
    }
    *sse = s;
    return D;
}

/* ---- Streaming attention, fused (tat.c's block_forward_streaming / _backward_streaming) ---- */
/* In the flash-attention manner: no N x N matrix, no tile buffers. The forward runs one warp
 * per query row i of a block (TAT_FLASH_ROWS warps to a thread block): key tiles of TAT_WARP
 * keys, lane c scoring key j0 + c, a running row max m and sum l (online softmax), O's column
 * i rescaled and accumulated tile by tile, then divided by l, lse = m + log l kept for the
 * backward. The backward is two kernels of the same shape, so that every gradient column has
 * one writer (no atomics, a fixed order): one warp per query row for dQ (walking the key
 * tiles), one warp per key column for dK and dV (walking the query tiles); both recompute
 * A_ij = exp(s_ij - lse_i). Q, K, V, R (= O - T) and the gradients are n_blocks x d x N
 * (channel-major), lse and drow (D_i = R_i . O_i) n_blocks x N. */
#define TAT_FLASH_ROWS 8

typedef struct {
    const float *q, *k, *v, *r, *lse, *drow;
    float two_w;
    int n_blocks, N, d;
} tat_flash_args;

/* s_ij = Q_i . K_j of block blk */
TAT_HD float tat_flash_score(const float *q, const float *k, int N, int d, size_t blk, int i, int j)
{
    const float *qb = q + blk * d * N, *kb = k + blk * d * N;
    float s = 0;
    int ch;
    for (ch = 0; ch < d; ++ch) s += qb[(size_t)ch * N + i] * kb[(size_t)ch * N + j];
    return s;
}

/* The running max with a tile's max; on the first tile, the tile's. */
TAT_HD float tat_flash_new_max(float m, float tile_max, int first)
{
    return first || tile_max > m ? tile_max : m;
}

/* exp(s - m) of a lane, 0 past the last key of an odd tile */
TAT_HD float tat_flash_prob(float s, int valid, float m) { return valid ? expf(s - m) : 0.f; }

/* The factor O and l keep when the max grows from m_old to m_new (0 on the first tile). */
TAT_HD float tat_flash_rescale(float m_old, float m_new, int first)
{
    return first ? 0.f : expf(m_old - m_new);
}

/* Lane `lane` of nl: for its channels ch, out[ch, col] = keep * out[ch, col] (nothing when
 * first) + sum_c w[c] src[ch, c0 + c] over the cnt columns of a tile, block blk. */
TAT_HD void tat_flash_mix(float *out, const float *src, const float *w, int cnt, float keep,
                          int first, int N, int d, size_t blk, int col, int c0, int lane, int nl)
{
    size_t b = blk * d * N;
    int ch, c;
    for (ch = lane; ch < d; ch += nl) {
        const float *row = src + b + (size_t)ch * N + c0;
        float acc = first ? 0.f : out[b + (size_t)ch * N + col] * keep;
        for (c = 0; c < cnt; ++c) acc += w[c] * row[c];
        out[b + (size_t)ch * N + col] = acc;
    }
}

/* After the last key tile: O's column i divided by l; lane 0 writes lse. */
TAT_HD void tat_flash_finish(float *o, float *lse, float m, float l, int N, int d, size_t blk,
                             int i, int lane, int nl)
{
    size_t b = blk * d * N;
    float inv = 1.f / l;
    int ch;
    for (ch = lane; ch < d; ch += nl) o[b + (size_t)ch * N + i] *= inv;
    if (lane == 0) lse[blk * N + i] = m + logf(l);
}

/* Backward, pair (i, j) of block blk: a = A_ij (recomputed), returns dS_ij = 2w A_ij (R_i . V_j
 * - D_i), the attention gradient through the softmax (dO = 2w R). */
TAT_HD float tat_flash_dscore(tat_flash_args f, size_t blk, int i, int j, float *a)
{
    const float *rb = f.r + blk * f.d * f.N, *vb = f.v + blk * f.d * f.N;
    float dp = 0, p = expf(tat_flash_score(f.q, f.k, f.N, f.d, blk, i, j) - f.lse[blk * f.N + i]);
    int ch;
    for (ch = 0; ch < f.d; ++ch) dp += rb[(size_t)ch * f.N + i] * vb[(size_t)ch * f.N + j];
    *a = p;
    return f.two_w * p * (dp - f.drow[blk * f.N + i]);
}

/* Thread tid of nt's share of a sum of n doubles (tid, nt: a block's, or a whole grid's). */
TAT_HD double tat_partial_sum_d(const double *x, size_t n, size_t tid, size_t nt)
{
    double s = 0;
    size_t i;
    for (i = tid; i < n; i += nt) s += x[i];
    return s;
}

/* ---- Long sums: the squared error of a whole map, the loss sums ------------------------ */
/* A long sum runs on tat_reduce_blocks blocks (a grid-stride share per thread, one partial per
 * block, the unused partials of a TAT_SUM_BLOCKS buffer zeroed), then one block sums the
 * TAT_SUM_BLOCKS partials in its tree: a fixed order for a given device. The grid gives every
 * SM TAT_REDUCE_WAVES blocks, never fewer than TAT_SUM_MIN_PER_THREAD items per thread. */
#define TAT_SUM_BLOCKS 1024
#define TAT_SUM_MIN_PER_THREAD 4
TAT_HD int tat_reduce_blocks(size_t n, int sm_count)
{
    size_t per_block = (size_t)TAT_REDUCE_THREADS * TAT_SUM_MIN_PER_THREAD;
    size_t want = (size_t)(sm_count > 0 ? sm_count : 1) * TAT_REDUCE_WAVES;
    size_t most = (n + per_block - 1) / per_block;
    if (want > most) want = most;
    if (want > TAT_SUM_BLOCKS) want = TAT_SUM_BLOCKS;
    return want < 1 ? 1 : (int)want;
}

/* Global thread tid of nt: diff = x - target on its share, and its share of the sum of squares. */
TAT_HD double tat_sse_partial(float *diff, const float *x, const float *target, size_t n, size_t tid,
                              size_t nt)
{
    double s = 0;
    size_t i;
    for (i = tid; i < n; i += nt) {
        float v = x[i] - target[i];
        diff[i] = v;
        s += (double)v * v;
    }
    return s;
}

TAT_HD void tat_sse_grad_element(float *d_x, const float *diff, float two_w, size_t i)
{
    d_x[i] += two_w * diff[i];
}

/* ---- KD: softmax at temperature T of one row of logits, KL(p_t || p_s) ----------------- */
/* In double, as tat.c's log_softmax_row. */
TAT_HD double tat_kd_partial_max(const float *x, int n, float temperature, int tid, int nt)
{
    double m = -1.7976931348623157e308;
    int j;
    for (j = tid; j < n; j += nt) {
        double v = (double)x[j] / temperature;
        m = v > m ? v : m;
    }
    return m;
}

TAT_HD double tat_kd_partial_expsum(const float *x, int n, float temperature, double m, int tid,
                                    int nt)
{
    double s = 0;
    int j;
    for (j = tid; j < n; j += nt) s += exp((double)x[j] / temperature - m);
    return s;
}

/* With log_z = max + log(expsum) of the student (log_zs) and the teacher (log_zt): writes
 * p_s, p_t on thread tid's share of the row and returns its share of the KL. */
TAT_HD double tat_kd_partial_kl(float *p_s, float *p_t, const float *s, const float *t, int n,
                                float temperature, double log_zs, double log_zt, int tid, int nt)
{
    double kl = 0;
    int j;
    for (j = tid; j < n; j += nt) {
        double ls = (double)s[j] / temperature - log_zs, lt = (double)t[j] / temperature - log_zt;
        double pt = exp(lt);
        p_s[j] = (float)exp(ls);
        p_t[j] = (float)pt;
        if (pt > 0) kl += pt * (lt - ls);
    }
    return kl;
}

/* d/ds of T^2 KL(p_t || softmax(s/T)) = T (p_s - p_t), times the weight: scale = w T. */
TAT_HD void tat_kd_grad_element(float *d_s, const float *p_s, const float *p_t, float scale, size_t i)
{
    d_s[i] += scale * (p_s[i] - p_t[i]);
}

/* ---- Adam and AdamW: one fused step per array --------------------------------------- */
/* The rule of Darknet's adam_update_cpu (the Adam patch), element by element: d holds the
 * negative gradient summed over the batch, its mean feeds the moments; decoupled: AdamW's
 * weight shrink apart from the gradient, else decay * w joins the gradient; d is cleared. One
 * kernel does it all (Darknet's adam_update_gpu runs 9-10 over the array). */
typedef struct {
    float B1, B2, eps, decay, rate, c1, c2;
    int batch, decoupled;
} tat_adam_step;

TAT_HD tat_adam_step tat_adam_step_of(float B1, float B2, float eps, float decay, float rate,
                                      int batch, int t, int decoupled)
{
    tat_adam_step a;
    a.B1 = B1, a.B2 = B2, a.eps = eps, a.decay = decay, a.rate = rate;
    a.c1 = 1 - powf(B1, (float)t), a.c2 = 1 - powf(B2, (float)t);
    a.batch = batch, a.decoupled = decoupled;
    return a;
}

TAT_HD void tat_adam_element(float *w, float *d, float *m, float *v, tat_adam_step a, size_t i)
{
    float g = d[i] / a.batch - (a.decoupled ? 0 : a.decay * w[i]);
    float mi = a.B1 * m[i] + (1 - a.B1) * g, vi = a.B2 * v[i] + (1 - a.B2) * g * g, wi = w[i];
    m[i] = mi;
    v[i] = vi;
    if (a.decoupled) wi *= 1 - a.rate * a.decay;
    w[i] = wi + a.rate * (mi / a.c1) / (sqrtf(vi / a.c2) + a.eps);
    d[i] = 0;
}

/* ---- cuBLAS argument mapping ----------------------------------------------------------- */
/* A row-major batched product, as tat.c writes them with tat_gemm:
 *   C_i = alpha op(A_i) op(B_i) + beta C_i, op(A) M x K, op(B) K x N, i < batch,
 *   X_i = X + i * stride_x (a stride 0 shares one matrix across the batch). */
typedef struct {
    int trans_a, trans_b, M, N, K, lda, ldb, ldc;
    long long stride_a, stride_b, stride_c;
    int batch;
    float alpha, beta;
} tat_rowmajor_gemm;

/* The same product as cuBLAS (column-major) sees it. A row-major matrix is its transpose in
 * column-major, so C^T = op(B)^T op(A)^T: cuBLAS's first operand is our B and its second our
 * A (see tat_gemm_first / tat_gemm_second), m = N, n = M. trans: 0 = CUBLAS_OP_N, 1 = _T. */
typedef struct {
    int trans_first, trans_second, m, n, k, ld_first, ld_second, ldc;
    long long stride_first, stride_second, stride_c;
    int batch;
    float alpha, beta;
} tat_cublas_gemm;

static inline tat_cublas_gemm tat_gemm_map(tat_rowmajor_gemm g)
{
    tat_cublas_gemm c;
    c.trans_first = g.trans_b;
    c.trans_second = g.trans_a;
    c.m = g.N;
    c.n = g.M;
    c.k = g.K;
    c.ld_first = g.ldb;
    c.ld_second = g.lda;
    c.ldc = g.ldc;
    c.stride_first = g.stride_b;
    c.stride_second = g.stride_a;
    c.stride_c = g.stride_c;
    c.batch = g.batch;
    c.alpha = g.alpha;
    c.beta = g.beta;
    return c;
}

static inline const float *tat_gemm_first(const float *A, const float *B) { (void)A; return B; }
static inline const float *tat_gemm_second(const float *A, const float *B) { (void)B; return A; }

/* The row-major products the GPU path runs, one constructor each, shared with the test. */
static inline tat_rowmajor_gemm tat_rm_gemm(int ta, int tb, int M, int N, int K, int lda, int ldb,
                                            int ldc, long long sa, long long sb, long long sc,
                                            int batch, float alpha, float beta)
{
    tat_rowmajor_gemm g;
    g.trans_a = ta, g.trans_b = tb, g.M = M, g.N = N, g.K = K, g.lda = lda, g.ldb = ldb;
    g.ldc = ldc, g.stride_a = sa, g.stride_b = sb, g.stride_c = sc, g.batch = batch;
    g.alpha = alpha, g.beta = beta;
    return g;
}

/* Convolution as GEMMs over the whole batch (kk = in_c * k * k, hw = h * w, rows = the
 * output channels of the whole stack). The output and its gradient are channel-major
 * (rows x batch*hw, see tat_stack_cm_index); col is the batch-wide im2col (kk x batch*hw); a
 * 1x1's forward and input gradient use the NCHW image itself, one product per image. */
/* Y = W col (3x3: one product) or Y_b = W x_b (1x1, x_b: image b, kk x hw) */
static inline tat_rowmajor_gemm tat_gemm_conv_forward(int batch, int rows, int kk, int hw,
                                                      int one_by_one)
{
    int bhw = batch * hw;
    if (one_by_one)
        return tat_rm_gemm(0, 0, rows, hw, kk, kk, hw, bhw, 0, (long long)kk * hw, hw, batch, 1, 0);
    return tat_rm_gemm(0, 0, rows, bhw, kk, kk, bhw, bhw, 0, 0, 0, 1, 1, 0);
}
/* dW += dY col^T: one product with K = batch * hw */
static inline tat_rowmajor_gemm tat_gemm_conv_weight_grad(int batch, int rows, int kk, int hw)
{
    int bhw = batch * hw;
    return tat_rm_gemm(0, 1, rows, kk, bhw, bhw, bhw, kk, 0, 0, 0, 1, 1, 1);
}
/* 3x3: dcol = W^T dY (assigned; col2im follows). 1x1: d_in_b += W^T dY_b (NCHW). Over a stack
 * the products sum the embeddings' input gradients. */
static inline tat_rowmajor_gemm tat_gemm_conv_input_grad(int batch, int rows, int kk, int hw,
                                                         int one_by_one)
{
    int bhw = batch * hw;
    if (one_by_one)
        return tat_rm_gemm(1, 0, kk, hw, rows, kk, bhw, hw, 0, hw, (long long)kk * hw, batch, 1, 1);
    return tat_rm_gemm(1, 0, kk, bhw, rows, kk, bhw, bhw, 0, 0, 0, 1, 1, 0);
}

/* Attention over n blocks of d x N (channel-major), A and dS N x N. */
/* S = Q^T K */
static inline tat_rowmajor_gemm tat_gemm_scores(int n, int N, int d)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(1, 0, N, N, d, N, N, N, blk, blk, nn, n, 1, 0);
}
/* O = V A^T */
static inline tat_rowmajor_gemm tat_gemm_mix(int n, int N, int d)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(0, 1, d, N, N, N, N, N, blk, nn, blk, n, 1, 0);
}
/* dV = (2w R) A, R = O - T */
static inline tat_rowmajor_gemm tat_gemm_value_grad(int n, int N, int d, float two_w, float beta)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(0, 0, d, N, N, N, N, N, blk, nn, blk, n, two_w, beta);
}
/* dP = (2w R)^T V */
static inline tat_rowmajor_gemm tat_gemm_prob_grad(int n, int N, int d, float two_w)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(1, 0, N, N, d, N, N, N, blk, blk, nn, n, two_w, 0);
}
/* dQ = K dS^T */
static inline tat_rowmajor_gemm tat_gemm_query_grad(int n, int N, int d, float beta)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(0, 1, d, N, N, N, N, N, blk, nn, blk, n, 1, beta);
}
/* dK = Q dS */
static inline tat_rowmajor_gemm tat_gemm_key_grad(int n, int N, int d, float beta)
{
    long long blk = (long long)d * N, nn = (long long)N * N;
    return tat_rm_gemm(0, 0, d, N, N, N, N, N, blk, nn, blk, n, 1, beta);
}

#endif
