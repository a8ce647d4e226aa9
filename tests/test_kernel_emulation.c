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

/* ---- reductions as a block of TAT_REDUCE_THREADS threads does them --------------------- */
static double tree_sum_d(double *red)
{
    int s, t;
    for (s = TAT_REDUCE_THREADS / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] += red[t + s];
    return red[0];
}

static float tree_sum_f(float *red)
{
    int s, t;
    for (s = TAT_REDUCE_THREADS / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] += red[t + s];
    return red[0];
}

static float tree_max_f(float *red)
{
    int s, t;
    for (s = TAT_REDUCE_THREADS / 2; s > 0; s >>= 1)
        for (t = 0; t < s; ++t) red[t] = red[t + s] > red[t] ? red[t + s] : red[t];
    return red[0];
}

/* bn_forward_kernel, block gi after block gi */
static void emu_bn_forward(float *out, float *x_hat, float *mean, float *inv_std, const float *in,
                           const float *gamma, const float *beta, tat_bn_geom g)
{
    double red[TAT_REDUCE_THREADS];
    int gi, t, nt = TAT_REDUCE_THREADS;
    size_t j, n = tat_bn_count(g);
    for (gi = 0; gi < tat_bn_groups(g); ++gi) {
        float m, is;
        for (t = 0; t < nt; ++t) red[t] = tat_bn_partial_sum(g, in, gi, t, nt);
        double sum = tree_sum_d(red);
        for (t = 0; t < nt; ++t) red[t] = tat_bn_partial_sqdev(g, in, gi, sum / (double)n, t, nt);
        double sqdev = tree_sum_d(red);
        tat_bn_stats(g, sum, sqdev, TAT_BN_EPS, &m, &is);
        mean[gi] = m;
        inv_std[gi] = is;
        for (t = 0; t < nt; ++t)
            for (j = t; j < n; j += nt) tat_bn_normalize(g, out, x_hat, in, gamma, beta, gi, m, is, j);
    }
}

/* bn_backward_kernel: one block per channel, walking its images */
static void emu_bn_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                            const float *x_hat, const float *inv_std, const float *gamma,
                            tat_bn_geom g, int assign)
{
    double r1[TAT_REDUCE_THREADS], r2[TAT_REDUCE_THREADS];
    int ch, b, t, nt = TAT_REDUCE_THREADS;
    size_t j, n = tat_bn_count(g);
    for (ch = 0; ch < g.c; ++ch)
        for (b = 0; b < (g.per_image ? g.batch : 1); ++b) {
            int gi = g.per_image ? b * g.c + ch : ch;
            for (t = 0; t < nt; ++t) tat_bn_partial_dsums(g, d_out, x_hat, gi, t, nt, &r1[t], &r2[t]);
            double s_dy = tree_sum_d(r1), s_dy_xh = tree_sum_d(r2);
            d_gamma[ch] += (float)s_dy_xh;
            d_beta[ch] += (float)s_dy;
            if (!d_in) continue;
            for (t = 0; t < nt; ++t)
                for (j = t; j < n; j += nt)
                    tat_bn_backward_element(g, d_in, d_out, x_hat, gamma, inv_std, gi, s_dy,
                                            s_dy_xh, assign, j);
        }
}

static void emu_softmax_rows(float *s, int rows, int cols)
{
    float red[TAT_REDUCE_THREADS];
    int r, t, nt = TAT_REDUCE_THREADS;
    for (r = 0; r < rows; ++r) {
        float *row = s + (size_t)r * cols;
        for (t = 0; t < nt; ++t) red[t] = tat_softmax_partial_max(row, cols, t, nt);
        float mx = tree_max_f(red);
        for (t = 0; t < nt; ++t) red[t] = tat_softmax_partial_expsum(row, cols, mx, t, nt);
        float sum = tree_sum_f(red);
        for (t = 0; t < nt; ++t) tat_softmax_write(row, cols, mx, sum, t, nt);
    }
}

/* ---- the primitives of tat_gpu_steps.h, as the kernels run them, on the host ------------- */
static void emu_patch_gather(float *blocks, const float *x, tat_patch_geom g);
static void emu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g);

static void emu_avgpool_forward(float *out, const float *in, tat_pool_geom g)
{
    size_t i;
    for (i = 0; i < tat_pool_out_elements(g); ++i) out[i] = tat_pool_forward_value(g, in, i);
}

static void emu_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g)
{
    float inv = 1.f / (g.kh * g.kw);
    size_t i;
    for (i = 0; i < (size_t)g.planes * g.h * g.w; ++i) {
        long long o = tat_pool_window_of(g, i);
        if (o >= 0) d_in[i] += d_out[checked(o, tat_pool_out_elements(g))] * inv;
    }
}

static void emu_im2col(float *col, const float *in, tat_conv_geom g)
{
    size_t i;
    for (i = 0; i < tat_col_elements(g); ++i) col[i] = tat_im2col_value(g, in, i);
}

