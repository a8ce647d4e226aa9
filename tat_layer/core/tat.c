/* TaT distillation math: see tat.h for layouts and conventions. */
#include "tat.h"
#include "tat_fail.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CBLAS
#include <cblas.h>
#endif
#ifdef TAT_ONEDNN
#include <dnnl.h>
#endif

void tat_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "%s:%d: tat: precondition failed: %s\n", file, line, cond);
    abort();
}


/* ---- Threads ---------------------------------------------------------------------------- */
/* A small persistent pool: the layers call into it every step, so threads are started once
 * and sleep on a condition variable between calls (no spinning that would steal a core from
 * OpenBLAS). Work is split statically by thread index, so for a given thread count every sum
 * is taken in the same order and a seeded run repeats exactly. */

#define TAT_MAX_THREADS 64

typedef void (*tat_range_fn)(void *ctx, int tid, int nthreads);

/* set while this thread runs a share of the pool's work (its GEMMs are one block each) */
static __thread int in_pool;

static struct {
    pthread_mutex_t mu, busy;
    pthread_cond_t go, done;
    int nthreads, started, running;
    unsigned long gen;
    tat_range_fn fn;
    void *ctx;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, NULL, NULL};

void tat_set_num_threads(int n)
{
    pthread_mutex_lock(&pool.mu);
    /* fixed once known: scratch buffers have been sized by it */
    if (!pool.nthreads) pool.nthreads = n < 1 ? 1 : n > TAT_MAX_THREADS ? TAT_MAX_THREADS : n;
    pthread_mutex_unlock(&pool.mu);
}

int tat_get_num_threads(void)
{
    pthread_mutex_lock(&pool.mu);
    if (!pool.nthreads) {
        const char *env = getenv("TAT_NUM_THREADS");
        long n = env ? strtol(env, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
        pool.nthreads = n < 1 ? 1 : n > TAT_MAX_THREADS ? TAT_MAX_THREADS : (int)n;
    }
    int n = pool.nthreads;
    pthread_mutex_unlock(&pool.mu);
    return n;
}

static void *pool_worker(void *arg)
{
    int tid = (int)(size_t)arg;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&pool.mu);
        while (pool.gen == seen) pthread_cond_wait(&pool.go, &pool.mu);
        seen = pool.gen;
        tat_range_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int nt = pool.nthreads;
        pthread_mutex_unlock(&pool.mu);
        in_pool = 1;
        fn(ctx, tid, nt);
        in_pool = 0;
        pthread_mutex_lock(&pool.mu);
        if (--pool.running == 0) pthread_cond_signal(&pool.done);
        pthread_mutex_unlock(&pool.mu);
    }
    return NULL;
}

/* Runs fn(ctx, tid, nthreads) on every thread of the pool, the caller being tid 0. Falls back
 * to one thread when the pool is already busy (another network replica calling at once) or
 * when `parallel` is 0. While the pool runs, OpenBLAS is held to one thread: each of our
 * threads then owns one core and calls sgemm on its own block. */
static void tat_run(tat_range_fn fn, void *ctx, int parallel)
{
    int nt = parallel ? tat_get_num_threads() : 1;
    if (nt < 2 || pthread_mutex_trylock(&pool.busy)) {
        fn(ctx, 0, 1);
        return;
    }
#ifdef CBLAS
    /* before any worker wakes: a worker's sgemm must never run on OpenBLAS's own threads
       while ours run too (seen: seeded runs that no longer repeated exactly under load) */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#endif
    pthread_mutex_lock(&pool.mu);
    while (pool.started < pool.nthreads - 1) {
        pthread_t th;
        if (pthread_create(&th, NULL, pool_worker, (void *)(size_t)(pool.started + 1))) break;
        pthread_detach(th);
        ++pool.started;
    }
    nt = pool.started + 1;
    pool.nthreads = nt;
    pool.fn = fn;
    pool.ctx = ctx;
    pool.running = nt - 1;
    ++pool.gen;
    pthread_cond_broadcast(&pool.go);
    pthread_mutex_unlock(&pool.mu);
    in_pool = 1;
    fn(ctx, 0, nt);
    in_pool = 0;
    pthread_mutex_lock(&pool.mu);
    while (pool.running > 0) pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
#ifdef CBLAS
    openblas_set_num_threads(blas_threads);
#endif
    pthread_mutex_unlock(&pool.busy);
}

/* The share [*lo, *hi) of n items that thread tid of nt takes. */
static void tat_share(int n, int tid, int nt, int *lo, int *hi)
{
    *lo = (int)((long long)n * tid / nt);
    *hi = (int)((long long)n * (tid + 1) / nt);
}

/* ---- GEMM ----------------------------------------------------------------------------- */

/* Products of at least this many multiply-adds go to oneDNN's sgemm where it is built: its
 * kernels follow the CPU (AVX-512 where there is one) whatever core OpenBLAS runs, and it runs on
 * the OpenMP threads the convolutions use. Measured on 2 cores of an AVX-512 CPU with OpenBLAS's
 * Haswell core: 1.2-1.9x OpenBLAS's speed from 32 x 6272 x 288 up, slower below ~8M (the
 * attention's blocks, 64 x 64 x 1024, stay with OpenBLAS). */
#define TAT_ONEDNN_GEMM_MIN (1 << 24)

void tat_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
#ifdef TAT_ONEDNN
    /* inside the pool each thread takes its own block: OpenBLAS, held to one thread there */
    if (!in_pool && (double)M * N * K >= TAT_ONEDNN_GEMM_MIN &&
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) == dnnl_success)
        return;
#endif
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

/* A k x k convolution runs as GEMMs over the im2col of several images at once: one GEMM per
 * image is narrow on small maps (7x7: 49 columns) and runs far below the sgemm peak. The
 * images per GEMM: as many as fit TAT_CONV_WORKSPACE_FLOATS of workspace (at least one). */
#define TAT_CONV_WORKSPACE_FLOATS ((size_t)16 << 20)

/* Workspace floats per image: its im2col (in_c*k*k rows) and its columns of the GEMM result
 * (out_c rows), both hw wide. */
static size_t conv_floats_per_image(int in_c, int out_c, int h, int w, int ksize)
{
    return ((size_t)in_c * ksize * ksize + out_c) * h * w;
}

static int conv_images_per_gemm(int batch, int in_c, int out_c, int h, int w, int ksize)
{
    size_t fit = TAT_CONV_WORKSPACE_FLOATS / conv_floats_per_image(in_c, out_c, h, w, ksize);
    return fit < 1 ? 1 : fit > (size_t)batch ? batch : (int)fit;
}

size_t tat_conv_workspace_floats(int batch, int in_c, int out_c, int h, int w, int ksize)
{
    if (ksize == 1) return 0;
    return conv_floats_per_image(in_c, out_c, h, w, ksize) *
           conv_images_per_gemm(batch, in_c, out_c, h, w, ksize);
}

/* col[(c*k + ky)*k + kx][y*w + x] = in[c][y + ky - pad][x + kx - pad], 0 outside; rows are
 * ld floats apart (several images side by side). */
