/* The GPU path's logic, run on the CPU: every kernel of tat_layer/tat_kernels.cu is a loop over
 * an index space calling a per-element function of tat_kernel_index.h, every cuBLAS call takes
 * the struct tat_gemm_map() returns, and the order of the calls is tat_gpu_steps.h. Here the
 * same functions run over the whole index space (reductions: over every thread of a block,
 * combined in the kernels' tree order), the structs drive a column-major strided-batched
 * sgemm written below, and tat_gpu_steps.h itself runs on host buffers with these as its
 * primitives; the results are compared with the CPU reference (tat.c) on odd shapes: the
 * primitives on shapes of their own, the embeddings and terms on every case of tests/tat_cases.h.
 * Not covered: cuBLAS itself, launch configurations, synchronisation,
 * device memory management (see tests/gpu/ for the test that needs a GPU).
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tat.h"
#include "tat_cases.h"
#include "tat_gpu_steps.h"
#include "tat_kernel_index.h"
#include "test_helpers.h"

/* A wrong index function must fail a check, not corrupt the heap: every map index the
 * emulation reads or writes through is range-checked first. */
static size_t out_of_range;

static size_t checked(size_t i, size_t n)
{
    if (i < n) return i;
    ++out_of_range;
    return 0;
}

/* Element-wise gathers with one value per element: tolerance; index errors give O(1) errors.
 * Products and reductions in a different order than tat.c (and OpenBLAS): fp32 rounding of
 * sums over at most a few hundred terms, values O(1): 1e-4 relative is ~100x that rounding. */
#define TOL_EXACT 1e-6
#define TOL_SUM 1e-4

/* ---- the column-major strided-batched sgemm cuBLAS computes --------------------------- */
static void ref_sgemm_strided_batched(int ta, int tb, int m, int n, int k, float alpha,
                                      const float *A, int lda, long long sa, const float *B,
                                      int ldb, long long sb, float beta, float *C, int ldc,
                                      long long sc, int batch)
{
    int p, i, j, l;
    for (p = 0; p < batch; ++p) {
        const float *a = A + p * sa, *b = B + p * sb;
        float *c = C + p * sc;
        for (j = 0; j < n; ++j)
            for (i = 0; i < m; ++i) {
                double s = 0;
                for (l = 0; l < k; ++l) {
                    float av = ta ? a[l + (size_t)i * lda] : a[i + (size_t)l * lda];
                    float bv = tb ? b[j + (size_t)l * ldb] : b[l + (size_t)j * ldb];
                    s += (double)av * bv;
                }
                /* cuBLAS does not read C when beta is 0 */
                c[i + (size_t)j * ldc] = (float)(alpha * s + (beta == 0 ? 0 : beta * c[i + (size_t)j * ldc]));
            }
    }
}

static int gemm_args_invalid;

/* What tat_gpu_gemm does, with the reference in place of cuBLAS; also the argument checks
 * cuBLAS makes (it would fail with CUBLAS_STATUS_INVALID_VALUE). */
static void emu_gemm(tat_rowmajor_gemm g, const float *A, const float *B, float *C)
{
    tat_cublas_gemm c = tat_gemm_map(g);
    int rows_first = c.trans_first ? c.k : c.m, rows_second = c.trans_second ? c.n : c.k;
    if (c.m < 0 || c.n < 0 || c.k < 0 || c.ld_first < (rows_first > 1 ? rows_first : 1) ||
        c.ld_second < (rows_second > 1 ? rows_second : 1) || c.ldc < (c.m > 1 ? c.m : 1) ||
        c.batch < 1)
        ++gemm_args_invalid;
    ref_sgemm_strided_batched(c.trans_first, c.trans_second, c.m, c.n, c.k, c.alpha,
                              tat_gemm_first(A, B), c.ld_first, c.stride_first,
                              tat_gemm_second(A, B), c.ld_second, c.stride_second, c.beta, C,
                              c.ldc, c.stride_c, c.batch);
}

/* The row-major mapping on its own: padded leading dimensions, all transposes, batches with a
 * shared operand, against tat_gemm. */
static void test_gemm_mapping(void)
{
    int ta, tb, ok = 1;
    double worst = 0;
    char detail[128];
    for (ta = 0; ta < 2; ++ta)
        for (tb = 0; tb < 2; ++tb) {
            int M = 5, N = 7, K = 3, batch = 3, p;
            int lda = (ta ? M : K) + 2, ldb = (tb ? K : N) + 1, ldc = N + 3;
            long long sa = 0, sb = (long long)(tb ? N : K) * ldb, sc = (long long)M * ldc;
            float *A = rand_array((size_t)(ta ? K : M) * lda, 1);
            float *B = rand_array((size_t)sb * batch, 1);
            float *C = rand_array((size_t)sc * batch, 1), *R = copy_array(C, (size_t)sc * batch);
            emu_gemm(tat_rm_gemm(ta, tb, M, N, K, lda, ldb, ldc, sa, sb, sc, batch, .7f, .3f), A,
                     B, C);
            for (p = 0; p < batch; ++p)
                tat_gemm(ta, tb, M, N, K, .7f, A, lda, B + p * sb, ldb, .3f, R + p * sc, ldc);
            double e = rel_err(C, R, (size_t)sc * batch);
            worst = e > worst ? e : worst;
            ok &= e <= TOL_SUM;
            free(A), free(B), free(C), free(R);
        }
    snprintf(detail, sizeof(detail), "relative error %.3g", worst);
    report(ok && !gemm_args_invalid, "emulation gemm: row-major to cuBLAS mapping, 4 transposes", "%s",
           detail);
}

/* ---- reductions as a block (or a warp) of nt threads does them: a halving tree ---------- */
static double tree_sum_dn(double *red, int nt)
{
    int s, t;
    for (s = nt / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] += red[t + s];
    return red[0];
}

static double tree_sum_d(double *red) { return tree_sum_dn(red, TAT_REDUCE_THREADS); }

static double tree_max_dn(double *red, int nt)
{
    int s, t;
    for (s = nt / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] = red[t + s] > red[t] ? red[t + s] : red[t];
    return red[0];
}

static float tree_sum_fn(float *red, int nt)
{
    int s, t;
    for (s = nt / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] += red[t + s];
    return red[0];
}

static float tree_max_fn(float *red, int nt)
{
    int s, t;
    for (s = nt / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] = red[t + s] > red[t] ? red[t + s] : red[t];
    return red[0];
}

/* The SM count the launchers would read from the device: an H200's 132 by default; the
 * split and grid tests set others. emu_bn_splits, when not 0, overrides tat_bn_splits (the
 * small shapes of the cases would all take one split). */
static int emu_sm_count = 132, emu_bn_splits;

static int emu_splits(tat_bn_geom g)
{
    return emu_bn_splits ? emu_bn_splits : tat_bn_splits(g, emu_sm_count);
}

/* one block (s, gi) of a BatchNorm reduction grid: its chunk's tree sum */
static double emu_bn_block_sum(tat_bn_geom g, const float *in, int gi, int splits, int s,
                               int sqdev, double mean)
{
    double red[TAT_REDUCE_THREADS];
    size_t j0, j1;
    int t, nt = TAT_REDUCE_THREADS;
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    for (t = 0; t < nt; ++t)
        red[t] = sqdev ? tat_bn_partial_sqdev(g, in, gi, mean, j0, j1, t, nt)
                       : tat_bn_partial_sum(g, in, gi, j0, j1, t, nt);
    return tree_sum_d(red);
}

/* bn_sum_kernel, bn_sqdev_kernel, bn_normalize_kernel, each grid block after block */
static void emu_bn_forward(float *out, float *x_hat, float *mean, float *inv_std, const float *in,
                           const float *gamma, const float *beta, tat_bn_geom g)
{
    int groups = tat_bn_groups(g), splits = emu_splits(g), gi, s, t, nt = TAT_REDUCE_THREADS;
    double *partials = calloc(2 * (size_t)groups * splits, sizeof(double));
    size_t j, j0, j1, n = tat_bn_count(g);
    for (gi = 0; gi < groups; ++gi)
        for (s = 0; s < splits; ++s)
            partials[(size_t)gi * splits + s] = emu_bn_block_sum(g, in, gi, splits, s, 0, 0);
    for (gi = 0; gi < groups; ++gi)
        for (s = 0; s < splits; ++s) {
            double m = tat_bn_combine(partials + (size_t)gi * splits, splits, 1) / (double)n;
            partials[((size_t)groups + gi) * splits + s] = emu_bn_block_sum(g, in, gi, splits, s, 1, m);
        }
    for (gi = 0; gi < groups; ++gi)
        for (s = 0; s < splits; ++s) {
            double sum = tat_bn_combine(partials + (size_t)gi * splits, splits, 1);
            double sq = tat_bn_combine(partials + ((size_t)groups + gi) * splits, splits, 1);
            float m, is;
            tat_bn_stats(g, sum, sq, TAT_BN_EPS, &m, &is);
            if (s == 0) mean[gi] = m, inv_std[gi] = is;
            tat_bn_chunk_range(g, splits, s, &j0, &j1);
            for (t = 0; t < nt; ++t)
                for (j = j0 + t; j < j1; j += nt) tat_bn_normalize(g, out, x_hat, in, gamma, beta, gi, m, is, j);
        }
    free(partials);
}