static void emu_col2im_add(float *d_in, const float *col, tat_conv_geom g)
{
    size_t i;
    for (i = 0; i < (size_t)g.batch * g.c * g.h * g.w; ++i) d_in[i] += tat_col2im_value(g, col, i);
}

static void emu_residual(float *o, const float *t, float *drow, double *sse_pos, int N, int d,
                         size_t rows)
{
    size_t i;
    for (i = 0; i < rows; ++i) drow[i] = tat_residual_position(o, t, i / N, (int)(i % N), N, d, &sse_pos[i]);
}

static double emu_sum_to_host(double *sum, const double *x, size_t n)
{
    double red[TAT_REDUCE_THREADS];
    int t;
    for (t = 0; t < TAT_REDUCE_THREADS; ++t) red[t] = tat_partial_sum_d(x, n, t, TAT_REDUCE_THREADS);
    *sum = tree_sum_d(red);
    return *sum;
}

static void emu_dscore(float *ds, const float *a, const float *drow, float two_w, int N, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) tat_dscore_element(ds, a, drow, two_w, N, i);
}

static void emu_zero(float *x, size_t n) { memset(x, 0, n * sizeof(float)); }

static const tat_gpu_ops emu_ops = {
    emu_gemm, emu_patch_gather, emu_patch_scatter_add, emu_avgpool_forward, emu_avgpool_backward,
    emu_im2col, emu_col2im_add, emu_bn_forward, emu_bn_backward, emu_softmax_rows, emu_residual,
    emu_sum_to_host, emu_dscore, emu_zero};

/* The device-side struct over a host embedding's own buffers. */
static tat_gpu_embedding view_of(tat_embedding *e)
{
    tat_gpu_embedding g;
    g.in_c = e->in_c, g.out_c = e->out_c, g.ksize = e->ksize;
    g.weights = e->weights, g.scales = e->scales, g.biases = e->biases;
    g.weight_grads = e->weight_grads, g.scale_grads = e->scale_grads, g.bias_grads = e->bias_grads;
    g.x_hat = e->x_hat, g.out = e->out, g.out_grad = e->out_grad;
    g.mean = e->mean, g.inv_std = e->inv_std;
    return g;
}

static void clone_embedding(tat_embedding *dst, const tat_embedding *src, int batch, int h, int w)
{
    size_t nw = (size_t)src->out_c * src->in_c * src->ksize * src->ksize;
    tat_embedding_init(dst, src->in_c, src->out_c, src->ksize);
    memcpy(dst->weights, src->weights, nw * sizeof(float));
    memcpy(dst->scales, src->scales, src->out_c * sizeof(float));
    memcpy(dst->biases, src->biases, src->out_c * sizeof(float));
    memcpy(dst->weight_grads, src->weight_grads, nw * sizeof(float));
    memcpy(dst->scale_grads, src->scale_grads, src->out_c * sizeof(float));
    memcpy(dst->bias_grads, src->bias_grads, src->out_c * sizeof(float));
    tat_embedding_alloc_activations(dst, batch, h, w);
}