static void im2col_same(float *col, size_t ld, const float *in, int c, int h, int w, int ksize)
{
    int pad = ksize / 2, ch, ky, kx, y, x;
    for (ch = 0; ch < c; ++ch)
        for (ky = 0; ky < ksize; ++ky)
            for (kx = 0; kx < ksize; ++kx) {
                float *row = col + ((size_t)(ch * ksize + ky) * ksize + kx) * ld;
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
static void col2im_same_add(float *d_in, const float *col, size_t ld, int c, int h, int w, int ksize)
{
    int pad = ksize / 2, ch, ky, kx, y, x;
    for (ch = 0; ch < c; ++ch)
        for (ky = 0; ky < ksize; ++ky)
            for (kx = 0; kx < ksize; ++kx) {
                const float *row = col + ((size_t)(ch * ksize + ky) * ksize + kx) * ld;
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

/* im2col_same (or col2im_same_add) of nb images side by side, one (image, channel) pair per
 * work item on the pool: each pair owns its k*k rows of col (its channel of d_in), and the
 * adds into one element keep their order, so the result does not depend on the threads. */
typedef struct {
    float *col, *d_in;
    const float *in;
    size_t ld;
    int nb, c, h, w, ksize;
} im2col_job;

static void im2col_range(void *ctx, int tid, int nt)
{
    const im2col_job *j = ctx;
    int hw = j->h * j->w, kk = j->ksize * j->ksize, lo, hi, t;
    tat_share(j->nb * j->c, tid, nt, &lo, &hi);
    for (t = lo; t < hi; ++t) {
        int i = t / j->c, ch = t % j->c;
        float *col = j->col + (size_t)i * hw + (size_t)ch * kk * j->ld;
        size_t plane = ((size_t)i * j->c + ch) * hw;
        if (j->d_in)
            col2im_same_add(j->d_in + plane, col, j->ld, 1, j->h, j->w, j->ksize);
        else
            im2col_same(col, j->ld, j->in + plane, 1, j->h, j->w, j->ksize);
    }
}

/* images [b, b + nb) of in into col (cols = nb * hw floats per row) */
static void im2col_images(float *col, const float *in, int b, int nb, int c, int h, int w, int ksize)
{
    im2col_job j = {col, NULL, in + (size_t)b * c * h * w, (size_t)nb * h * w, nb, c, h, w, ksize};
    tat_run(im2col_range, &j, 1);
}

/* d_in of images [b, b + nb) += col put back */
static void col2im_images_add(float *d_in, float *col, int b, int nb, int c, int h, int w, int ksize)
{
    im2col_job j = {col, d_in + (size_t)b * c * h * w, NULL, (size_t)nb * h * w, nb, c, h, w, ksize};
    tat_run(im2col_range, &j, 1);
}

/* Images [b0, b0 + nb) of an NCHW map (c channels) <-> c x (nb*hw) with the images side by
 * side, as the GEMM over several images reads and writes them. */
static void images_to_rows(float *rows, const float *x, int b0, int nb, int c, int hw)
{
    int i, ch;
    for (i = 0; i < nb; ++i)
        for (ch = 0; ch < c; ++ch)
            memcpy(rows + (size_t)ch * nb * hw + (size_t)i * hw,
                   x + ((size_t)(b0 + i) * c + ch) * hw, hw * sizeof(float));
}

static void rows_to_images(float *x, const float *rows, int b0, int nb, int c, int hw)
{
    int i, ch;
    for (i = 0; i < nb; ++i)
        for (ch = 0; ch < c; ++ch)
            memcpy(x + ((size_t)(b0 + i) * c + ch) * hw,
                   rows + (size_t)ch * nb * hw + (size_t)i * hw, hw * sizeof(float));
}

void tat_conv_forward(float *out, const float *in, const float *weight, float *workspace, int batch,
                      int in_c, int h, int w, int out_c, int ksize)
{
    TAT_ASSERT(ksize == 1 || workspace);
    int hw = h * w, kk = in_c * ksize * ksize, b;
    if (ksize == 1) { /* the input already is the GEMM operand, image by image */
        for (b = 0; b < batch; ++b)
            tat_gemm(0, 0, out_c, hw, kk, 1, weight, kk, in + (size_t)b * in_c * hw, hw, 0,
                     out + (size_t)b * out_c * hw, hw);
        return;
    }
    int per = conv_images_per_gemm(batch, in_c, out_c, h, w, ksize);
    for (b = 0; b < batch; b += per) {
        int nb = batch - b < per ? batch - b : per;
        size_t cols = (size_t)nb * hw;
        float *col = workspace, *res = workspace + (size_t)kk * cols;
        im2col_images(col, in, b, nb, in_c, h, w, ksize);
        tat_gemm(0, 0, out_c, (int)cols, kk, 1, weight, kk, col, (int)cols, 0, res, (int)cols);
        rows_to_images(out, res, b, nb, out_c, hw);
    }
}

void tat_conv_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                       const float *weight, float *workspace, int batch, int in_c, int h, int w,
                       int out_c, int ksize)
{
    int hw = h * w, kk = in_c * ksize * ksize, b;
    if (ksize == 1) {
        for (b = 0; b < batch; ++b) {
            const float *x = in + (size_t)b * in_c * hw, *dy = d_out + (size_t)b * out_c * hw;
            tat_gemm(0, 1, out_c, kk, hw, 1, dy, hw, x, hw, 1, d_weight, kk);
            if (d_in) tat_gemm(1, 0, in_c, hw, out_c, 1, weight, kk, dy, hw, 1, d_in + (size_t)b * in_c * hw, hw);
        }
        return;
    }
    int per = conv_images_per_gemm(batch, in_c, out_c, h, w, ksize);
    for (b = 0; b < batch; b += per) {
        int nb = batch - b < per ? batch - b : per;
        size_t cols = (size_t)nb * hw;
        float *col = workspace, *dy = workspace + (size_t)kk * cols;
        im2col_images(col, in, b, nb, in_c, h, w, ksize);
        images_to_rows(dy, d_out, b, nb, out_c, hw);
        tat_gemm(0, 1, out_c, kk, (int)cols, 1, dy, (int)cols, col, (int)cols, 1, d_weight, kk);
        if (!d_in) continue;
        /* d(col) = W^T dy, into col: its im2col has served */
        tat_gemm(1, 0, kk, (int)cols, out_c, 1, weight, kk, dy, (int)cols, 0, col, (int)cols);
        col2im_images_add(d_in, col, b, nb, in_c, h, w, ksize);
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

typedef struct {
    float *out, *x_hat, *mean, *inv_std, *d_in, *d_gamma, *d_beta;
    const float *in, *gamma, *beta, *d_out, *c_inv_std;
    int batch, c, spatial, per_image, assign;
} bn_ctx;

static void bn_forward_range(void *p, int tid, int nt)
{
    bn_ctx *a = p;
    int spatial = a->spatial, per_image = a->per_image, c = a->c;
    bn_groups g = bn_layout(a->batch, c, spatial, per_image);
    double count = (double)g.runs * spatial;
    int gi, r, i, lo, hi;
    tat_share(g.n_groups, tid, nt, &lo, &hi);
    for (gi = lo; gi < hi; ++gi) {
        int ch = gi % c;
        double sum = 0, sq = 0;
        for (r = 0; r < g.runs; ++r) {
            const float *x = a->in + bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) sum += x[i];
        }
        double mu = sum / count;
        for (r = 0; r < g.runs; ++r) {
            const float *x = a->in + bn_run_offset(g, gi, r, spatial, per_image);
            for (i = 0; i < spatial; ++i) sq += (x[i] - mu) * (x[i] - mu);
        }
        float is = (float)(1.0 / sqrt(sq / count + TAT_BN_EPS)), m = (float)mu;
        float ga = a->gamma[ch], be = a->beta[ch];
        a->mean[gi] = m;
        a->inv_std[gi] = is;
        for (r = 0; r < g.runs; ++r) {
            size_t off = bn_run_offset(g, gi, r, spatial, per_image);
            const float *x = a->in + off;
            float *xh = a->x_hat + off, *o = a->out + off;
            for (i = 0; i < spatial; ++i) {
                float v = (x[i] - m) * is;
                xh[i] = v;
                o[i] = ga * v + be;
            }
        }
    }
}

void tat_batchnorm_forward(float *out, float *x_hat, float *mean, float *inv_std, const float *in,
                           const float *gamma, const float *beta, tat_bn_geom g)
{
    bn_ctx a;
    memset(&a, 0, sizeof(a));
    a.out = out, a.x_hat = x_hat, a.mean = mean, a.inv_std = inv_std, a.in = in;
    a.gamma = gamma, a.beta = beta, a.batch = g.batch, a.c = g.c, a.spatial = g.spatial;
    a.per_image = g.per_image;
    tat_run(bn_forward_range, &a, 1);
}

/* Per statistics group; in batch mode each channel is one group, so d_gamma and d_beta
 * entries are written by one thread only. In per-image mode a channel's entries collect the
 * images' contributions: the threads then split by channel, never by image. */
static void bn_backward_range(void *p, int tid, int nt)
{
    bn_ctx *a = p;
    int spatial = a->spatial, per_image = a->per_image, c = a->c;
    bn_groups g = bn_layout(a->batch, c, spatial, per_image);
    double count = (double)g.runs * spatial;
    int ch, b, r, i, lo, hi;
    tat_share(c, tid, nt, &lo, &hi);
    for (ch = lo; ch < hi; ++ch)
        for (b = 0; b < (per_image ? a->batch : 1); ++b) {
            int gi = per_image ? b * c + ch : ch;
            double sum_dy = 0, sum_dy_xh = 0;
            for (r = 0; r < g.runs; ++r) {
                size_t off = bn_run_offset(g, gi, r, spatial, per_image);
                const float *dy = a->d_out + off, *xh = a->x_hat + off;
                for (i = 0; i < spatial; ++i) {
                    sum_dy += dy[i];
                    sum_dy_xh += (double)dy[i] * xh[i];
                }
            }
            a->d_gamma[ch] += (float)sum_dy_xh;
            a->d_beta[ch] += (float)sum_dy;
            if (!a->d_in) continue;
            /* dx = gamma*inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat)) */
            float k = a->gamma[ch] * a->c_inv_std[gi];
            float m_dy = (float)(sum_dy / count), m_dy_xh = (float)(sum_dy_xh / count);
            for (r = 0; r < g.runs; ++r) {
                size_t off = bn_run_offset(g, gi, r, spatial, per_image);
                const float *dy = a->d_out + off, *xh = a->x_hat + off;
                float *dx = a->d_in + off;
                if (a->assign)
                    for (i = 0; i < spatial; ++i) dx[i] = k * (dy[i] - m_dy - xh[i] * m_dy_xh);
                else
                    for (i = 0; i < spatial; ++i) dx[i] += k * (dy[i] - m_dy - xh[i] * m_dy_xh);
            }
        }
}

static void bn_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                        const float *x_hat, const float *inv_std, const float *gamma,
                        tat_bn_geom g, int assign)
{
    bn_ctx a;
    memset(&a, 0, sizeof(a));
    a.d_in = d_in, a.d_gamma = d_gamma, a.d_beta = d_beta, a.d_out = d_out, a.x_hat = (float *)x_hat;
    a.c_inv_std = inv_std, a.gamma = gamma, a.batch = g.batch, a.c = g.c, a.spatial = g.spatial;
    a.per_image = g.per_image, a.assign = assign;
    tat_run(bn_backward_range, &a, 1);
}

void tat_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                            const float *x_hat, const float *inv_std, const float *gamma,
                            tat_bn_geom g)
{
    bn_backward(d_in, d_gamma, d_beta, d_out, x_hat, inv_std, gamma, g, 0);
}

/* ---- Random numbers -------------------------------------------------------------------- */

tat_rng tat_rng_seeded(uint64_t seed)
{
    tat_rng r = {seed, 0};
    return r;
}

tat_rng tat_rng_from_rand(void)
{
    tat_rng r = {0, 1};
    return r;
}

/* splitmix64 (Steele, Lea, Flood 2014) */
static uint64_t rng_next(tat_rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

float tat_rng_uniform(tat_rng *r)
{
    if (r->from_rand) return 2.f * rand() / (float)RAND_MAX - 1.f;
    /* the top 24 bits: exact in float */
    return (float)(rng_next(r) >> 40) * (1.f / 8388608.f) - 1.f;
}

/* ---- Embedding ------------------------------------------------------------------------- */

void tat_embedding_init(tat_embedding *e, int in_c, int out_c, int ksize, tat_rng *rng)
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
    for (i = 0; i < nw; ++i) e->weights[i] = scale * tat_rng_uniform(rng);
    for (i = 0; i < (size_t)out_c; ++i) e->scales[i] = 1;
}

void tat_embedding_alloc_moments(tat_embedding *e)
{
    size_t n = tat_embedding_num_params(e);
    free(e->adam_m);
    free(e->adam_v);
    e->adam_m = tat_calloc(n, sizeof(float));
    e->adam_v = tat_calloc(n, sizeof(float));
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
    free(e->adam_m);
    free(e->adam_v);
    memset(e, 0, sizeof(*e));
}

size_t tat_embedding_num_params(const tat_embedding *e)
{
    return (size_t)e->out_c * e->in_c * e->ksize * e->ksize + 2 * (size_t)e->out_c;
}

double tat_embedding_flops_per_image(const tat_embedding *e, int h, int w)
{
    return 2.0 * e->out_c * e->in_c * e->ksize * e->ksize * h * w;
}

void tat_embedding_forward(tat_embedding *e, const float *in, float *workspace, int batch, int h,
                           int w, int per_image)
{
    size_t n = (size_t)batch * e->out_c * h * w;
    /* the conv result goes into x_hat first; BN then normalises it into x_hat and out */
    tat_conv_forward(e->x_hat, in, e->weights, workspace, batch, e->in_c, h, w, e->out_c, e->ksize);
    tat_bn_geom bn = {batch, e->out_c, h * w, per_image};
    tat_batchnorm_forward(e->out, e->x_hat, e->mean, e->inv_std, e->x_hat, e->scales, e->biases, bn);
    memset(e->out_grad, 0, n * sizeof(float));
}

void tat_embedding_backward(tat_embedding *e, float *d_in, const float *in, float *workspace,
                            int batch, int h, int w, int per_image)
{
    tat_bn_geom bn = {batch, e->out_c, h * w, per_image};
    /* d(conv out) is needed whole before the conv backward: reuse out, which is dead now */
    bn_backward(e->out, e->scale_grads, e->bias_grads, e->out_grad, e->x_hat, e->inv_std,
                e->scales, bn, 1);
    tat_conv_backward(d_in, e->weight_grads, e->out, in, e->weights, workspace, batch, e->in_c, h,
                      w, e->out_c, e->ksize);
}

/* ---- Anchor pooling -------------------------------------------------------------------- */

void tat_avgpool_forward(float *out, const float *in, tat_pool_geom g)
{
    TAT_ASSERT(g.kh >= 1 && g.kw >= 1 && g.kh <= g.h && g.kw <= g.w);
    int oh = g.h / g.kh, ow = g.w / g.kw, p, oy, ox, y, x;
    float inv = 1.f / (g.kh * g.kw);
    for (p = 0; p < g.planes; ++p) {
        const float *src = in + (size_t)p * g.h * g.w;
        float *dst = out + (size_t)p * oh * ow;
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                float sum = 0;
                for (y = 0; y < g.kh; ++y)
                    for (x = 0; x < g.kw; ++x) sum += src[(oy * g.kh + y) * g.w + ox * g.kw + x];
                dst[oy * ow + ox] = sum * inv;
            }
    }
}

void tat_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g)
{
    int oh = g.h / g.kh, ow = g.w / g.kw, p, oy, ox, y, x;
    float inv = 1.f / (g.kh * g.kw);
    for (p = 0; p < g.planes; ++p) {
        float *dst = d_in + (size_t)p * g.h * g.w;
        const float *src = d_out + (size_t)p * oh * ow;
        for (oy = 0; oy < oh; ++oy)
            for (ox = 0; ox < ow; ++ox) {
                float gr = src[oy * ow + ox] * inv;
                for (y = 0; y < g.kh; ++y)
                    for (x = 0; x < g.kw; ++x) dst[(oy * g.kh + y) * g.w + ox * g.kw + x] += gr;
            }
    }
}