/* bn_dsums_kernel, bn_dinput_kernel, bn_param_grads_kernel */
static void emu_bn_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                            const float *x_hat, const float *inv_std, const float *gamma,
                            tat_bn_geom g, int assign)
{
    double r1[TAT_REDUCE_THREADS], r2[TAT_REDUCE_THREADS];
    int groups = tat_bn_groups(g), splits = emu_splits(g), gi, s, t, ch, nt = TAT_REDUCE_THREADS;
    double *partials = calloc(2 * (size_t)groups * splits, sizeof(double));
    size_t j, j0, j1;
    for (gi = 0; gi < groups; ++gi)
        for (s = 0; s < splits; ++s) {
            tat_bn_chunk_range(g, splits, s, &j0, &j1);
            for (t = 0; t < nt; ++t)
                tat_bn_partial_dsums(g, d_out, x_hat, gi, j0, j1, t, nt, &r1[t], &r2[t]);
            partials[((size_t)gi * splits + s) * 2] = tree_sum_d(r1);
            partials[((size_t)gi * splits + s) * 2 + 1] = tree_sum_d(r2);
        }
    if (d_in)
        for (gi = 0; gi < groups; ++gi)
            for (s = 0; s < splits; ++s) {
                const double *p = partials + (size_t)gi * splits * 2;
                double s_dy = tat_bn_combine(p, splits, 2), s_dy_xh = tat_bn_combine(p + 1, splits, 2);
                tat_bn_chunk_range(g, splits, s, &j0, &j1);
                for (t = 0; t < nt; ++t)
                    for (j = j0 + t; j < j1; j += nt)
                        tat_bn_backward_element(g, d_in, d_out, x_hat, gamma, inv_std, gi, s_dy,
                                                s_dy_xh, assign, j);
            }
    for (ch = 0; ch < g.c; ++ch) tat_bn_param_grads(g, partials, splits, ch, d_gamma, d_beta);
    free(partials);
}

/* a warp or a block per row, as tat_softmax_row_threads says */
static int softmax_shapes_seen[2];

static void emu_softmax_rows(float *s, int rows, int cols)
{
    float red[TAT_REDUCE_THREADS];
    int r, t, nt = tat_softmax_row_threads(cols);
    ++softmax_shapes_seen[nt == TAT_WARP];
    for (r = 0; r < rows; ++r) {
        float *row = s + (size_t)r * cols;
        for (t = 0; t < nt; ++t) red[t] = tat_softmax_partial_max(row, cols, t, nt);
        float mx = tree_max_fn(red, nt);
        for (t = 0; t < nt; ++t) red[t] = tat_softmax_partial_expsum(row, cols, mx, t, nt);
        float sum = tree_sum_fn(red, nt);
        for (t = 0; t < nt; ++t) tat_softmax_write(row, cols, mx, sum, t, nt);
    }
}

/* ---- the primitives of tat_gpu_steps.h, as the kernels run them, on the host ------------- */
/* The test shapes are small: the kernels would take their 32-bit index paths (the _32
 * functions), so these do too; test_index_widths checks the 64-bit functions against them. */
static void emu_patch_gather(float *blocks, const float *x, tat_patch_geom g);
static void emu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g);

static void emu_avgpool_forward(float *out, const float *in, tat_pool_geom g)
{
    size_t i;
    for (i = 0; i < tat_pool_out_elements(g); ++i) out[i] = tat_pool_forward_value_32(g, in, (unsigned)i);
}

static void emu_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g)
{
    float inv = 1.f / (g.kh * g.kw);
    size_t i;
    for (i = 0; i < (size_t)g.planes * g.h * g.w; ++i) {
        long long o = tat_pool_window_of_32(g, (unsigned)i);
        if (o >= 0) d_in[i] += d_out[checked(o, tat_pool_out_elements(g))] * inv;
    }
}

static void emu_im2col(float *col, const float *in, tat_conv_geom g)
{
    size_t i;
    for (i = 0; i < tat_col_elements(g); ++i) col[i] = tat_im2col_value_32(g, in, (unsigned)i);
}

static void emu_stack_to_nchw(float *nchw, const float *cm, tat_stack_geom g)
{
    size_t i, n = tat_stack_elements(g);
    for (i = 0; i < n; ++i) nchw[i] = cm[checked(tat_stack_cm_index_32(g, (unsigned)i), n)];
}

static void emu_stack_to_cm(float *cm, const float *nchw, tat_stack_geom g)
{
    size_t i, n = tat_stack_elements(g);
    for (i = 0; i < n; ++i) cm[checked(tat_stack_cm_index_32(g, (unsigned)i), n)] = nchw[i];
}

static void emu_col2im_add(float *d_in, const float *col, tat_conv_geom g)
{
    size_t i;
    for (i = 0; i < (size_t)g.batch * g.c * g.h * g.w; ++i) d_in[i] += tat_col2im_value_32(g, col, (unsigned)i);
}

/* residual_kernel: each row's TAT_RESID_SPLIT channel shares, combined in a halving tree */
static void emu_residual(float *o, const float *t, float *drow, double *sse_pos, int N, int d,
                         size_t rows)
{
    float dred[TAT_RESID_SPLIT];
    double sred[TAT_RESID_SPLIT];
    size_t i;
    int ty;
    for (i = 0; i < rows; ++i) {
        for (ty = 0; ty < TAT_RESID_SPLIT; ++ty)
            dred[ty] = tat_residual_partial(o, t, i, N, d, ty, TAT_RESID_SPLIT, &sred[ty]);
        drow[i] = tree_sum_fn(dred, TAT_RESID_SPLIT);
        sse_pos[i] = tree_sum_dn(sred, TAT_RESID_SPLIT);
    }
}

/* sum_kernel: one block of a grid-stride grid of `blocks` (tat_reduce_blocks), its partial
 * into out[b]; block 0 zeroes out[blocks ..] */
static void emu_sum_grid(double *out, const double *x, size_t n, int blocks)
{
    double red[TAT_REDUCE_THREADS];
    size_t nt = (size_t)blocks * TAT_REDUCE_THREADS, i;
    int b, t;
    for (b = 0; b < blocks; ++b) {
        for (t = 0; t < TAT_REDUCE_THREADS; ++t)
            red[t] = tat_partial_sum_d(x, n, (size_t)b * TAT_REDUCE_THREADS + t, nt);
        out[b] = tree_sum_d(red);
    }
    if (blocks > 1)
        for (i = blocks; i < TAT_SUM_BLOCKS; ++i) out[i] = 0;
}

/* loss_start: the grid's partials, then one block into device_sum, the copy, the wait */
static void emu_loss_start(tat_gpu_loss *l, const double *x, size_t n)
{
    int blocks = tat_reduce_blocks(n, emu_sm_count);
    if (blocks > 1) {
        emu_sum_grid(l->partials, x, n, blocks);
        x = l->partials;
        n = TAT_SUM_BLOCKS;
    }
    emu_sum_grid(l->device_sum, x, n, 1);
    *l->host_sum = *l->device_sum;
}

static double emu_loss_wait(tat_gpu_loss *l) { return *l->host_sum; }

/* sse_kernel: tat_reduce_blocks blocks, a global grid-stride share per thread, one partial per
 * block, the rest zeroed */