/* a case's student embedding (student_c -> teacher_c, its kernel size and BN mode) */
static void test_embedding(const tat_case *tc)
{
    int batch = tc->batch, in_c = tc->student_c, out_c = tc->teacher_c, h = tc->h, w = tc->w;
    int ksize = tc->ksize, per_image = tc->per_image;
    tat_embedding ref, emu;
    int hw = h * w, i;
    size_t nin = (size_t)batch * in_c * hw, nout = (size_t)batch * out_c * hw;
    size_t nw = (size_t)out_c * in_c * ksize * ksize;
    size_t nws = (size_t)batch * in_c * ksize * ksize * hw; /* the GPU's: im2col of the batch */
    float *in = rand_array(nin, 2);
    float *ws_ref = calloc(tat_conv_workspace_floats(batch, in_c, out_c, h, w, ksize) + 1, sizeof(float));
    float *ws_emu = calloc(nws + 1, sizeof(float));
    float *d_in_ref = rand_array(nin, 1), *d_in_emu = copy_array(d_in_ref, nin);
    char name[200];
    tat_embedding_init(&ref, in_c, out_c, ksize);
    for (i = 0; i < out_c; ++i) {
        ref.scales[i] = (float)(1 + .3 * rng_signed());
        ref.biases[i] = (float)(.2 * rng_signed());
        /* gradients already hold something: both sides must accumulate */
        ref.scale_grads[i] = (float)rng_signed();
        ref.bias_grads[i] = (float)rng_signed();
    }
    for (i = 0; i < (int)nw; ++i) ref.weight_grads[i] = (float)rng_signed();
    tat_embedding_alloc_activations(&ref, batch, h, w);
    clone_embedding(&emu, &ref, batch, h, w);
    tat_gpu_embedding view = view_of(&emu);
    for (i = 0; i < (int)nout; ++i) ref.out_grad[i] = emu.out_grad[i] = 7; /* a previous step's */
    tat_embedding_forward(&ref, in, ws_ref, batch, h, w, per_image);
    tat_steps_embedding_forward(&emu_ops, &view, in, ws_emu, batch, h, w, per_image);
    snprintf(name, sizeof(name), "emulation %s: embedding %dx%d conv + BN %s (b%d c%d->%d %dx%d)",
             tc->name, ksize, ksize, per_image ? "per image" : "batch", batch, in_c, out_c, h, w);
    {
        char n2[300];
        snprintf(n2, sizeof(n2), "%s: forward", name);
        check_close(n2, emu.out, ref.out, nout, TOL_SUM);
        snprintf(n2, sizeof(n2), "%s: forward clears the output gradient", name);
        check_close(n2, emu.out_grad, ref.out_grad, nout, TOL_EXACT);
        snprintf(n2, sizeof(n2), "%s: mean, inv_std", name);
        int groups = per_image ? batch * out_c : out_c;
        double e = rel_err(emu.mean, ref.mean, groups) + rel_err(emu.inv_std, ref.inv_std, groups);
        report(e <= TOL_SUM, n2, "statistics differ: relative error %.3g", e);
    }
    {
        float *g = rand_array(nout, 1);
        char n2[300];
        memcpy(ref.out_grad, g, nout * sizeof(float));
        memcpy(emu.out_grad, g, nout * sizeof(float));
        tat_embedding_backward(&ref, d_in_ref, in, ws_ref, batch, h, w, per_image);
        tat_steps_embedding_backward(&emu_ops, &view, d_in_emu, in, ws_emu, batch, h, w, per_image);
        snprintf(n2, sizeof(n2), "%s: backward d_in", name);
        check_close(n2, d_in_emu, d_in_ref, nin, TOL_SUM);
        snprintf(n2, sizeof(n2), "%s: backward d_weights", name);
        check_close(n2, emu.weight_grads, ref.weight_grads, nw, TOL_SUM);
        snprintf(n2, sizeof(n2), "%s: backward d_scales, d_biases", name);
        double e = rel_err(emu.scale_grads, ref.scale_grads, out_c) +
                   rel_err(emu.bias_grads, ref.bias_grads, out_c);
        report(e <= TOL_SUM, n2, "parameter gradients differ: relative error %.3g", e);
        free(g);
    }
    tat_embedding_free(&ref);
    tat_embedding_free(&emu);
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
    for (i = 0; i < tat_patch_block_elements(g); ++i) blocks[i] = x[checked(tat_patch_map_index(g, i), nx)];
}

static void emu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g)
{
    size_t i, nx = (size_t)g.batch * g.c * g.h * g.w;
    for (i = 0; i < tat_patch_block_elements(g); ++i) d_x[checked(tat_patch_map_index(g, i), nx)] += d_blocks[i];
}

/* tat_gpu_term_init's buffers, on the host */
static void emu_term_init(tat_gpu_term *e, const tat_term_geom *geom)
{
    size_t blk = tat_steps_block_floats(geom), nn = (size_t)geom->n_blocks * geom->N * geom->N;
    memset(e, 0, sizeof(*e));
    e->geom = *geom;
    if (!geom->direct) e->blocks = calloc(7 * blk, sizeof(float));
    e->attn = calloc(nn, sizeof(float));
    e->ds = calloc(nn, sizeof(float));
    e->resid = calloc(blk, sizeof(float));
    e->drow = calloc((size_t)geom->n_blocks * geom->N, sizeof(float));
    e->sse_pos = calloc((size_t)geom->n_blocks * geom->N, sizeof(double));
    e->sse_sum = calloc(1, sizeof(double));
}

static void emu_term_free(tat_gpu_term *e)
{
    free(e->blocks), free(e->attn), free(e->ds), free(e->resid), free(e->drow), free(e->sse_pos);
    free(e->sse_sum);
}

/* One term of a case on random q, k, v maps of teacher shape: its anchor term (anchors != 0)
 * or its patch-group term. */
static void test_term(const tat_case *tc, int anchors)
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
    tat_term_init(&ref, &geom);
    emu_term_init(&emu, &geom);
    nn = (size_t)geom.n_blocks * geom.N * geom.N;
    sse_ref = tat_term_forward(&ref, q, k, v, tg);
    sse_emu = tat_steps_term_forward(&emu_ops, &emu, q, k, v, tg);
    snprintf(name, sizeof(name), "emulation %s: attention matrices", what);
    check_close(name, emu.attn, ref.attn, nn, TOL_SUM);
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

    /* every case: its student embedding and each of its terms */
    for (i = 0; i < TAT_NUM_CASES; ++i) {
        test_embedding(&tat_cases[i]);
        if (tat_cases[i].grid_h > 0) test_term(&tat_cases[i], 0);
        if (tat_cases[i].anchor_h > 0) test_term(&tat_cases[i], 1);
    }

    report(!out_of_range, "emulation: every map index in range", "an index function left the map");
    report(!gemm_args_invalid, "emulation gemm: every cuBLAS argument set valid (leading dimensions, sizes)",
           "an argument set cuBLAS would reject");
    return test_exit_status();
}