/* ---- Attention ------------------------------------------------------------------------- */

/* Row softmax in place, max subtracted: the logits are unscaled dot products of
 * BN-normalised vectors and reach tens to hundreds. A row (at most a few thousand floats)
 * stays in L1 across the three passes. */
static void softmax_rows(float *s, int rows, int cols)
{
    int i, j;
    for (i = 0; i < rows; ++i) {
        float *row = s + (size_t)i * cols;
        float mx = -FLT_MAX, sum = 0;
        for (j = 0; j < cols; ++j) mx = row[j] > mx ? row[j] : mx;
        for (j = 0; j < cols; ++j) {
            float e = expf(row[j] - mx);
            row[j] = e;
            sum += e;
        }
        float inv = 1.f / sum;
        for (j = 0; j < cols; ++j) row[j] *= inv;
    }
}

/* One block forward: a = softmax(q^T k), o = v a^T (assigned). */
static void block_forward(float *o, float *a, const float *q, const float *k, const float *v,
                          int N, int d)
{
    tat_gemm(1, 0, N, N, d, 1, q, N, k, N, 0, a, N); /* S = Q^T K */
    softmax_rows(a, N, N);
    tat_gemm(0, 1, d, N, N, 1, v, N, a, N, 0, o, N); /* O = V A^T */
}