static void emu_sse(float *diff, const float *x, const float *target, size_t n, double *partials)
{
    double red[TAT_REDUCE_THREADS];
    int blocks = tat_reduce_blocks(n, emu_sm_count), b, t;
    size_t nt = (size_t)blocks * TAT_REDUCE_THREADS, i;
    for (b = 0; b < blocks; ++b) {
        for (t = 0; t < TAT_REDUCE_THREADS; ++t)
            red[t] = tat_sse_partial(diff, x, target, n, (size_t)b * TAT_REDUCE_THREADS + t, nt);
        partials[b] = tree_sum_d(red);
    }
    for (i = blocks; i < TAT_SUM_BLOCKS; ++i) partials[i] = 0;
}

static void emu_sse_grad(float *d_x, const float *diff, float two_w, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) tat_sse_grad_element(d_x, diff, two_w, i);
}

/* kd_rows_kernel: one block per row; max, sum of exponentials, KL, each a tree */
static void emu_kd_rows(float *p_s, float *p_t, const float *s, const float *tl, int rows, int n,
                        float temperature, double *kl_rows)
{
    double red[TAT_REDUCE_THREADS];
    int r, t, nt = TAT_REDUCE_THREADS;
    for (r = 0; r < rows; ++r) {
        const float *sr = s + (size_t)r * n, *tr = tl + (size_t)r * n;
        double ms, mt, zs, zt;
        for (t = 0; t < nt; ++t) red[t] = tat_kd_partial_max(sr, n, temperature, t, nt);
        ms = tree_max_dn(red, nt);
        for (t = 0; t < nt; ++t) red[t] = tat_kd_partial_max(tr, n, temperature, t, nt);
        mt = tree_max_dn(red, nt);
        for (t = 0; t < nt; ++t) red[t] = tat_kd_partial_expsum(sr, n, temperature, ms, t, nt);
        zs = ms + log(tree_sum_dn(red, nt));
        for (t = 0; t < nt; ++t) red[t] = tat_kd_partial_expsum(tr, n, temperature, mt, t, nt);
        zt = mt + log(tree_sum_dn(red, nt));
        for (t = 0; t < nt; ++t)
            red[t] = tat_kd_partial_kl(p_s + (size_t)r * n, p_t + (size_t)r * n, sr, tr, n,
                                       temperature, zs, zt, t, nt);
        kl_rows[r] = tree_sum_dn(red, nt);
    }
}

static void emu_kd_grad(float *d_s, const float *p_s, const float *p_t, float scale, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) tat_kd_grad_element(d_s, p_s, p_t, scale, i);
}

static void emu_dscore(float *ds, const float *a, const float *drow, float two_w, int N, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) tat_dscore_element_32(ds, a, drow, two_w, N, (unsigned)i);
}

static void emu_zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

/* flash_forward_kernel: warp after warp (a query row each), each tile's lanes one phase at a
 * time as the warp runs them */
static int flash_tiles_seen[3]; /* one key tile, several, a partial last one */

static void emu_flash_forward(float *o, float *lse, tat_flash_args f)
{
    float s[TAT_WARP], p[TAT_WARP], red[TAT_WARP];
    size_t row, rows = (size_t)f.n_blocks * f.N;
    int lane;
    flash_tiles_seen[0] += f.N <= TAT_WARP;
    flash_tiles_seen[1] += f.N > TAT_WARP;
    flash_tiles_seen[2] += f.N % TAT_WARP != 0;
    for (row = 0; row < rows; ++row) {
        size_t blk = row / f.N;
        int i = (int)(row % f.N), j0;
        float m = 0, l = 0;
        for (j0 = 0; j0 < f.N; j0 += TAT_WARP) {
            int first = j0 == 0, cnt = f.N - j0 < TAT_WARP ? f.N - j0 : TAT_WARP;
            float mx, m_new, keep;
            for (lane = 0; lane < TAT_WARP; ++lane) {
                int j = j0 + lane;
                s[lane] = j < f.N ? tat_flash_score(f.q, f.k, f.N, f.d, blk, i, j) : 0.f;
                red[lane] = j < f.N ? s[lane] : -3.402823466e38f;
            }
            mx = tree_max_fn(red, TAT_WARP);
            m_new = tat_flash_new_max(m, mx, first);
            keep = tat_flash_rescale(m, m_new, first);
            for (lane = 0; lane < TAT_WARP; ++lane) red[lane] = p[lane] = tat_flash_prob(s[lane], j0 + lane < f.N, m_new);
            l = l * keep + tree_sum_fn(red, TAT_WARP);
            m = m_new;
            for (lane = 0; lane < TAT_WARP; ++lane)
                tat_flash_mix(o, f.v, p, cnt, keep, first, f.N, f.d, blk, i, j0, lane, TAT_WARP);
        }
        for (lane = 0; lane < TAT_WARP; ++lane) tat_flash_finish(o, lse, m, l, f.N, f.d, blk, i, lane, TAT_WARP);
    }
}

static void emu_flash_query_grad(float *dq, tat_flash_args f)
{
    float ds[TAT_WARP];
    size_t row, rows = (size_t)f.n_blocks * f.N;
    int lane;
    for (row = 0; row < rows; ++row) {
        size_t blk = row / f.N;
        int i = (int)(row % f.N), j0;
        for (j0 = 0; j0 < f.N; j0 += TAT_WARP) {
            int cnt = f.N - j0 < TAT_WARP ? f.N - j0 : TAT_WARP;
            float a;
            for (lane = 0; lane < TAT_WARP; ++lane)
                ds[lane] = j0 + lane < f.N ? tat_flash_dscore(f, blk, i, j0 + lane, &a) : 0.f;
            for (lane = 0; lane < TAT_WARP; ++lane)
                tat_flash_mix(dq, f.k, ds, cnt, 1.f, 0, f.N, f.d, blk, i, j0, lane, TAT_WARP);
        }
    }
}

static void emu_flash_key_value_grad(float *dk, float *dv, tat_flash_args f)
{
    float ds[TAT_WARP], wa[TAT_WARP];
    size_t col, cols = (size_t)f.n_blocks * f.N;
    int lane;
    for (col = 0; col < cols; ++col) {
        size_t blk = col / f.N;
        int j = (int)(col % f.N), i0;
        for (i0 = 0; i0 < f.N; i0 += TAT_WARP) {
            int cnt = f.N - i0 < TAT_WARP ? f.N - i0 : TAT_WARP;
            for (lane = 0; lane < TAT_WARP; ++lane) {
                float a = 0;
                ds[lane] = i0 + lane < f.N ? tat_flash_dscore(f, blk, i0 + lane, j, &a) : 0.f;
                wa[lane] = f.two_w * a;
            }
            for (lane = 0; lane < TAT_WARP; ++lane) {
                tat_flash_mix(dv, f.r, wa, cnt, 1.f, 0, f.N, f.d, blk, j, i0, lane, TAT_WARP);
                if (dk) tat_flash_mix(dk, f.q, ds, cnt, 1.f, 0, f.N, f.d, blk, j, i0, lane, TAT_WARP);
            }
        }
    }
}

static const tat_gpu_ops emu_ops = {
    .gemm = emu_gemm,
    .patch_gather = emu_patch_gather,
    .patch_scatter_add = emu_patch_scatter_add,
    .avgpool_forward = emu_avgpool_forward,
    .avgpool_backward = emu_avgpool_backward,
    .im2col = emu_im2col,
    .stack_to_nchw = emu_stack_to_nchw,
    .stack_to_cm = emu_stack_to_cm,
    .col2im_add = emu_col2im_add,
    .batchnorm_forward = emu_bn_forward,
    .batchnorm_backward = emu_bn_backward,
    .softmax_rows = emu_softmax_rows,
    .residual = emu_residual,
    .loss_start = emu_loss_start,
    .loss_wait = emu_loss_wait,
    .dscore = emu_dscore,
    .zero = emu_zero,
    .sse = emu_sse,
    .sse_grad = emu_sse_grad,
    .kd_rows = emu_kd_rows,
    .kd_grad = emu_kd_grad,
    .flash_forward = emu_flash_forward,
    .flash_query_grad = emu_flash_query_grad,
    .flash_key_value_grad = emu_flash_key_value_grad,
};

/* a loss's device and pinned doubles, on the host */
static void emu_loss_init(tat_gpu_loss *l)
{
    l->device_sum = calloc(2 + TAT_SUM_BLOCKS, sizeof(double));
    l->host_sum = l->device_sum + 1;
    l->partials = l->device_sum + 2;
    l->ready = NULL;
}

/* A stack of n embeddings laid out as tat_gpu_embeddings_init lays it out on the device
 * (weights, weight_grads, x_hat, out contiguous across the stack), on host memory, with the
 * parameters and gradients of the reference embeddings src[i]. */
typedef struct {
    tat_gpu_embedding e[2], *p[2];
    float *weights, *weight_grads, *x_hat, *out;
    int n;
} emu_stack;

static void emu_stack_init(emu_stack *st, tat_embedding *const *src, int n, int batch, int h, int w)
{
    size_t nw = (size_t)src[0]->out_c * src[0]->in_c * src[0]->ksize * src[0]->ksize;
    size_t nout = (size_t)batch * src[0]->out_c * h * w, c = src[0]->out_c;
    int i;
    st->n = n;
    st->weights = calloc(n * nw, sizeof(float));
    st->weight_grads = calloc(n * nw, sizeof(float));
    st->x_hat = calloc(n * nout, sizeof(float));
    st->out = calloc(n * nout, sizeof(float));
    for (i = 0; i < n; ++i) {
        tat_gpu_embedding *g = &st->e[i];
        memset(g, 0, sizeof(*g));
        g->in_c = src[i]->in_c, g->out_c = src[i]->out_c, g->ksize = src[i]->ksize;
        g->weights = st->weights + i * nw, g->weight_grads = st->weight_grads + i * nw;
        g->x_hat = st->x_hat + i * nout, g->out = st->out + i * nout;
        memcpy(g->weights, src[i]->weights, nw * sizeof(float));
        memcpy(g->weight_grads, src[i]->weight_grads, nw * sizeof(float));
        g->scales = copy_array(src[i]->scales, c), g->biases = copy_array(src[i]->biases, c);
        g->scale_grads = copy_array(src[i]->scale_grads, c);
        g->bias_grads = copy_array(src[i]->bias_grads, c);
        g->out_grad = calloc(nout, sizeof(float));
        g->mean = calloc((size_t)batch * c, sizeof(float));
        g->inv_std = calloc((size_t)batch * c, sizeof(float));
        st->p[i] = g;
    }
}

static void emu_stack_free(emu_stack *st)
{
    int i;
    for (i = 0; i < st->n; ++i) {
        tat_gpu_embedding *g = &st->e[i];
        free(g->scales), free(g->biases), free(g->scale_grads), free(g->bias_grads);
        free(g->out_grad), free(g->mean), free(g->inv_std);
    }
    free(st->weights), free(st->weight_grads), free(st->x_hat), free(st->out);
}

/* A case's student embeddings (student_c -> teacher_c, its kernel size and BN mode), n of them
 * stacked (2: the query and value of one map, as the layers run them), against tat.c run on
 * each embedding on its own. */
static void test_embeddings(const tat_case *tc, int n)
{
    int batch = tc->batch, in_c = tc->student_c, out_c = tc->teacher_c, h = tc->h, w = tc->w;
    int ksize = tc->ksize, per_image = tc->per_image;
    tat_embedding ref[2], *refp[2] = {&ref[0], &ref[1]};
    emu_stack st;
    int hw = h * w, i, k;
    size_t nin = (size_t)batch * in_c * hw, nout = (size_t)batch * out_c * hw;
    size_t nw = (size_t)out_c * in_c * ksize * ksize;
    size_t nws = (size_t)batch * in_c * ksize * ksize * hw; /* the GPU's: im2col of the batch */
    float *in = rand_array(nin, 2);
    float *ws_ref = calloc(tat_conv_workspace_floats(batch, in_c, out_c, h, w, ksize) + 1, sizeof(float));
    float *ws_emu = calloc(nws + 1, sizeof(float));
    float *d_in_ref = rand_array(nin, 1), *d_in_emu = copy_array(d_in_ref, nin);
    char name[200], n2[300];
    tat_rng rng = tat_rng_from_rand();
    for (k = 0; k < n; ++k) {
        tat_embedding_init(&ref[k], in_c, out_c, ksize, &rng);
        for (i = 0; i < out_c; ++i) {
            ref[k].scales[i] = (float)(1 + .3 * rng_signed());
            ref[k].biases[i] = (float)(.2 * rng_signed());
            /* gradients already hold something: both sides must accumulate */
            ref[k].scale_grads[i] = (float)rng_signed();
            ref[k].bias_grads[i] = (float)rng_signed();
        }
        for (i = 0; i < (int)nw; ++i) ref[k].weight_grads[i] = (float)rng_signed();
        tat_embedding_alloc_activations(&ref[k], batch, h, w);
        for (i = 0; i < (int)nout; ++i) ref[k].out_grad[i] = 7; /* a previous step's */
    }
    emu_stack_init(&st, refp, n, batch, h, w);
    for (k = 0; k < n; ++k)
        for (i = 0; i < (int)nout; ++i) st.p[k]->out_grad[i] = 7;
    snprintf(name, sizeof(name), "emulation %s: %s %dx%d conv + BN %s (b%d c%d->%d %dx%d)",
             tc->name, n == 1 ? "embedding" : "2 stacked embeddings", ksize, ksize,
             per_image ? "per image" : "batch", batch, in_c, out_c, h, w);
    for (k = 0; k < n; ++k) tat_embedding_forward(&ref[k], in, ws_ref, batch, h, w, per_image);
    tat_steps_embeddings_forward(&emu_ops, st.p, n, in, ws_emu, batch, h, w, per_image);
    for (k = 0; k < n; ++k) {
        int groups = per_image ? batch * out_c : out_c;
        double e;
        snprintf(n2, sizeof(n2), "%s: #%d forward", name, k);
        check_close(n2, st.p[k]->out, ref[k].out, nout, TOL_SUM);
        snprintf(n2, sizeof(n2), "%s: #%d forward clears the output gradient", name, k);
        check_close(n2, st.p[k]->out_grad, ref[k].out_grad, nout, TOL_EXACT);
        snprintf(n2, sizeof(n2), "%s: #%d mean, inv_std", name, k);
        e = rel_err(st.p[k]->mean, ref[k].mean, groups) + rel_err(st.p[k]->inv_std, ref[k].inv_std, groups);
        report(e <= TOL_SUM, n2, "statistics differ: relative error %.3g", e);
    }
    for (k = 0; k < n; ++k) {
        float *g = rand_array(nout, 1);
        memcpy(ref[k].out_grad, g, nout * sizeof(float));
        memcpy(st.p[k]->out_grad, g, nout * sizeof(float));
        free(g);
        tat_embedding_backward(&ref[k], d_in_ref, in, ws_ref, batch, h, w, per_image);
    }
    tat_steps_embeddings_backward(&emu_ops, st.p, n, d_in_emu, in, ws_emu, batch, h, w, per_image);
    snprintf(n2, sizeof(n2), "%s: backward d_in (summed over the stack)", name);
    check_close(n2, d_in_emu, d_in_ref, nin, TOL_SUM);
    for (k = 0; k < n; ++k) {
        double e;
        snprintf(n2, sizeof(n2), "%s: #%d backward d_weights", name, k);
        check_close(n2, st.p[k]->weight_grads, ref[k].weight_grads, nw, TOL_SUM);
        snprintf(n2, sizeof(n2), "%s: #%d backward d_scales, d_biases", name, k);
        e = rel_err(st.p[k]->scale_grads, ref[k].scale_grads, out_c) +
            rel_err(st.p[k]->bias_grads, ref[k].bias_grads, out_c);
        report(e <= TOL_SUM, n2, "parameter gradients differ: relative error %.3g", e);
        tat_embedding_free(&ref[k]);
    }
    emu_stack_free(&st);
    free(in), free(ws_ref), free(ws_emu), free(d_in_ref), free(d_in_emu);
}