/* One block backward from dO (d x N) and D (D_i = dO_i . o_i). dq, dk (may be NULL), dv get
 * beta * themselves + the gradient: beta 1 accumulates in place, beta 0 assigns into scratch.
 * ds: N*N scratch. */
static void block_backward(float *dq, float *dk, float *dv, float beta, const float *q,
                           const float *k, const float *v, const float *a, const float *dO,
                           const float *D, float *ds, int N, int d)
{
    int r, j;
    tat_gemm(0, 0, d, N, N, 1, dO, N, a, N, beta, dv, N);  /* dV = dO A    */
    tat_gemm(1, 0, N, N, d, 1, dO, N, v, N, 0, ds, N);     /* dP = dO^T V  */
    for (r = 0; r < N; ++r) {                               /* dS = A (dP - D) */
        float *row = ds + (size_t)r * N, dr = D[r];
        const float *arow = a + (size_t)r * N;
        for (j = 0; j < N; ++j) row[j] = arow[j] * (row[j] - dr);
    }
    tat_gemm(0, 1, d, N, N, 1, k, N, ds, N, beta, dq, N);  /* dQ = K dS^T  */
    if (dk) tat_gemm(0, 0, d, N, N, 1, q, N, ds, N, beta, dk, N); /* dK = Q dS */
}

/* ---- Streaming attention: the same block math in tiles, never the N x N matrix ---------- */

/* Floats of per-thread tile scratch: the S/P tile, the dP/dS tile, three row vectors. */
static size_t stream_tile_floats(int tile)
{
    return 2 * (size_t)tile * tile + 3 * (size_t)tile;
}

/* One block forward as block_forward, tile by tile: for each tile of queries, a running row
 * max m and sum l of exp(S - m) over the key tiles, O's columns rescaled when m grows, then
 * divided by l at the end. lse[i] = m_i + log l_i (log of the softmax denominator) is what
 * the backward needs to recompute any tile of A. o is assigned. */