/* ---- patch regrouping and pooling on their own ------------------------------------------ */
static void test_patch(int batch, int c, int h, int w, int gh, int gw, int groups)
{
    tat_patch_geom g = {batch, c, h, w, gh, gw, groups};
    size_t n = tat_patch_block_elements(g), nx = (size_t)batch * c * h * w, i;
    float *x = rand_array(nx, 1), *ref = calloc(n, sizeof(float)), *emu = calloc(n, sizeof(float));
    float *dref = rand_array(nx, 1), *demu = copy_array(dref, nx), *dblk = rand_array(n, 1);
    char *hit = calloc(nx, 1), name[160];
    int injective = 1;
    tat_patch_gather(ref, x, g);
    emu_patch_gather(emu, x, g);
    snprintf(name, sizeof(name), "emulation patch gather (b%d c%d %dx%d grid %d,%d groups %d)",
             batch, c, h, w, gh, gw, groups);
    check_close(name, emu, ref, n, TOL_EXACT);
    /* the scatter kernel writes without atomics: no two block elements may share a target */
    for (i = 0; i < n; ++i) {
        size_t m = tat_patch_map_index(g, i);
        if (m >= nx || hit[m]++) injective = 0;
    }
    snprintf(name, sizeof(name), "emulation patch map is one-to-one (grid %d,%d groups %d)", gh, gw, groups);
    report(injective, name, "two block elements map to one map element, or out of range");
    tat_patch_scatter_add(dref, dblk, g);
    emu_patch_scatter_add(demu, dblk, g);
    snprintf(name, sizeof(name), "emulation patch scatter-add (grid %d,%d groups %d)", gh, gw, groups);
    check_close(name, demu, dref, nx, TOL_EXACT);
    free(x), free(ref), free(emu), free(dref), free(demu), free(dblk), free(hit);
}

static void test_pool(int planes, int h, int w, int kh, int kw)
{
    tat_pool_geom g = {planes, h, w, kh, kw};
    size_t n = tat_pool_out_elements(g), nx = (size_t)planes * h * w;
    float *x = rand_array(nx, 1), *ref = calloc(n, sizeof(float)), *emu = calloc(n, sizeof(float));
    float *dref = rand_array(nx, 1), *demu = copy_array(dref, nx), *dout = rand_array(n, 1);
    char name[160];
    tat_avgpool_forward(ref, x, g);
    emu_avgpool_forward(emu, x, g);
    snprintf(name, sizeof(name), "emulation avgpool forward (%d planes %dx%d kernel %d,%d)", planes, h, w, kh, kw);
    check_close(name, emu, ref, n, TOL_EXACT);
    tat_avgpool_backward(dref, dout, g);
    emu_avgpool_backward(demu, dout, g);
    snprintf(name, sizeof(name), "emulation avgpool backward (%d planes %dx%d kernel %d,%d)", planes, h, w, kh, kw);
    check_close(name, demu, dref, nx, TOL_EXACT);
    free(x), free(ref), free(emu), free(dref), free(demu), free(dout);
}

/* ---- a whole term: tat_gpu_steps.h on host buffers ------------------------------------- */
static void emu_patch_gather(float *blocks, const float *x, tat_patch_geom g)
{
    size_t i, nx = (size_t)g.batch * g.c * g.h * g.w;
    for (i = 0; i < tat_patch_block_elements(g); ++i) blocks[i] = x[checked(tat_patch_map_index_32(g, (unsigned)i), nx)];
}

static void emu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g)
{
    size_t i, nx = (size_t)g.batch * g.c * g.h * g.w;
    for (i = 0; i < tat_patch_block_elements(g); ++i) d_x[checked(tat_patch_map_index_32(g, (unsigned)i), nx)] += d_blocks[i];
}

/* tat_gpu_term_init's buffers, on the host */
static void emu_term_init(tat_gpu_term *e, const tat_term_geom *geom)
{
    size_t blk = tat_steps_block_floats(geom), nn = tat_steps_attention_floats(geom);
    memset(e, 0, sizeof(*e));
    e->geom = *geom;
    if (!geom->direct) e->blocks = calloc(7 * blk, sizeof(float));
    e->attn = calloc(nn, sizeof(float));
    e->ds = calloc(nn, sizeof(float));
    if (geom->stream_tile) {
        e->lse = calloc((size_t)geom->n_blocks * geom->N, sizeof(float));
    }
    e->resid = calloc(blk, sizeof(float));
    e->drow = calloc((size_t)geom->n_blocks * geom->N, sizeof(float));
    e->sse_pos = calloc((size_t)geom->n_blocks * geom->N, sizeof(double));
    emu_loss_init(&e->loss);
}

static void emu_term_free(tat_gpu_term *e)
{
    free(e->blocks), free(e->attn), free(e->ds), free(e->resid), free(e->drow), free(e->sse_pos);
    free(e->lse);
    free(e->loss.device_sum);
}

/* One term of a case on random q, k, v maps of teacher shape: its anchor term (anchors != 0)
 * or its patch-group term. */
static void test_term(const tat_case *tc, int anchors, int stream_tile)
{
    int batch = tc->batch, c = tc->teacher_c, key_grad = tc->key_learned;
    float qk_scale = tat_case_qk_scale(tc);
    tat_term ref;
    tat_gpu_term emu;
    size_t nx = (size_t)batch * c * tc->h * tc->w, nn;
    float *q = rand_array(nx, qk_scale), *k = rand_array(nx, qk_scale), *v = rand_array(nx, 1);
    float *tg = rand_array(nx, 1);
    float *dq_ref = rand_array(nx, .1f), *dk_ref = rand_array(nx, .1f), *dv_ref = rand_array(nx, .1f);
    float *dq_emu = copy_array(dq_ref, nx), *dk_emu = copy_array(dk_ref, nx), *dv_emu = copy_array(dv_ref, nx);
    float w_loss = -0.37f;
    char what[200], name[300];
    double sse_ref, sse_emu;
    tat_term_geom geom;
    const char *err = tat_case_term(tc, anchors, &geom, what, sizeof(what));
    if (err) {
        snprintf(name, sizeof(name), "emulation %s: geometry", what);
        report(0, name, "valid geometry rejected: %s", err);
        free(q), free(k), free(v), free(tg), free(dq_ref), free(dk_ref), free(dv_ref);
        free(dq_emu), free(dk_emu), free(dv_emu);
        return;
    }
    if (stream_tile) {
        /* both sides stream: tat.c in its per-block tiles, the steps in the fused kernels
           (key tiles of a warp, whatever stream_tile says) */
        size_t len = strlen(what);
        geom.stream_tile = stream_tile;
        snprintf(what + len, sizeof(what) - len, ", streaming tile %d", stream_tile);
    }
    tat_term_init(&ref, &geom);
    emu_term_init(&emu, &geom);
    nn = (size_t)geom.n_blocks * geom.N * geom.N;
    sse_ref = tat_term_forward(&ref, q, k, v, tg);
    tat_steps_term_forward(&emu_ops, &emu, q, k, v, tg);
    sse_emu = emu_loss_wait(&emu.loss);
    if (stream_tile) {
        snprintf(name, sizeof(name), "emulation %s: row log-sum-exp", what);
        check_close(name, emu.lse, ref.lse, (size_t)geom.n_blocks * geom.N, TOL_SUM);
    } else {
        snprintf(name, sizeof(name), "emulation %s: attention matrices", what);
        check_close(name, emu.attn, ref.attn, nn, TOL_SUM);
    }
    snprintf(name, sizeof(name), "emulation %s: residual O - T", what);
    check_close(name, emu.resid, ref.resid, (size_t)geom.n_blocks * geom.d * geom.N, TOL_SUM);
    snprintf(name, sizeof(name), "emulation %s: row dots D", what);
    check_close(name, emu.drow, ref.drow, (size_t)geom.n_blocks * geom.N, TOL_SUM);
    {
        double e = fabs(sse_emu - sse_ref) / (fabs(sse_ref) > 1e-12 ? fabs(sse_ref) : 1);
        snprintf(name, sizeof(name), "emulation %s: loss", what);
        report(e <= TOL_SUM, name, "%.9g vs %.9g", sse_emu, sse_ref);
    }
    tat_term_backward(&ref, dq_ref, key_grad ? dk_ref : NULL, dv_ref, w_loss);
    tat_steps_term_backward(&emu_ops, &emu, dq_emu, key_grad ? dk_emu : NULL, dv_emu, w_loss);
    snprintf(name, sizeof(name), "emulation %s: backward d_q", what);
    check_close(name, dq_emu, dq_ref, nx, TOL_SUM);
    snprintf(name, sizeof(name), "emulation %s: backward d_v", what);
    check_close(name, dv_emu, dv_ref, nx, TOL_SUM);
    snprintf(name, sizeof(name), "emulation %s: backward d_k%s", what, key_grad ? "" : " untouched");
    check_close(name, dk_emu, dk_ref, nx, TOL_SUM);
    tat_term_free(&ref);
    emu_term_free(&emu);
    free(q), free(k), free(v), free(tg), free(dq_ref), free(dk_ref), free(dv_ref);
    free(dq_emu), free(dk_emu), free(dv_emu);
}

/* ---- the two index widths agree on every index (64-bit is the path of huge buffers) ------ */
static void test_index_widths(void)
{
    tat_patch_geom pg = {3, 5, 11, 13, 3, 4, 2};
    tat_pool_geom qg = {7, 11, 13, 2, 3};
    tat_conv_geom cg3 = {3, 4, 9, 7, 3}, cg1 = {2, 5, 6, 11, 1};
    tat_stack_geom sg = {2, 3, 5, 77};
    float *x = rand_array(20000, 1), *y = rand_array(20000, 1), *z = rand_array(20000, 1);
    float *y2 = copy_array(y, 20000), drow[2000];
    size_t i, bad = 0;
    int k;
    for (i = 0; i < 2000; ++i) drow[i] = (float)rng_signed();
    for (i = 0; i < tat_patch_block_elements(pg); ++i)
        bad += tat_patch_map_index(pg, i) != tat_patch_map_index_32(pg, (unsigned)i);
    for (i = 0; i < tat_pool_out_elements(qg); ++i)
        bad += tat_pool_forward_value(qg, x, i) != tat_pool_forward_value_32(qg, x, (unsigned)i);
    for (i = 0; i < (size_t)qg.planes * qg.h * qg.w; ++i)
        bad += tat_pool_window_of(qg, i) != tat_pool_window_of_32(qg, (unsigned)i);
    for (k = 0; k < 2; ++k) {
        tat_conv_geom cg = k ? cg1 : cg3;
        for (i = 0; i < tat_col_elements(cg); ++i)
            bad += tat_im2col_value(cg, x, i) != tat_im2col_value_32(cg, x, (unsigned)i);
        for (i = 0; i < (size_t)cg.batch * cg.c * cg.h * cg.w; ++i)
            bad += tat_col2im_value(cg, x, i) != tat_col2im_value_32(cg, x, (unsigned)i);
    }
    for (i = 0; i < tat_stack_elements(sg); ++i)
        bad += tat_stack_cm_index(sg, i) != tat_stack_cm_index_32(sg, (unsigned)i);
    for (i = 0; i < 1900; ++i) { /* rows of N = 10 */
        tat_dscore_element(y, z, drow, .3f, 10, i);
        tat_dscore_element_32(y2, z, drow, .3f, 10, (unsigned)i);
    }
    bad += memcmp(y, y2, 20000 * sizeof(float)) != 0;
    report(!bad, "emulation index paths: 32-bit and 64-bit functions agree on every index",
           "%zu indices differ", bad);
    report(tat_index_fits_32(((size_t)1 << 31) - 1) && !tat_index_fits_32((size_t)1 << 31),
           "emulation index paths: 32-bit below 2^31 elements only", "wrong threshold");
    free(x), free(y), free(z), free(y2);
}

/* ---- row softmax on its own: a warp per row (short rows) and a block per row (long) ------- */
static void test_softmax(int rows, int cols)
{
    size_t n = (size_t)rows * cols;
    float *x = rand_array(n, 30), *ref = copy_array(x, n);
    char name[160];
    int r, j;
    for (r = 0; r < rows; ++r) {
        float *row = ref + (size_t)r * cols, mx = row[0];
        double sum = 0;
        for (j = 1; j < cols; ++j) mx = row[j] > mx ? row[j] : mx;
        for (j = 0; j < cols; ++j) sum += exp((double)row[j] - mx);
        for (j = 0; j < cols; ++j) row[j] = (float)(exp((double)row[j] - mx) / sum);
    }
    emu_softmax_rows(x, rows, cols);
    snprintf(name, sizeof(name), "emulation softmax rows (%d x %d, %s per row, logits +-30)", rows,
             cols, tat_softmax_row_threads(cols) == TAT_WARP ? "a warp" : "a block");
    check_close(name, x, ref, n, TOL_SUM);
    free(x), free(ref);
}

/* ---- the baselines: FitNet and KD through tat_gpu_steps.h against tat.c ------------------ */
static void test_fitnet(int batch, int in_c, int out_c, int h, int w, int per_image)
{
    int hw = h * w, i;
    size_t nin = (size_t)batch * in_c * hw, nout = (size_t)batch * out_c * hw;
    size_t nw = (size_t)out_c * in_c;
    tat_embedding ref, *refp = &ref;
    emu_stack st;
    tat_gpu_loss loss;
    float *student = rand_array(nin, 2), *teacher = rand_array(nout, 1);
    float *diff_ref = calloc(nout, sizeof(float)), *diff_emu = calloc(nout, sizeof(float));
    float *ws = calloc(nin, sizeof(float));
    float *d_ref = rand_array(nin, 1), *d_emu = copy_array(d_ref, nin);
    double partials[TAT_SUM_BLOCKS], sse_ref, sse_emu;
    float w_loss = -0.23f;
    char name[200], what[120];
    tat_rng rng = tat_rng_from_rand();
    tat_embedding_init(&ref, in_c, out_c, 1, &rng);
    for (i = 0; i < out_c; ++i) ref.scales[i] = (float)(1 + .3 * rng_signed());
    for (i = 0; i < (int)nw; ++i) ref.weight_grads[i] = (float)rng_signed(); /* momentum left */
    tat_embedding_alloc_activations(&ref, batch, h, w);
    emu_stack_init(&st, &refp, 1, batch, h, w);
    tat_gpu_embedding *emu = st.p[0];
    emu_loss_init(&loss);
    snprintf(what, sizeof(what), "emulation fitnet (b%d c%d->%d %dx%d, bn %s)", batch, in_c, out_c,
             h, w, per_image ? "image" : "batch");
    tat_embedding_forward(&ref, student, NULL, batch, h, w, per_image);
    sse_ref = tat_sse_forward(diff_ref, ref.out, teacher, nout);
    tat_steps_fitnet_forward(&emu_ops, emu, student, teacher, diff_emu, partials, &loss, batch,
                             h, w, per_image);
    sse_emu = emu_loss_wait(&loss);
    snprintf(name, sizeof(name), "%s: loss", what);
    report(fabs(sse_emu - sse_ref) <= TOL_SUM * fabs(sse_ref), name, "%.9g vs %.9g", sse_emu, sse_ref);
    snprintf(name, sizeof(name), "%s: projection - teacher", what);
    check_close(name, diff_emu, diff_ref, nout, TOL_SUM);
    tat_sse_backward(ref.out_grad, diff_ref, nout, w_loss);
    tat_embedding_backward(&ref, d_ref, student, NULL, batch, h, w, per_image);
    tat_steps_fitnet_backward(&emu_ops, emu, d_emu, student, diff_emu, ws, w_loss, batch, h, w,
                              per_image);
    snprintf(name, sizeof(name), "%s: backward student delta", what);
    check_close(name, d_emu, d_ref, nin, TOL_SUM);
    snprintf(name, sizeof(name), "%s: backward d_weights", what);
    check_close(name, emu->weight_grads, ref.weight_grads, nw, TOL_SUM);
    snprintf(name, sizeof(name), "%s: backward d_scales, d_biases", what);
    {
        double e = rel_err(emu->scale_grads, ref.scale_grads, out_c) +
                   rel_err(emu->bias_grads, ref.bias_grads, out_c);
        report(e <= TOL_SUM, name, "parameter gradients differ: relative error %.3g", e);
    }
    tat_embedding_free(&ref);
    emu_stack_free(&st);
    free(loss.device_sum);
    free(student), free(teacher), free(diff_ref), free(diff_emu), free(ws), free(d_ref), free(d_emu);
}