static void block_forward_streaming(float *o, float *lse, const float *q, const float *k,
                                    const float *v, int N, int d, int tile, float *ws)
{
    float *s = ws, *m = s + 2 * (size_t)tile * tile, *l = m + tile, *rescale = l + tile;
    int i0, j0, r, j, ch;
    for (i0 = 0; i0 < N; i0 += tile) {
        int bq = N - i0 < tile ? N - i0 : tile;
        float *ocols = o + i0;
        for (r = 0; r < bq; ++r) m[r] = -INFINITY, l[r] = 0;
        for (j0 = 0; j0 < N; j0 += tile) {
            int bk = N - j0 < tile ? N - j0 : tile;
            tat_gemm(1, 0, bq, bk, d, 1, q + i0, N, k + j0, N, 0, s, bk); /* S tile = Q_i^T K_j */
            for (r = 0; r < bq; ++r) {
                float *row = s + (size_t)r * bk, mx = m[r], sum = 0;
                for (j = 0; j < bk; ++j) mx = row[j] > mx ? row[j] : mx;
                for (j = 0; j < bk; ++j) {
                    float e = expf(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                rescale[r] = expf(m[r] - mx); /* 0 on the first tile (m = -inf) */
                l[r] = l[r] * rescale[r] + sum;
                m[r] = mx;
            }
            if (j0)
                for (ch = 0; ch < d; ++ch)
                    for (r = 0; r < bq; ++r) ocols[(size_t)ch * N + r] *= rescale[r];
            tat_gemm(0, 1, d, bq, bk, 1, v + j0, N, s, bk, j0 ? 1 : 0, ocols, N); /* O_i += V_j P^T */
        }
        for (r = 0; r < bq; ++r) {
            lse[i0 + r] = m[r] + logf(l[r]);
            rescale[r] = 1.f / l[r];
        }
        for (ch = 0; ch < d; ++ch)
            for (r = 0; r < bq; ++r) ocols[(size_t)ch * N + r] *= rescale[r];
    }
}

/* One block backward as block_backward, tile by tile: each tile of A recomputed as
 * exp(Q_i^T K_j - lse_i), then dV_j += dO_i A, dS = A * (dO_i^T V_j - D_i), dQ_i += K_j dS^T,
 * dK_j += Q_i dS. beta as block_backward (0: dq, dk, dv are assigned). */
static void block_backward_streaming(float *dq, float *dk, float *dv, float beta, const float *q,
                                     const float *k, const float *v, const float *lse,
                                     const float *dO, const float *D, int N, int d, int tile,
                                     float *ws)
{
    float *p = ws, *ds = p + (size_t)tile * tile;
    size_t blk = (size_t)d * N;
    int i0, j0, r, j;
    if (beta == 0) {
        memset(dq, 0, blk * sizeof(float));
        memset(dv, 0, blk * sizeof(float));
        if (dk) memset(dk, 0, blk * sizeof(float));
    }
    for (i0 = 0; i0 < N; i0 += tile) {
        int bq = N - i0 < tile ? N - i0 : tile;
        for (j0 = 0; j0 < N; j0 += tile) {
            int bk = N - j0 < tile ? N - j0 : tile;
            tat_gemm(1, 0, bq, bk, d, 1, q + i0, N, k + j0, N, 0, p, bk);
            for (r = 0; r < bq; ++r) {
                float *row = p + (size_t)r * bk, lr = lse[i0 + r];
                for (j = 0; j < bk; ++j) row[j] = expf(row[j] - lr);
            }
            tat_gemm(0, 0, d, bk, bq, 1, dO + i0, N, p, bk, 1, dv + j0, N); /* dV_j += dO_i A */
            tat_gemm(1, 0, bq, bk, d, 1, dO + i0, N, v + j0, N, 0, ds, bk); /* dP = dO_i^T V_j */
            for (r = 0; r < bq; ++r) {
                float *row = ds + (size_t)r * bk, dr = D[i0 + r];
                const float *arow = p + (size_t)r * bk;
                for (j = 0; j < bk; ++j) row[j] = arow[j] * (row[j] - dr);
            }
            tat_gemm(0, 1, d, bq, bk, 1, k + j0, N, ds, bk, 1, dq + i0, N); /* dQ_i += K_j dS^T */
            if (dk) tat_gemm(0, 0, d, bk, bq, 1, q + i0, N, ds, bk, 1, dk + j0, N); /* dK_j += Q_i dS */
        }
    }
}

typedef struct {
    float *O, *A, *d_Q, *d_K, *d_V, *scratch;
    const float *Q, *K, *V, *T;
    float w;
    int n_blocks, N, d;
    double part[TAT_MAX_THREADS];
} attn_ctx;

static void attn_forward_range(void *p, int tid, int nt)
{
    attn_ctx *c = p;
    size_t blk = (size_t)c->d * c->N, i;
    double sse = 0;
    int b, lo, hi;
    tat_share(c->n_blocks, tid, nt, &lo, &hi);
    for (b = lo; b < hi; ++b) {
        float *o = c->O + b * blk;
        const float *t = c->T + b * blk;
        block_forward(o, c->A + (size_t)b * c->N * c->N, c->Q + b * blk, c->K + b * blk,
                      c->V + b * blk, c->N, c->d);
        for (i = 0; i < blk; ++i) sse += (double)(o[i] - t[i]) * (o[i] - t[i]);
    }
    c->part[tid] = sse;
}

double tat_attention_forward(float *O, float *A, const float *Q, const float *K, const float *V,
                             const float *T, int n_blocks, int N, int d)
{
    attn_ctx c;
    double sse = 0;
    int i, nt = tat_get_num_threads();
    c.O = O, c.A = A, c.Q = Q, c.K = K, c.V = V, c.T = T, c.n_blocks = n_blocks, c.N = N, c.d = d;
    for (i = 0; i < TAT_MAX_THREADS; ++i) c.part[i] = 0;
    tat_run(attn_forward_range, &c, n_blocks >= nt);
    for (i = 0; i < TAT_MAX_THREADS; ++i) sse += c.part[i];
    return sse;
}

/* Per-thread scratch of tat_attention_backward: dO, dS, D. */
static size_t attn_thread_floats(int N, int d)
{
    return (size_t)d * N + (size_t)N * N + N;
}

size_t tat_attention_scratch_floats(int N, int d)
{
    return attn_thread_floats(N, d) * tat_get_num_threads();
}

static void attn_backward_range(void *p, int tid, int nt)
{
    attn_ctx *c = p;
    int N = c->N, d = c->d, b, lo, hi, r, ch;
    size_t blk = (size_t)d * N, i;
    float *dO = c->scratch + attn_thread_floats(N, d) * tid, *dS = dO + blk, *D = dS + (size_t)N * N;
    tat_share(c->n_blocks, tid, nt, &lo, &hi);
    for (b = lo; b < hi; ++b) {
        const float *o = c->O + b * blk, *t = c->T + b * blk;
        for (i = 0; i < blk; ++i) dO[i] = 2 * c->w * (o[i] - t[i]);
        for (r = 0; r < N; ++r) D[r] = 0;
        for (ch = 0; ch < d; ++ch)                                       /* D_i = dO_i . o_i */
            for (r = 0; r < N; ++r) D[r] += dO[(size_t)ch * N + r] * o[(size_t)ch * N + r];
        block_backward(c->d_Q + b * blk, c->d_K ? c->d_K + b * blk : NULL, c->d_V + b * blk, 1,
                       c->Q + b * blk, c->K + b * blk, c->V + b * blk,
                       c->A + (size_t)b * N * N, dO, D, dS, N, d);
    }
}

void tat_attention_backward(float *d_Q, float *d_K, float *d_V, const float *Q, const float *K,
                            const float *V, const float *T, const float *A, const float *O, float w,
                            float *scratch, int n_blocks, int N, int d)
{
    attn_ctx c;
    c.O = (float *)O, c.A = (float *)A, c.Q = Q, c.K = K, c.V = V, c.T = T, c.w = w;
    c.d_Q = d_Q, c.d_K = d_K, c.d_V = d_V, c.scratch = scratch;
    c.n_blocks = n_blocks, c.N = N, c.d = d;
    tat_run(attn_backward_range, &c, n_blocks >= tat_get_num_threads());
}

/* ---- Terms ------------------------------------------------------------------------------ */

const char *tat_term_geom_patch(tat_term_geom *g, int batch, int c, int h, int w, int grid_h,
                                int grid_w, int groups)
{
    if (grid_h < 1 || grid_w < 1) return "the patch grid must be at least 1,1";
    if (grid_h > h || grid_w > w) return "the patch grid is larger than the feature map";
    if (groups < 1) return "groups must be at least 1";
    if ((grid_h * grid_w) % groups) return "groups does not divide the number of patches";
    memset(g, 0, sizeof(*g));
    g->kind = TAT_TERM_PATCH_GROUPS;
    g->batch = batch, g->c = c, g->h = h, g->w = w;
    g->grid_h = grid_h, g->grid_w = grid_w, g->groups = groups;
    g->n_blocks = batch * groups;
    g->N = (h / grid_h) * (w / grid_w);
    g->d = grid_h * grid_w / groups * c;
    /* one patch covering the map: an NCHW image already is the block */
    g->direct = grid_h == 1 && grid_w == 1;
    return NULL;
}

const char *tat_term_geom_anchor(tat_term_geom *g, int batch, int c, int h, int w, int anchor_h,
                                 int anchor_w)
{
    if (anchor_h < 1 || anchor_w < 1) return "the anchor grid must be at least 1,1";
    if (anchor_h > h || anchor_w > w) return "the anchor grid is larger than the feature map";
    memset(g, 0, sizeof(*g));
    g->kind = TAT_TERM_ANCHORS;
    g->batch = batch, g->c = c, g->h = h, g->w = w;
    g->groups = 1;
    g->pool_h = h / anchor_h;
    g->pool_w = w / anchor_w;
    g->n_blocks = batch;
    /* as avg_pool2d: the pooled map may hold more anchors than asked (11 / (11/4) = 5) */
    g->N = (h / g->pool_h) * (w / g->pool_w);
    g->d = c;
    return NULL;
}

size_t tat_term_materialized_bytes(const tat_term_geom *g, int nthreads)
{
    return ((size_t)g->n_blocks + nthreads) * g->N * g->N * sizeof(float);
}

int tat_term_prefers_streaming(const tat_term_geom *g)
{
    return tat_term_materialized_bytes(g, tat_get_num_threads()) > TAT_ATTENTION_BUDGET_BYTES;
}

int tat_term_stream_tile_for_budget(const tat_term_geom *g, int kept, size_t budget_bytes, int min_tile,
                                    int allow_materialized)
{
    static const int larger[] = {4096, 2048};
    size_t per_matrix = (size_t)kept * g->n_blocks * sizeof(float);
    int i;
    if (allow_materialized && per_matrix * g->N * g->N <= budget_bytes) return 0;
    for (i = 0; i < 2; ++i)
        if (larger[i] > min_tile && per_matrix * larger[i] * larger[i] <= budget_bytes) return larger[i];
    return min_tile;
}

size_t tat_term_elements_per_image(const tat_term_geom *g)
{
    return (size_t)(g->n_blocks / g->batch) * g->N * g->d;
}

double tat_term_flops_per_image(const tat_term_geom *g)
{
    return 4.0 * g->N * g->N * g->d * (g->n_blocks / g->batch);
}

tat_patch_geom tat_term_patch_geom(const tat_term_geom *g, int one_image)
{
    tat_patch_geom p = {one_image ? 1 : g->batch, g->c, g->h, g->w, g->grid_h, g->grid_w, g->groups};
    return p;
}

tat_pool_geom tat_term_pool_geom(const tat_term_geom *g, int one_image)
{
    tat_pool_geom p = {(one_image ? 1 : g->batch) * g->c, g->h, g->w, g->pool_h, g->pool_w};
    return p;
}

/* The streaming tile edge of a term, at most N; 0 when materialised. */
static int term_tile(const tat_term_geom *g)
{
    return g->stream_tile > g->N ? g->N : g->stream_tile;
}

/* Per-thread scratch of the term: the gathered q, k, v, t blocks (forward) or q, k, v, dO and
 * the block gradients dq, dk, dv (backward), then dS (N x N) or the streaming tiles, and D.
 * Direct terms read and write the maps. */
static size_t term_thread_floats(const tat_term_geom *g)
{
    size_t blk = (size_t)g->N * g->d;
    size_t att = g->stream_tile ? stream_tile_floats(term_tile(g)) : (size_t)g->N * g->N;
    return (g->direct ? blk : 7 * blk) + att + g->N;
}

void tat_term_init(tat_term *t, const tat_term_geom *g)
{
    size_t n = (size_t)g->n_blocks * g->N * g->d;
    TAT_ASSERT(g->batch >= 1 && g->c >= 1 && g->n_blocks >= g->batch && g->N >= 1 && g->d >= 1 &&
               g->stream_tile >= 0);
    memset(t, 0, sizeof(*t));
    t->geom = *g;
    t->nthreads = tat_get_num_threads();
    t->resid = tat_calloc(n, sizeof(float));
    t->drow = tat_calloc((size_t)g->n_blocks * g->N, sizeof(float));
    t->sse_blk = tat_calloc(g->n_blocks, sizeof(double));
    if (g->stream_tile)
        t->lse = tat_calloc((size_t)g->n_blocks * g->N, sizeof(float));
    else
        t->attn = tat_calloc((size_t)g->n_blocks * g->N * g->N, sizeof(float));
    t->scratch = tat_calloc(term_thread_floats(g) * t->nthreads, sizeof(float));
    if (g->kind == TAT_TERM_ANCHORS) t->kept = tat_calloc(3 * n, sizeof(float));
}

void tat_term_free(tat_term *t)
{
    free(t->resid);
    free(t->kept);
    free(t->drow);
    free(t->sse_blk);
    free(t->attn);
    free(t->lse);
    free(t->scratch);
    memset(t, 0, sizeof(*t));
}

/* Patch groups: the top-left corner (y0, x0) in the map of patch pp (patches of h/grid_h by
 * w/grid_w, numbered row-major). */
static void patch_corner(const tat_term_geom *g, int pp, int *y0, int *x0)
{
    *y0 = pp / g->grid_w * (g->h / g->grid_h);
    *x0 = pp % g->grid_w * (g->w / g->grid_w);
}

/* Patch groups: the patches of one group (block a of an image) are per_group consecutive ones. */
static int patches_per_group(const tat_term_geom *g) { return g->grid_h * g->grid_w / g->groups; }

/* Block `blk` of an NCHW map, copied into `out` (d x N). Each block is built and consumed by
 * one thread while it is hot in its cache, instead of regrouping whole maps in extra passes. */
static void gather_block(const tat_term_geom *g, float *out, const float *x, int blk)
{
    int groups = g->groups, b = blk / groups, a = blk % groups, c = g->c, h = g->h, w = g->w;
    if (g->kind == TAT_TERM_ANCHORS) {
        tat_avgpool_forward(out, x + (size_t)b * c * h * w, tat_term_pool_geom(g, 1));
        return;
    }
    int ph = h / g->grid_h, pw = w / g->grid_w, per = patches_per_group(g), e, y, i, y0, x0;
    for (e = 0; e < g->d; ++e) {
        int pp = a * per + e / c, ch = e % c;
        patch_corner(g, pp, &y0, &x0);
        const float *src = x + (((size_t)b * c + ch) * h + y0) * w + x0;
        float *dst = out + (size_t)e * g->N;
        /* rows are a few floats: an inline loop beats a memcpy call per row */
        for (y = 0; y < ph; ++y)
            for (i = 0; i < pw; ++i) dst[y * pw + i] = src[(size_t)y * w + i];
    }
}

/* The adjoint of gather_block: d_x += the block's gradient put back. Blocks never overlap, so
 * threads scatter different blocks at once without locks. */
static void scatter_block_add(const tat_term_geom *g, float *d_x, const float *d_blk, int blk)
{
    int groups = g->groups, b = blk / groups, a = blk % groups, c = g->c, h = g->h, w = g->w;
    if (g->kind == TAT_TERM_ANCHORS) {
        tat_avgpool_backward(d_x + (size_t)b * c * h * w, d_blk, tat_term_pool_geom(g, 1));
        return;
    }
    int ph = h / g->grid_h, pw = w / g->grid_w, per = patches_per_group(g), e, y, x, y0, x0;
    for (e = 0; e < g->d; ++e) {
        int pp = a * per + e / c, ch = e % c;
        patch_corner(g, pp, &y0, &x0);
        float *dst = d_x + (((size_t)b * c + ch) * h + y0) * w + x0;
        const float *src = d_blk + (size_t)e * g->N;
        for (y = 0; y < ph; ++y)
            for (x = 0; x < pw; ++x) dst[(size_t)y * w + x] += src[y * pw + x];
    }
}

/* The whole-map regrouping (reference): every block of the batch, one at a time. */
static tat_term_geom patch_term_geom(tat_patch_geom g)
{
    tat_term_geom t;
    const char *err = tat_term_geom_patch(&t, g.batch, g.c, g.h, g.w, g.grid_h, g.grid_w, g.groups);
    TAT_ASSERT(err == NULL);
    return t;
}

void tat_patch_gather(float *blocks, const float *x, tat_patch_geom g)
{
    tat_term_geom t = patch_term_geom(g);
    int b;
    for (b = 0; b < t.n_blocks; ++b) gather_block(&t, blocks + (size_t)b * t.d * t.N, x, b);
}

void tat_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g)
{
    tat_term_geom t = patch_term_geom(g);
    int b;
    for (b = 0; b < t.n_blocks; ++b) scatter_block_add(&t, d_x, d_blocks + (size_t)b * t.d * t.N, b);
}

/* ---- Attention maps (inspection) --------------------------------------------------------- */

/* The block of image 0 (its index) and the row in it of the query at map position (y, x), or
 * why there is none. */
static const char *query_of(const tat_term_geom *g, int y, int x, int *blk, int *row)
{
    if (y < 0 || y >= g->h || x < 0 || x >= g->w) return "the position is outside the map";
    if (g->kind == TAT_TERM_ANCHORS) {
        int ah = g->h / g->pool_h, aw = g->w / g->pool_w;
        if (y / g->pool_h >= ah || x / g->pool_w >= aw)
            return "the position is in the rows/columns the anchor pooling leaves out";
        *blk = 0;
        *row = y / g->pool_h * aw + x / g->pool_w;
    } else {
        int ph = g->h / g->grid_h, pw = g->w / g->grid_w, pi = y / ph, pj = x / pw;
        if (pi >= g->grid_h || pj >= g->grid_w)
            return "the position is in the rows/columns the patch grid leaves out";
        *blk = (pi * g->grid_w + pj) / patches_per_group(g);
        *row = (y % ph) * pw + x % pw;
    }
    return NULL;
}

/* Row `row` of one block's softmax(Q^T K): weights[N]; dot products in double. */
static void attention_row(float *weights, const float *Q, const float *K, int N, int d, int row)
{
    int i, c;
    float max = -1e30f;
    double sum = 0;
    for (i = 0; i < N; ++i) {
        double dot = 0;
        for (c = 0; c < d; ++c) dot += (double)Q[c * N + row] * K[c * N + i];
        weights[i] = (float)dot;
        if (weights[i] > max) max = weights[i];
    }
    for (i = 0; i < N; ++i) sum += weights[i] = expf(weights[i] - max);
    for (i = 0; i < N; ++i) weights[i] = (float)(weights[i] / sum);
}

const char *tat_term_attention_map(const tat_term_geom *g, const float *q, const float *k, int y,
                                   int x, float *map)
{
    size_t blk_floats = (size_t)g->d * g->N;
    float *qb, *kb, *weights;
    int blk, row, i;
    const char *why = query_of(g, y, x, &blk, &row);
    if (why) return why;
    qb = tat_calloc(2 * blk_floats + g->N, sizeof(float));
    kb = qb + blk_floats;
    weights = kb + blk_floats;
    gather_block(g, qb, q, blk);
    gather_block(g, kb, k, blk);
    attention_row(weights, qb, kb, g->N, g->d, row);
    memset(map, 0, (size_t)g->h * g->w * sizeof(float));
    if (g->kind == TAT_TERM_ANCHORS) {
        int aw = g->w / g->pool_w, yy, xx;
        for (yy = 0; yy < g->h / g->pool_h * g->pool_h; ++yy)
            for (xx = 0; xx < aw * g->pool_w; ++xx)
                map[(size_t)yy * g->w + xx] = weights[yy / g->pool_h * aw + xx / g->pool_w];
    } else {
        int pw = g->w / g->grid_w, per = patches_per_group(g), p, y0, x0;
        for (p = blk * per; p < (blk + 1) * per; ++p) {
            patch_corner(g, p, &y0, &x0);
            for (i = 0; i < g->N; ++i) map[(size_t)(y0 + i / pw) * g->w + x0 + i % pw] = weights[i];
        }
    }
    free(qb);
    return NULL;
}

typedef struct {
    tat_term *t;
    float *d_q, *d_k, *d_v, w;
} term_ctx;

/* Forward of a share of the blocks. Saves A, the residual R = O - T and R_i . O_i per
 * position: the backward needs dO = 2w R and D_i = 2w R_i . O_i, so neither O nor T is kept. */
static void term_forward_range(void *p, int tid, int nt)
{
    tat_term *t = ((term_ctx *)p)->t;
    int N = t->geom.N, d = t->geom.d, b, lo, hi, r, ch;
    size_t blk = (size_t)d * N;
    float *ws = t->scratch + term_thread_floats(&t->geom) * tid;
    tat_share(t->geom.n_blocks, tid, nt, &lo, &hi);
    for (b = lo; b < hi; ++b) {
        const float *q, *k, *v, *tg;
        if (t->geom.direct) {
            q = t->Q + b * blk, k = t->K + b * blk, v = t->V + b * blk, tg = t->T + b * blk;
        } else {
            /* anchor blocks are pooled, far smaller than the maps: keep them for the backward
             * instead of pooling the maps again */
            float *qb = t->kept ? t->kept + 3 * b * blk : ws;
            gather_block(&t->geom, qb, t->Q, b);
            gather_block(&t->geom, qb + blk, t->K, b);
            gather_block(&t->geom, qb + 2 * blk, t->V, b);
            gather_block(&t->geom, ws + 3 * blk, t->T, b);
            q = qb, k = qb + blk, v = qb + 2 * blk, tg = ws + 3 * blk;
        }
        float *o = t->resid + b * blk, *D = t->drow + (size_t)b * N;
        double sse = 0;
        if (t->geom.stream_tile)
            block_forward_streaming(o, t->lse + (size_t)b * N, q, k, v, N, d, term_tile(&t->geom),
                                    ws + (t->geom.direct ? blk : 4 * blk));
        else
            block_forward(o, t->attn + (size_t)b * N * N, q, k, v, N, d);
        for (r = 0; r < N; ++r) D[r] = 0;
        for (ch = 0; ch < d; ++ch) {
            float *orow = o + (size_t)ch * N;
            const float *trow = tg + (size_t)ch * N;
            for (r = 0; r < N; ++r) {
                float diff = orow[r] - trow[r];
                D[r] += diff * orow[r];
                sse += (double)diff * diff;
                orow[r] = diff;
            }
        }
        t->sse_blk[b] = sse;
    }
}

double tat_term_forward(tat_term *t, const float *q, const float *k, const float *v,
                        const float *target)
{
    term_ctx c;
    double sse = 0;
    int b;
    t->Q = q, t->K = k, t->V = v, t->T = target;
    c.t = t;
    tat_run(term_forward_range, &c, t->geom.n_blocks >= t->nthreads);
    for (b = 0; b < t->geom.n_blocks; ++b) sse += t->sse_blk[b]; /* block order: thread-independent */
    return sse;
}

/* Block b's backward, from its saved attention matrix or streamed from its row statistics.
 * ds: the N x N or tile scratch. */
static void term_block_backward(const tat_term *t, int b, float *dq, float *dk, float *dv,
                                float beta, const float *q, const float *k, const float *v,
                                const float *dO, const float *D, float *ds)
{
    int N = t->geom.N, d = t->geom.d;
    if (t->geom.stream_tile)
        block_backward_streaming(dq, dk, dv, beta, q, k, v, t->lse + (size_t)b * N, dO, D, N, d,
                                 term_tile(&t->geom), ds);
    else
        block_backward(dq, dk, dv, beta, q, k, v, t->attn + (size_t)b * N * N, dO, D, ds, N, d);
}

static void term_backward_range(void *p, int tid, int nt)
{
    term_ctx *c = p;
    tat_term *t = c->t;
    int N = t->geom.N, d = t->geom.d, b, lo, hi, r;
    size_t blk = (size_t)d * N, i;
    float *ws = t->scratch + term_thread_floats(&t->geom) * tid, two_w = 2 * c->w;
    float *dO = ws + (t->geom.direct ? 0 : 3 * blk), *ds = dO + (t->geom.direct ? blk : 4 * blk);
    float *D = ds + (t->geom.stream_tile ? stream_tile_floats(term_tile(&t->geom)) : (size_t)N * N);
    tat_share(t->geom.n_blocks, tid, nt, &lo, &hi);
    for (b = lo; b < hi; ++b) {
        const float *res = t->resid + b * blk, *dr = t->drow + (size_t)b * N;
        for (i = 0; i < blk; ++i) dO[i] = two_w * res[i];
        for (r = 0; r < N; ++r) D[r] = two_w * dr[r];
        if (t->geom.direct) {
            term_block_backward(t, b, c->d_q + b * blk, c->d_k ? c->d_k + b * blk : NULL,
                                c->d_v + b * blk, 1, t->Q + b * blk, t->K + b * blk, t->V + b * blk,
                                dO, D, ds);
            continue;
        }
        float *q = t->kept ? t->kept + 3 * b * blk : ws, *k = q + blk, *v = q + 2 * blk;
        float *dq = dO + blk, *dk = dO + 2 * blk, *dv = dO + 3 * blk;
        if (!t->kept) {
            gather_block(&t->geom, q, t->Q, b);
            gather_block(&t->geom, k, t->K, b);
            gather_block(&t->geom, v, t->V, b);
        }
        term_block_backward(t, b, dq, c->d_k ? dk : NULL, dv, 0, q, k, v, dO, D, ds);
        scatter_block_add(&t->geom, c->d_q, dq, b);
        scatter_block_add(&t->geom, c->d_v, dv, b);
        if (c->d_k) scatter_block_add(&t->geom, c->d_k, dk, b);
    }
}

void tat_term_backward(tat_term *t, float *d_q, float *d_k, float *d_v, float w)
{
    term_ctx c;
    c.t = t, c.d_q = d_q, c.d_k = d_k, c.d_v = d_v, c.w = w;
    tat_run(term_backward_range, &c, t->geom.n_blocks >= t->nthreads);
}

/* ---- Baseline distillation terms ------------------------------------------------------- */

/* log softmax(x / T) of one row into out (double), max subtracted */
static void log_softmax_row(double *out, const float *x, int n, float temperature)
{
    double m = -DBL_MAX, sum = 0, log_z;
    int j;
    for (j = 0; j < n; ++j) {
        out[j] = (double)x[j] / temperature;
        if (out[j] > m) m = out[j];
    }
    for (j = 0; j < n; ++j) sum += exp(out[j] - m);
    log_z = m + log(sum);
    for (j = 0; j < n; ++j) out[j] -= log_z;
}

double tat_kd_forward(float *p_s, float *p_t, const float *s, const float *t, int batch, int n,
                      float temperature)
{
    double *log_s = tat_calloc(2 * (size_t)n, sizeof(double)), *log_t = log_s + n;
    double kl = 0;
    int b, j;
    for (b = 0; b < batch; ++b) {
        size_t row = (size_t)b * n;
        log_softmax_row(log_s, s + row, n, temperature);
        log_softmax_row(log_t, t + row, n, temperature);
        for (j = 0; j < n; ++j) {
            double pt = exp(log_t[j]);
            p_s[row + j] = (float)exp(log_s[j]);
            p_t[row + j] = (float)pt;
            if (pt > 0) kl += pt * (log_t[j] - log_s[j]);
        }
    }
    free(log_s);
    return kl;
}

void tat_kd_backward(float *d_s, const float *p_s, const float *p_t, int batch, int n,
                     float temperature, float w)
{
    /* d/ds of T^2 KL(p_t || softmax(s/T)) = T^2 * (p_s - p_t) / T */
    size_t i, total = (size_t)batch * n;
    float scale = w * temperature;
    for (i = 0; i < total; ++i) d_s[i] += scale * (p_s[i] - p_t[i]);
}

double tat_sse_forward(float *diff, const float *x, const float *target, size_t n)
{
    double sse = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        diff[i] = x[i] - target[i];
        sse += (double)diff[i] * diff[i];
    }
    return sse;
}

void tat_sse_backward(float *d_x, const float *diff, size_t n, float w)
{
    float two_w = 2 * w;
    size_t i;
    for (i = 0; i < n; ++i) d_x[i] += two_w * diff[i];
}