static void test_kd(int batch, int n, float temperature)
{
    size_t total = (size_t)batch * n;
    float *s = rand_array(total, 6), *t = rand_array(total, 6);
    float *ps_ref = calloc(total, sizeof(float)), *pt_ref = calloc(total, sizeof(float));
    float *ps_emu = calloc(total, sizeof(float)), *pt_emu = calloc(total, sizeof(float));
    float *d_ref = rand_array(total, 1), *d_emu = copy_array(d_ref, total);
    double *kl_rows = calloc(batch, sizeof(double)), kl_ref, kl_emu;
    tat_gpu_loss loss;
    char name[200], what[100];
    emu_loss_init(&loss);
    snprintf(what, sizeof(what), "emulation kd (%d rows x %d logits, T %g)", batch, n, temperature);
    kl_ref = tat_kd_forward(ps_ref, pt_ref, s, t, batch, n, temperature);
    tat_steps_kd_forward(&emu_ops, ps_emu, pt_emu, kl_rows, &loss, s, t, batch, n, temperature);
    kl_emu = emu_loss_wait(&loss);
    snprintf(name, sizeof(name), "%s: KL", what);
    report(fabs(kl_emu - kl_ref) <= TOL_SUM * fabs(kl_ref), name, "%.9g vs %.9g", kl_emu, kl_ref);
    snprintf(name, sizeof(name), "%s: softmaxes", what);
    check_close(name, ps_emu, ps_ref, total, TOL_SUM);
    check_close(name, pt_emu, pt_ref, total, TOL_SUM);
    tat_kd_backward(d_ref, ps_ref, pt_ref, batch, n, temperature, -0.7f);
    tat_steps_kd_backward(&emu_ops, d_emu, ps_emu, pt_emu, batch, n, temperature, -0.7f);
    snprintf(name, sizeof(name), "%s: backward student delta", what);
    check_close(name, d_emu, d_ref, total, TOL_SUM);
    free(loss.device_sum);
    free(s), free(t), free(ps_ref), free(pt_ref), free(ps_emu), free(pt_emu), free(d_ref), free(d_emu);
    free(kl_rows);
}

/* ---- BatchNorm split over several blocks per statistics group ----------------------------- */
/* splits that divide the count, that do not, and more splits than a short group fills (empty
 * trailing chunks); both BN modes, the backward assigning and accumulating, against tat.c */
static void test_bn_splits(int batch, int c, int spatial, int per_image, int splits)
{
    tat_bn_geom g = {batch, c, spatial, per_image};
    size_t n = (size_t)batch * c * spatial, groups = tat_bn_groups(g);
    float *in = rand_array(n, 3), *gamma = rand_array(c, 1), *beta = rand_array(c, 1);
    float *out_ref = calloc(n, sizeof(float)), *xh_ref = calloc(n, sizeof(float));
    float *out_emu = calloc(n, sizeof(float)), *xh_emu = calloc(n, sizeof(float));
    float *m_ref = calloc(groups, sizeof(float)), *is_ref = calloc(groups, sizeof(float));
    float *m_emu = calloc(groups, sizeof(float)), *is_emu = calloc(groups, sizeof(float));
    float *dy = rand_array(n, 1), *din_ref = rand_array(n, 1), *din_emu = copy_array(din_ref, n);
    float *dg_ref = rand_array(c, 1), *db_ref = rand_array(c, 1);
    float *dg_emu = copy_array(dg_ref, c), *db_emu = copy_array(db_ref, c);
    char name[200];
    int assign;
    emu_bn_splits = splits;
    tat_batchnorm_forward(out_ref, xh_ref, m_ref, is_ref, in, gamma, beta, g);
    emu_bn_forward(out_emu, xh_emu, m_emu, is_emu, in, gamma, beta, g);
    snprintf(name, sizeof(name), "emulation batchnorm on %d splits (b%d c%d spatial %d, %s): forward",
             splits, batch, c, spatial, per_image ? "per image" : "batch");
    check_close(name, out_emu, out_ref, n, TOL_SUM);
    snprintf(name, sizeof(name), "emulation batchnorm on %d splits (b%d c%d spatial %d, %s): mean, inv_std",
             splits, batch, c, spatial, per_image ? "per image" : "batch");
    report(rel_err(m_emu, m_ref, groups) + rel_err(is_emu, is_ref, groups) <= TOL_SUM, name,
           "statistics differ");
    for (assign = 0; assign < 2; ++assign) {
        float *din_e = assign ? rand_array(n, 1) : din_emu;
        float *din_r = assign ? calloc(n, sizeof(float)) : din_ref;
        tat_batchnorm_backward(din_r, dg_ref, db_ref, dy, xh_ref, is_ref, gamma, g);
        emu_bn_backward(din_e, dg_emu, db_emu, dy, xh_emu, is_emu, gamma, g, assign);
        snprintf(name, sizeof(name), "emulation batchnorm on %d splits (b%d c%d spatial %d, %s): backward d_in %s",
                 splits, batch, c, spatial, per_image ? "per image" : "batch",
                 assign ? "assigned" : "accumulated");
        check_close(name, din_e, din_r, n, TOL_SUM);
        if (assign) free(din_e), free(din_r);
    }
    snprintf(name, sizeof(name), "emulation batchnorm on %d splits (b%d c%d spatial %d, %s): d_gamma, d_beta",
             splits, batch, c, spatial, per_image ? "per image" : "batch");
    report(rel_err(dg_emu, dg_ref, c) + rel_err(db_emu, db_ref, c) <= TOL_SUM, name,
           "parameter gradients differ: %.3g", rel_err(dg_emu, dg_ref, c) + rel_err(db_emu, db_ref, c));
    emu_bn_splits = 0;
    free(in), free(gamma), free(beta), free(out_ref), free(xh_ref), free(out_emu), free(xh_emu);
    free(m_ref), free(is_ref), free(m_emu), free(is_emu), free(dy), free(din_ref), free(din_emu);
    free(dg_ref), free(db_ref), free(dg_emu), free(db_emu);
}

/* The grid sizes the launchers derive from the SM count: bounded, filled, monotone in the
 * device's size. */
static void test_reduction_grids(void)
{
    tat_bn_geom small = {2, 64, 49, 0}, big = {64, 32, 56 * 56, 0}, one = {1, 1, 5, 1};
    int ok = 1;
    ok &= tat_reduce_blocks(10, 132) == 1;
    ok &= tat_reduce_blocks((size_t)1 << 30, 132) == 132 * TAT_REDUCE_WAVES;
    ok &= tat_reduce_blocks((size_t)1 << 30, 100000) == TAT_SUM_BLOCKS;
    ok &= tat_reduce_blocks(5 * TAT_REDUCE_THREADS * TAT_SUM_MIN_PER_THREAD, 132) == 5;
    ok &= tat_bn_splits(small, 132) == 1;          /* 98 elements: one block */
    ok &= tat_bn_splits(big, 132) == 17;          /* ceil(528 / 32) blocks per channel */
    ok &= tat_bn_splits(big, 1) == 1;
    ok &= tat_bn_splits(one, 132) == 1;
    report(ok, "emulation reduction grids: sized by the SM count, bounded by the work and the buffers",
           "a grid size off (see tat_reduce_blocks / tat_bn_splits)");
}

/* Long sums (loss_start) on grids of several SM counts: the two passes against a plain sum. */
static void test_long_sums(void)
{
    size_t n = 1234567, i;
    double *x = malloc(n * sizeof(double)), want = 0;
    tat_gpu_loss l;
    int sms[3] = {1, 7, 132}, k;
    for (i = 0; i < n; ++i) x[i] = rng_signed(), want += x[i];
    emu_loss_init(&l);
    for (k = 0; k < 3; ++k) {
        char name[120];
        double got;
        emu_sm_count = sms[k];
        for (i = 0; i < TAT_SUM_BLOCKS; ++i) l.partials[i] = 1e30; /* a stale buffer */
        emu_loss_start(&l, x, n);
        got = emu_loss_wait(&l);
        snprintf(name, sizeof(name), "emulation long sum of %zu doubles on %d blocks (%d SMs)", n,
                 tat_reduce_blocks(n, sms[k]), sms[k]);
        report(fabs(got - want) <= 1e-9 * (fabs(want) + sqrt((double)n)), name, "%.12g vs %.12g", got, want);
    }
    emu_sm_count = 132;
    free(l.device_sum);
    free(x);
}

/* ---- the fused Adam / AdamW kernel against Darknet's adam_update_cpu ---------------------- */
void adam_update_cpu(float *w, float *d, float *m, float *v, float B1, float B2, float eps,
                     float decay, float rate, int n, int batch, int t, int decoupled);

static void test_adam(int n, int decoupled)
{
    float *w_ref = rand_array(n, 1), *w_emu = copy_array(w_ref, n);
    float *m_ref = calloc(n, sizeof(float)), *v_ref = calloc(n, sizeof(float));
    float *m_emu = calloc(n, sizeof(float)), *v_emu = calloc(n, sizeof(float));
    float *d_ref = calloc(n, sizeof(float)), *d_emu = calloc(n, sizeof(float));
    int t, batch = 6, cleared = 1;
    size_t i;
    char name[160];
    for (t = 1; t <= 6; ++t) {
        tat_adam_step a = tat_adam_step_of(.9f, .999f, 1e-7f, .05f, .01f, batch, t, decoupled);
        for (i = 0; i < (size_t)n; ++i) d_ref[i] = d_emu[i] = (float)(batch * rng_signed());
        adam_update_cpu(w_ref, d_ref, m_ref, v_ref, .9f, .999f, 1e-7f, .05f, .01f, n, batch, t, decoupled);
        for (i = 0; i < (size_t)n; ++i) tat_adam_element(w_emu, d_emu, m_emu, v_emu, a, i);
        for (i = 0; i < (size_t)n; ++i) cleared &= d_emu[i] == 0;
    }
    snprintf(name, sizeof(name), "emulation %s fused kernel: 6 steps of %d parameters, weights",
             decoupled ? "AdamW" : "Adam", n);
    check_close(name, w_emu, w_ref, n, 1e-5);
    snprintf(name, sizeof(name), "emulation %s fused kernel: moments", decoupled ? "AdamW" : "Adam");
    report(rel_err(m_emu, m_ref, n) <= 1e-5 && rel_err(v_emu, v_ref, n) <= 1e-5, name,
           "moments differ: %.3g, %.3g", rel_err(m_emu, m_ref, n), rel_err(v_emu, v_ref, n));
    snprintf(name, sizeof(name), "emulation %s fused kernel: gradient cleared", decoupled ? "AdamW" : "Adam");
    report(cleared, name, "the gradient is not zero after the step");
    free(w_ref), free(w_emu), free(m_ref), free(v_ref), free(m_emu), free(v_emu), free(d_ref), free(d_emu);
}

/* ---- the 64-bit index functions past 2^31 and 2^32, sizes too large to allocate ------------ */
/* Coordinates drawn at random (and at the ends) in geometries of 2^32 to 2^35 elements; each
 * function's index is compared with the one composed from the coordinates. */
static size_t rand_below(size_t n)
{
    size_t r = ((size_t)rand() << 31) ^ ((size_t)rand() << 15) ^ (size_t)rand();
    return r % n;
}

static void test_index_64(void)
{
    tat_patch_geom pg = {2048, 256, 96, 80, 6, 5, 3}; /* 4.0e9 map elements */
    tat_stack_geom sg = {2, 1024, 512, 4099};        /* 4.3e9 */
    tat_pool_geom qg = {131072, 257, 251, 4, 3};      /* 8.5e9 */
    tat_bn_geom bg = {4096, 512, 3001, 0};            /* 6.3e9 */
    size_t bad = 0, k, big = 0;
    for (k = 0; k < 20000; ++k) {
        int last = k == 0; /* the last element of each space */
        {
            int ph = pg.h / pg.grid_h, pw = pg.w / pg.grid_w, per = pg.grid_h * pg.grid_w / pg.groups;
            size_t N = (size_t)ph * pw, d = (size_t)per * pg.c;
            size_t b = last ? pg.batch - 1 : rand_below(pg.batch), a = last ? pg.groups - 1 : rand_below(pg.groups);
            size_t e = last ? d - 1 : rand_below(d), r = last ? N - 1 : rand_below(N);
            size_t bi = ((b * pg.groups + a) * d + e) * N + r;
            size_t pp = a * per + e / pg.c, ch = e % pg.c;
            size_t y = pp / pg.grid_w * ph + r / pw, x = pp % pg.grid_w * pw + r % pw;
            bad += tat_patch_map_index(pg, bi) != ((b * pg.c + ch) * pg.h + y) * pg.w + x;
            big += bi >= ((size_t)1 << 32);
        }
        {
            size_t e = last ? sg.n - 1 : rand_below(sg.n), b = last ? sg.batch - 1 : rand_below(sg.batch);
            size_t o = last ? sg.c - 1 : rand_below(sg.c), p = last ? sg.hw - 1 : rand_below(sg.hw);
            size_t i = ((e * sg.batch + b) * sg.c + o) * sg.hw + p;
            bad += tat_stack_cm_index(sg, i) != ((e * sg.c + o) * sg.batch + b) * sg.hw + p;
            big += i >= ((size_t)1 << 32);
        }
        {
            size_t plane = last ? qg.planes - 1 : rand_below(qg.planes);
            int y = last ? qg.h - 1 : (int)rand_below(qg.h), x = last ? qg.w - 1 : (int)rand_below(qg.w);
            int oh = qg.h / qg.kh, ow = qg.w / qg.kw, oy = y / qg.kh, ox = x / qg.kw;
            size_t i = (plane * qg.h + y) * qg.w + x;
            long long want = oy >= oh || ox >= ow ? -1 : (long long)((plane * oh + oy) * ow + ox);
            bad += tat_pool_window_of(qg, i) != want;
            big += i >= ((size_t)1 << 32);
        }
        {
            int gi = last ? bg.c - 1 : (int)rand_below(bg.c);
            size_t run = last ? bg.batch - 1 : rand_below(bg.batch);
            size_t i = last ? bg.spatial - 1 : rand_below(bg.spatial);
            bad += tat_bn_offset(bg, gi, run * bg.spatial + i) != (run * bg.c + gi) * bg.spatial + i;
        }
    }
    report(!bad && big > 1000 && !tat_index_fits_32(tat_patch_block_elements(pg)),
           "emulation 64-bit index paths: indices past 2^32 (patch map, stack permutation, pooling window, BatchNorm offset)",
           "%zu indices wrong (%zu drawn past 2^32)", bad, big);
}

int main(void)
{
    int i;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rng_seed(12345);
    srand(12345); /* tat_embedding_init's weights */
    tat_set_num_threads(2);
    test_gemm_mapping();

    /* grids that do not divide the map, groups > 1, one group, one patch */
    test_patch(2, 3, 11, 13, 3, 4, 2);
    test_patch(3, 2, 9, 10, 2, 3, 3);
    test_patch(1, 4, 7, 5, 2, 2, 1);
    test_patch(2, 3, 5, 7, 1, 1, 1);
    /* uneven pooling: rows and columns left over */
    test_pool(6, 11, 13, 2, 3);
    test_pool(4, 9, 7, 4, 2);
    test_pool(3, 5, 5, 5, 5);

    test_index_widths();
    test_index_64();
    test_reduction_grids();
    test_long_sums();
    test_bn_splits(3, 5, 211, 0, 1);
    test_bn_splits(3, 5, 211, 0, 7);
    test_bn_splits(4, 3, 97, 1, 4);
    test_bn_splits(2, 3, 13, 1, 64); /* more splits than elements: empty chunks */
    test_adam(1037, 0);
    test_adam(1037, 1);
    test_softmax(5, 17);
    test_softmax(3, TAT_SOFTMAX_WARP_COLS);
    test_softmax(3, TAT_SOFTMAX_WARP_COLS + 301);
    report(softmax_shapes_seen[0] && softmax_shapes_seen[1],
           "emulation softmax: both row sizes (a warp, a block) exercised", "one path never ran");
    test_fitnet(3, 5, 7, 9, 11, 0);
    test_fitnet(2, 4, 3, 13, 7, 1);
    test_kd(3, 10, 1);
    test_kd(4, 1000, 4);

    /* every case: its student embedding and each of its terms */
    for (i = 0; i < TAT_NUM_CASES; ++i) {
        test_embeddings(&tat_cases[i], 1);
        test_embeddings(&tat_cases[i], 2);
        /* materialised, then streaming in tiles that do not divide N (and one of N itself) */
        if (tat_cases[i].grid_h > 0) {
            test_term(&tat_cases[i], 0, 0);
            test_term(&tat_cases[i], 0, 5);
            test_term(&tat_cases[i], 0, TAT_STREAM_TILE);
        }
        if (tat_cases[i].anchor_h > 0) {
            test_term(&tat_cases[i], 1, 0);
            test_term(&tat_cases[i], 1, 3);
        }
    }

    report(flash_tiles_seen[0] && flash_tiles_seen[1] && flash_tiles_seen[2],
           "emulation fused streaming: one key tile, several, and a partial last tile exercised",
           "a tiling case never ran (%d %d %d)", flash_tiles_seen[0], flash_tiles_seen[1],
           flash_tiles_seen[2]);
    report(!out_of_range, "emulation: every map index in range", "an index function left the map");
    report(!gemm_args_invalid, "emulation gemm: every cuBLAS argument set valid (leading dimensions, sizes)",
           "an argument set cuBLAS would reject");
    return test_exit_status();
}
