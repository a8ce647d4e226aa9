/* The GPU path against the CPU implementation (tat.c, and the layers' CPU code), on a real
 * device: every kernel, the embedding and the terms of every case of tests/tat_cases.h, and both
 * distillation layers' forward, backward and update inside Darknet networks. Built against
 * build/gpu only (make test-gpu).
 * Without a CUDA device it prints one SKIP line and exits 0.
 *
 * Tolerances (relative to the largest reference magnitude, see rel_err in tests/test_helpers.h):
 *   TOL_EXACT 1e-6  gathers, scatters, pooling: the same fp32 operations in the same order;
 *                   only a wrong index gives a difference, and then an O(1) one.
 *   TOL_GEMM  1e-4  products and reductions: cuBLAS and the block reductions sum in another
 *                   order than OpenBLAS and tat.c's loops; sums of at most a few thousand
 *                   O(1) terms in fp32 differ by ~1e-6 relative, so 1e-4 leaves 100x margin
 *                   while an index or formula error gives O(1). These tolerances assume
 *                   fp32 (FMA) arithmetic: the comparison runs with TF32 off
 *                   (NVIDIA_TF32_OVERRIDE=0, set here before CUDA starts), since cuDNN's
 *                   default math mode may use TF32 tensor cores on Ampere and newer (10-bit
 *                   mantissa, ~1e-3 relative). With --default-math the same checks run in the
 *                   library defaults and only report their errors (INFO lines, never FAIL).
 *   TOL_LAYER 2e-3  a whole layer: softmax of logits in the tens amplifies the GEMM rounding
 *                   of S (an absolute error e in a logit is a relative error ~e in A), and
 *                   BatchNorm's backward subtracts nearly equal means; 2e-3 still fails on
 *                   any wrong gradient term (those are >= 1e-1 relative).
 * Prints PASS/FAIL/SKIP lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "darknet.h"
#include "distill_plugin.h"
#include "plugin.h"
#include "tat.h"
#include "tat_gpu.h"
/* relative to this file: the Makefile's include paths do not name tests/ */
#include "../tat_cases.h"
#include "../test_helpers.h"

#define TOL_EXACT 1e-6
#define TOL_GEMM 1e-4
#define TOL_LAYER 2e-3

/* --default-math: report the errors of the library default math mode, fail nothing */
static int default_math;

static void check_gpu(const char *name, double err, double tol)
{
    if (default_math) printf("  INFO default math: %s: relative error %.3g (tolerance in fp32 %.0e)\n", name, err, tol);
    else check_err(name, err, tol);
}
#define check_err check_gpu

/* device copy of a host array, and back */
static float *up(const float *x, size_t n) { return cuda_make_array((float *)x, n); }
static float *down(const float *x_gpu, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof(float));
    cuda_pull_array((float *)x_gpu, x, n);
    return x;
}
static double gpu_vs_host(const float *x_gpu, const float *ref, size_t n)
{
    float *x = down(x_gpu, n);
    double e = rel_err(x, ref, n);
    free(x);
    return e;
}

/* ---- kernels one by one ---------------------------------------------------------------- */
static void test_gemm(void)
{
    int ta, tb;
    for (ta = 0; ta < 2; ++ta)
        for (tb = 0; tb < 2; ++tb) {
            int M = 37, N = 29, K = 53, batch = 3, p;
            int lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
            long long sa = (long long)M * K, sb = (long long)K * N, sc = (long long)M * N;
            float *A = rand_array(sa * batch, 1), *B = rand_array(sb * batch, 1);
            float *C = rand_array(sc * batch, 1), *Cg = up(C, sc * batch);
            float *Ag = up(A, sa * batch), *Bg = up(B, sb * batch);
            char name[96];
            tat_gpu_gemm(tat_rm_gemm(ta, tb, M, N, K, lda, ldb, ldc, sa, sb, sc, batch, .5f, .25f), Ag, Bg, Cg);
            for (p = 0; p < batch; ++p)
                tat_gemm(ta, tb, M, N, K, .5f, A + p * sa, lda, B + p * sb, ldb, .25f, C + p * sc, ldc);
            snprintf(name, sizeof(name), "gpu gemm trans %d,%d strided batch 3 (37x29x53)", ta, tb);
            check_err(name, gpu_vs_host(Cg, C, sc * batch), TOL_GEMM);
            free(A), free(B), free(C);
            cuda_free(Ag), cuda_free(Bg), cuda_free(Cg);
        }
}

static void test_patch_and_pool(void)
{
    int batch = 2, c = 3, h = 11, w = 13;
    size_t nx = (size_t)batch * c * h * w;
    tat_patch_geom pg = {batch, c, h, w, 3, 4, 2};
    tat_pool_geom qg = {batch * c, h, w, 2, 3};
    size_t nb = tat_patch_block_elements(pg), np = tat_pool_out_elements(qg);
    float *x = rand_array(nx, 1), *xg = up(x, nx);
    float *blk = calloc(nb, sizeof(float)), *blkg = up(blk, nb);
    float *dx = rand_array(nx, 1), *dxg = up(dx, nx), *dblk = rand_array(nb, 1), *dblkg = up(dblk, nb);
    float *pool = calloc(np, sizeof(float)), *poolg = up(pool, np);
    float *dpool = rand_array(np, 1), *dpoolg = up(dpool, np);
    tat_patch_gather(blk, x, pg);
    tat_gpu_patch_gather(blkg, xg, pg);
    check_err("gpu patch gather (11x13 grid 3,4 groups 2)", gpu_vs_host(blkg, blk, nb), TOL_EXACT);
    tat_patch_scatter_add(dx, dblk, pg);
    tat_gpu_patch_scatter_add(dxg, dblkg, pg);
    check_err("gpu patch scatter-add (11x13 grid 3,4 groups 2)", gpu_vs_host(dxg, dx, nx), TOL_EXACT);
    tat_avgpool_forward(pool, x, qg);
    tat_gpu_avgpool_forward(poolg, xg, qg);
    check_err("gpu avgpool forward (11x13 kernel 2,3)", gpu_vs_host(poolg, pool, np), TOL_EXACT);
    tat_avgpool_backward(dx, dpool, qg);
    tat_gpu_avgpool_backward(dxg, dpoolg, qg);
    check_err("gpu avgpool backward (11x13 kernel 2,3)", gpu_vs_host(dxg, dx, nx), TOL_EXACT);
    free(x), free(blk), free(dx), free(dblk), free(pool), free(dpool);
    cuda_free(xg), cuda_free(blkg), cuda_free(dxg), cuda_free(dblkg), cuda_free(poolg), cuda_free(dpoolg);
}

/* the device's SM count, as the launchers size their grids */
static int sm_count(void)
{
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    return sms;
}

/* 3 x 5 x 301: a group longer than a block of threads; 16 x 6 x 3001: groups split over
 * several blocks (tat_bn_splits) */
static void test_batchnorm(int per_image, int batch, int c, int spatial)
{
    size_t n = (size_t)batch * c * spatial, ng = (size_t)batch * c;
    tat_bn_geom g = {batch, c, spatial, per_image};
    float *in = rand_array(n, 3), *gamma = rand_array(c, 1), *beta = rand_array(c, 1);
    float *out = calloc(n, 4), *xh = calloc(n, 4), *mean = calloc(ng, 4), *is = calloc(ng, 4);
    float *ing = up(in, n), *gammag = up(gamma, c), *betag = up(beta, c);
    float *outg = up(out, n), *xhg = up(xh, n), *meang = up(mean, ng), *isg = up(is, ng);
    float *dy = rand_array(n, 1), *dyg = up(dy, n), *dx = rand_array(n, 1), *dxg = up(dx, n);
    float *dgam = rand_array(c, 1), *dgamg = up(dgam, c), *dbet = rand_array(c, 1), *dbetg = up(dbet, c);
    char name[160];
    size_t groups = per_image ? ng : (size_t)c;
    tat_batchnorm_forward(out, xh, mean, is, in, gamma, beta, g);
    tat_gpu_batchnorm_forward(outg, xhg, meang, isg, ing, gammag, betag, g);
    int splits = tat_bn_splits(g, sm_count());
    snprintf(name, sizeof(name), "gpu batchnorm forward (%s, b%d c%d spatial %d, %d splits)",
             per_image ? "per image" : "batch", batch, c, spatial, splits);
    check_err(name, gpu_vs_host(outg, out, n) + gpu_vs_host(meang, mean, groups) + gpu_vs_host(isg, is, groups), TOL_GEMM);
    tat_batchnorm_backward(dx, dgam, dbet, dy, xh, is, gamma, g);
    tat_gpu_batchnorm_backward(dxg, dgamg, dbetg, dyg, xhg, isg, gammag, g, 0);
    snprintf(name, sizeof(name), "gpu batchnorm backward (%s, b%d c%d spatial %d, %d splits)",
             per_image ? "per image" : "batch", batch, c, spatial, splits);
    check_err(name, gpu_vs_host(dxg, dx, n) + gpu_vs_host(dgamg, dgam, c) + gpu_vs_host(dbetg, dbet, c), TOL_GEMM);
    free(in), free(gamma), free(beta), free(out), free(xh), free(mean), free(is);
    free(dy), free(dx), free(dgam), free(dbet);
    cuda_free(ing), cuda_free(gammag), cuda_free(betag), cuda_free(outg), cuda_free(xhg);
    cuda_free(meang), cuda_free(isg), cuda_free(dyg), cuda_free(dxg), cuda_free(dgamg), cuda_free(dbetg);
}

/* a warp per row up to TAT_SOFTMAX_WARP_COLS columns, a block beyond */
static void test_softmax(int rows, int cols)
{
    int r, j;
    size_t n = (size_t)rows * cols;
    float *s = rand_array(n, 200), *sg = up(s, n); /* logits in the hundreds */
    for (r = 0; r < rows; ++r) {
        float *row = s + (size_t)r * cols, mx = row[0];
        double sum = 0;
        for (j = 1; j < cols; ++j) mx = row[j] > mx ? row[j] : mx;
        for (j = 0; j < cols; ++j) sum += exp((double)row[j] - mx);
        for (j = 0; j < cols; ++j) row[j] = (float)(exp((double)row[j] - mx) / sum);
    }
    tat_gpu_softmax_rows(sg, rows, cols);
    {
        char name[120];
        snprintf(name, sizeof(name), "gpu softmax rows (%d x %d, logits +-200)", rows, cols);
        check_err(name, gpu_vs_host(sg, s, n), TOL_GEMM);
    }
    free(s);
    cuda_free(sg);
}

/* ---- an embedding and the terms ---------------------------------------------------------- */
/* a case's student embedding (student_c -> teacher_c, its kernel size and BN mode) */
static void test_embedding(const tat_case *tc)
{
    int batch = tc->batch, in_c = tc->student_c, out_c = tc->teacher_c, h = tc->h, w = tc->w;
    int ksize = tc->ksize, per_image = tc->per_image, hw = h * w;
    size_t nin = (size_t)batch * in_c * hw, nout = (size_t)batch * out_c * hw;
    size_t nw = (size_t)out_c * in_c * ksize * ksize;
    tat_embedding e;
    tat_gpu_embedding g;
    float *in = rand_array(nin, 2), *ing = up(in, nin), *grad = rand_array(nout, 1);
    float *ws = calloc(tat_conv_workspace_floats(batch, in_c, out_c, h, w, ksize) + 1, 4);
    size_t nwsg = tat_gpu_conv_workspace_floats(batch, in_c, h, w, ksize);
    float *wsg = cuda_make_array(0, nwsg ? nwsg : 1);
    float *dx = rand_array(nin, 1), *dxg = up(dx, nin);
    char what[200], name[300];
    snprintf(what, sizeof(what), "%s: embedding %dx%d + BN %s (b%d c%d->%d %dx%d)", tc->name, ksize,
             ksize, per_image ? "per image" : "batch", batch, in_c, out_c, h, w);
    tat_rng rng = tat_rng_from_rand();
    tat_embedding_init(&e, in_c, out_c, ksize, &rng);
    tat_embedding_alloc_activations(&e, batch, h, w);
    tat_gpu_embedding_init(&g, &e, batch, h, w);
    tat_embedding_forward(&e, in, ws, batch, h, w, per_image);
    tat_gpu_embedding_forward(&g, ing, wsg, batch, h, w, per_image);
    snprintf(name, sizeof(name), "gpu %s forward", what);
    check_err(name, gpu_vs_host(g.out, e.out, nout), TOL_GEMM);
    memcpy(e.out_grad, grad, nout * 4);
    cuda_push_array(g.out_grad, grad, nout);
    tat_embedding_backward(&e, dx, in, ws, batch, h, w, per_image);
    tat_gpu_embedding_backward(&g, dxg, ing, wsg, batch, h, w, per_image);
    snprintf(name, sizeof(name), "gpu %s backward (d_in, d_weights, d_scales, d_biases)", what);
    check_err(name, gpu_vs_host(dxg, dx, nin) + gpu_vs_host(g.weight_grads, e.weight_grads, nw) +
                        gpu_vs_host(g.scale_grads, e.scale_grads, out_c) +
                        gpu_vs_host(g.bias_grads, e.bias_grads, out_c),
              TOL_GEMM);
    tat_gpu_embedding_free(&g);
    tat_embedding_free(&e);
    free(in), free(grad), free(ws), free(dx);
    cuda_free(ing), cuda_free(wsg), cuda_free(dxg);
}

/* One term of a case on random q, k, v maps of teacher shape: its anchor term (anchors != 0)
 * or its patch-group term. */
static void test_term(const tat_case *tc, int anchors, int stream_tile)
{
    int batch = tc->batch, c = tc->teacher_c, key_grad = tc->key_learned;
    float qk_scale = tat_case_qk_scale(tc);
    tat_term t;
    tat_gpu_term g;
    size_t nx = (size_t)batch * c * tc->h * tc->w;
    float *q, *k, *v, *tg, *dq, *dk, *dv, *qg, *kg, *vg, *tgg, *dqg, *dkg, *dvg;
    double sse, sse_g;
    char what[200], name[300];
    tat_term_geom geom;
    const char *err = tat_case_term(tc, anchors, &geom, what, sizeof(what));
    if (err) {
        snprintf(name, sizeof(name), "gpu %s: geometry", what);
        report(0, name, "valid geometry rejected: %s", err);
        return;
    }
    if (stream_tile) {
        /* both stream: tat.c per block, the device in tiles of every block */
        size_t len = strlen(what);
        geom.stream_tile = stream_tile;
        snprintf(what + len, sizeof(what) - len, ", streaming tile %d", stream_tile);
    }
    q = rand_array(nx, qk_scale), k = rand_array(nx, qk_scale), v = rand_array(nx, 1);
    tg = rand_array(nx, 1), dq = rand_array(nx, .1f), dk = rand_array(nx, .1f), dv = rand_array(nx, .1f);
    qg = up(q, nx), kg = up(k, nx), vg = up(v, nx), tgg = up(tg, nx);
    dqg = up(dq, nx), dkg = up(dk, nx), dvg = up(dv, nx);
    tat_term_init(&t, &geom);
    tat_gpu_term_init(&g, &geom);
    sse = tat_term_forward(&t, q, k, v, tg);
    tat_gpu_term_forward(&g, qg, kg, vg, tgg);
    sse_g = tat_gpu_loss_wait(&g.loss);
    snprintf(name, sizeof(name), "gpu %s: loss and %s", what, stream_tile ? "row log-sum-exp" : "attention");
    check_err(name, fabs(sse_g - sse) / fabs(sse) +
                        (stream_tile ? gpu_vs_host(g.lse, t.lse, (size_t)geom.n_blocks * geom.N)
                                     : gpu_vs_host(g.attn, t.attn, (size_t)geom.n_blocks * geom.N * geom.N)),
              TOL_LAYER);
    tat_term_backward(&t, dq, key_grad ? dk : NULL, dv, -0.37f);
    tat_gpu_term_backward(&g, dqg, key_grad ? dkg : NULL, dvg, -0.37f);
    snprintf(name, sizeof(name), "gpu %s: backward d_q, d_k%s, d_v", what, key_grad ? "" : " untouched");
    check_err(name, gpu_vs_host(dqg, dq, nx) + gpu_vs_host(dkg, dk, nx) + gpu_vs_host(dvg, dv, nx), TOL_LAYER);
    tat_gpu_term_free(&g);
    tat_term_free(&t);
    free(q), free(k), free(v), free(tg), free(dq), free(dk), free(dv);
    cuda_free(qg), cuda_free(kg), cuda_free(vg), cuda_free(tgg), cuda_free(dqg), cuda_free(dkg), cuda_free(dvg);
}

/* ---- both layers in Darknet networks: GPU (gpu_index 0) against CPU (gpu_index -1) ------- */
static char dir[256];

static char *write_file(const char *name, const char *text)
{
    static char paths[8][512];
    static int n;
    char *p = paths[n++ % 8];
    FILE *fp;
    snprintf(p, 512, "%s/%s", dir, name);
    fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static network *pending_teacher;
static void attach_pending(network *net)
{
    if (pending_teacher) {
        net->teacher = pending_teacher;
        pending_teacher = 0;
    }
}

/* teacher and student parsed on the CPU (device -1) or on device 0, same weights files */
static network *parse_pair(const char *student_cfg, const char *teacher_cfg, const char *sw,
                           const char *tw, int device)
{
    network *teacher, *net;
    gpu_index = device;
    teacher = parse_network_cfg((char *)teacher_cfg);
    load_weights(teacher, (char *)tw);
    pending_teacher = teacher;
    train_parse_network_hook = attach_pending;
    net = parse_network_cfg((char *)student_cfg);
    train_parse_network_hook = 0;
    if (sw) load_weights(net, (char *)sw);
    return net;
}

static float *read_floats(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    long len;
    float *x;
    fseek(fp, 0, SEEK_END);
    len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    x = malloc(len);
    *n = fread(x, 1, len, fp) / sizeof(float);
    fclose(fp);
    return x;
}

/* One training step of both networks on the same inputs: forward, backward, update. */
static void train_step(network *cpu, network *gpu)
{
    gpu_index = -1;
    network_predict(cpu->teacher, cpu->input);
    cpu->train = 1;
    forward_network(cpu);
    backward_network(cpu);
    gpu_index = 0;
    network_predict(gpu->teacher, gpu->input);
    gpu->train = 1;
    forward_network(gpu);
    backward_network(gpu);
}

static void update_both(network *cpu, network *gpu)
{
    gpu_index = -1;
    update_network(cpu);
    gpu_index = 0;
    update_network(gpu);
}

/* student_filters: channels of the student's conv (6 gives it the teacher's logits count) */
#define TEACHER_NET "[net]\nbatch=4\nsubdivisions=1\nwidth=11\nheight=13\nchannels=3\n\n" \
    "[convolutional]\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"

static void test_layers_with(const char *teacher_text, const char *what, int student_filters,
                             const char *distill_sections)
{
    char student_text[2048], name[300];
    network *cpu, *gpu;
    size_t n_in, i, nd, nw_c, nw_g, nw_0;
    float *d_cpu, *d_gpu, *w_c, *w_g, *w_0;
    double loss_c = 0, loss_g = 0;
    int l;
    /* a large decay: its share of the update is then far above the tolerance, so a missing
       or doubled decay fails */
    snprintf(student_text, sizeof(student_text),
             "[net]\nbatch=4\nsubdivisions=1\nwidth=11\nheight=13\nchannels=3\nlearning_rate=0.1\nmomentum=0.9\ndecay=0.05\n\n"
             "[convolutional]\nfilters=%d\nsize=3\nstride=1\npad=1\nactivation=linear\n\n%s",
             student_filters, distill_sections);
    char *tcfg = write_file("teacher.cfg", teacher_text), *scfg = write_file("student.cfg", student_text);
    char tw[512], sw[512], out_c[512], out_g[512];
    snprintf(tw, sizeof(tw), "%s/teacher.weights", dir);
    snprintf(sw, sizeof(sw), "%s/student.weights", dir);
    snprintf(out_c, sizeof(out_c), "%s/after_cpu.weights", dir);
    snprintf(out_g, sizeof(out_g), "%s/after_gpu.weights", dir);
    /* one set of weights for both: written from a CPU parse */
    gpu_index = -1;
    {
        network *t = parse_network_cfg(tcfg);
        save_weights(t, tw);
        free_network(t);
    }
    cpu = parse_pair(scfg, tcfg, NULL, tw, -1);
    save_weights(cpu, sw);
    load_weights(cpu, sw);
    gpu = parse_pair(scfg, tcfg, sw, tw, 0);
    cuda_set_device(0);
    n_in = (size_t)cpu->inputs * cpu->batch;
    rng_seed(99);
    for (i = 0; i < n_in; ++i) cpu->input[i] = gpu->input[i] = (float)rng_signed();

    train_step(cpu, gpu);
    for (l = 0; l < cpu->n; ++l)
        if (distill_is_layer(&cpu->layers[l])) {
            loss_c += distill_layer_loss(&cpu->layers[l]);
            loss_g += distill_layer_loss(&gpu->layers[l]);
        }
    snprintf(name, sizeof(name), "gpu layers %s: forward loss (cpu %.6g)", what, loss_c);
    check_err(name, fabs(loss_g - loss_c) / fabs(loss_c), TOL_LAYER);
    nd = (size_t)cpu->layers[0].outputs * cpu->batch;
    d_cpu = cpu->layers[0].delta;
    d_gpu = down(gpu->layers[0].delta_gpu, nd);
    snprintf(name, sizeof(name), "gpu layers %s: backward, student delta", what);
    check_err(name, rel_err(d_gpu, d_cpu, nd), TOL_LAYER);
    free(d_gpu);
    /* two updates (Darknet's rule: the second carries the first's momentum, both the decay),
       then the change of every saved weight against the CPU's change */
    update_both(cpu, gpu);
    train_step(cpu, gpu);
    update_both(cpu, gpu);
    gpu_index = -1;
    save_weights(cpu, out_c);
    gpu_index = 0;
    save_weights(gpu, out_g);
    w_0 = read_floats(sw, &nw_0);
    w_c = read_floats(out_c, &nw_c);
    w_g = read_floats(out_g, &nw_g);
    for (i = 0; i < nw_0 && nw_c == nw_0 && nw_g == nw_0; ++i) {
        w_c[i] -= w_0[i];
        w_g[i] -= w_0[i];
    }
    snprintf(name, sizeof(name), "gpu layers %s: weight change over two updates (momentum, decay)", what);
    check_err(name, nw_c == nw_g && nw_c == nw_0 ? rel_err(w_g, w_c, nw_c) : 1e9, TOL_LAYER);
    free(w_0), free(w_c), free(w_g);
    free_network(cpu);
    free_network(gpu);
}

static void test_layers(const char *what, int student_filters, const char *distill_sections)
{
    test_layers_with(TEACHER_NET, what, student_filters, distill_sections);
}

/* Darknet's strided 1x1 convolution on the device (the strided-1x1 patch: im2col/col2im, not
 * the input as columns), in both networks: the teacher's forward, the student's forward,
 * backward (the delta reaching layer 0 passes through it) and weight update, against the CPU. */
static void test_strided_1x1(void)
{
    test_layers_with(TEACHER_NET "[convolutional]\nfilters=6\nsize=1\nstride=2\npad=0\nactivation=linear\n\n",
                     "strided 1x1 [convolutional] (13x11 -> 7x6) + [fitnet_distill]", 5,
                     "[convolutional]\nfilters=4\nsize=1\nstride=2\npad=0\nactivation=linear\n\n"
                     "[fitnet_distill]\nfrom=-1\nteacher_layer=1\nteacher_channels=6\nbn=batch\n\n");
}

/* Out of device memory: one line naming the layer, the size and the free memory, exit 1. The
 * allocation runs in a child (this program with --oom-child), its stderr to a file. */
static void test_out_of_memory(const char *self)
{
    char cmd[1024], path[512], line[1024] = "";
    FILE *fp;
    int status;
    snprintf(path, sizeof(path), "%s/oom.err", dir);
    snprintf(cmd, sizeof(cmd), "'%s' --oom-child 2> '%s'", self, path);
    status = system(cmd);
    fp = fopen(path, "r");
    if (fp) {
        if (!fgets(line, sizeof(line), fp)) line[0] = 0;
        fclose(fp);
    }
    line[strcspn(line, "\n")] = 0;
    report(WIFEXITED(status) && WEXITSTATUS(status) == 1 &&
               strstr(line, "student.cfg: [tat_distill] (layer 7): cannot allocate 4194304.0 MiB of GPU memory (") &&
               strstr(line, "MiB of GPU memory free)"),
           "gpu out of memory: one line naming the layer, the size and the free memory, exit 1",
           "exit status %d, message '%s'", WIFEXITED(status) ? WEXITSTATUS(status) : -1, line);
}

/* The fused Adam / AdamW kernel against Darknet's CPU step (adam_update_cpu), a few steps. */
void adam_update_cpu(float *w, float *d, float *m, float *v, float B1, float B2, float eps,
                     float decay, float rate, int n, int batch, int t, int decoupled);

static void test_adam(int decoupled)
{
    int n = 100003, batch = 8, t, i;
    float *w = rand_array(n, 1), *m = calloc(n, 4), *v = calloc(n, 4), *d = calloc(n, 4);
    float *wg = up(w, n), *mg = up(m, n), *vg = up(v, n), *dg = up(d, n);
    char name[120];
    for (t = 1; t <= 5; ++t) {
        for (i = 0; i < n; ++i) d[i] = (float)(batch * rng_signed());
        cuda_push_array(dg, d, n);
        adam_update_cpu(w, d, m, v, .9f, .999f, 1e-7f, .01f, .003f, n, batch, t, decoupled);
        tat_gpu_adam_update(wg, dg, mg, vg, .9f, .999f, 1e-7f, .01f, .003f, n, batch, t, decoupled);
    }
    snprintf(name, sizeof(name), "gpu %s fused kernel (5 steps of %d parameters): weights, moments, cleared gradient",
             decoupled ? "AdamW" : "Adam", n);
    check_err(name, gpu_vs_host(wg, w, n) + gpu_vs_host(mg, m, n) + gpu_vs_host(vg, v, n) +
                        gpu_vs_host(dg, d, n), TOL_GEMM);
    free(w), free(m), free(v), free(d);
    cuda_free(wg), cuda_free(mg), cuda_free(vg), cuda_free(dg);
}

/* ---- --perf: per-kernel time, achieved bandwidth and arithmetic rate ------------------- */
/* Against an H200's peaks (HBM3e 4.8 TB/s, 67 TFLOP/s fp32 without tensor cores). Bytes are
 * the compulsory traffic (each array read or written once), flops the useful ones: a kernel
 * that rereads through the caches may show more than its bytes. Each timing: 3 warm-up runs,
 * then the mean of 20 between two events. */
#define PEAK_BYTES_PER_S 4.8e12
#define PEAK_FLOP_PER_S 67e12

typedef void (*perf_fn)(void *ctx);

static void perf_line(const char *name, perf_fn fn, void *ctx, double bytes, double flops)
{
    cudaEvent_t a, b;
    float ms = 0;
    int i;
    for (i = 0; i < 3; ++i) fn(ctx);
    cudaEventCreate(&a), cudaEventCreate(&b);
    cudaEventRecord(a, 0);
    for (i = 0; i < 20; ++i) fn(ctx);
    cudaEventRecord(b, 0);
    cudaEventSynchronize(b);
    cudaEventElapsedTime(&ms, a, b);
    cudaEventDestroy(a), cudaEventDestroy(b);
    {
        double s = ms / 20 / 1e3, gbs = bytes / s / 1e9, tfs = flops / s / 1e12;
        printf("PERF %-58s %9.3f ms %8.1f GB/s (%5.1f%% of 4.8 TB/s) %7.2f TFLOP/s (%5.1f%% of 67)\n",
               name, s * 1e3, gbs, 100 * bytes / s / PEAK_BYTES_PER_S, tfs,
               100 * flops / s / PEAK_FLOP_PER_S);
    }
}

typedef struct {
    float *a, *b, *c, *d, *e, *f, *g;
    tat_bn_geom bn;
    tat_rowmajor_gemm mm;
    tat_gpu_term *term;
    int n, rows, cols;
} perf_ctx;

static void run_bn_forward(void *p)
{
    perf_ctx *c = p;
    tat_gpu_batchnorm_forward(c->b, c->c, c->d, c->e, c->a, c->f, c->g, c->bn);
}
static void run_bn_backward(void *p)
{
    perf_ctx *c = p;
    tat_gpu_batchnorm_backward(c->b, c->f, c->g, c->a, c->c, c->e, c->f, c->bn, 1);
}
static void run_softmax(void *p)
{
    perf_ctx *c = p;
    tat_gpu_softmax_rows(c->a, c->rows, c->cols);
}
static void run_gemm(void *p)
{
    perf_ctx *c = p;
    tat_gpu_gemm(c->mm, c->a, c->b, c->c);
}
static void run_adam(void *p)
{
    perf_ctx *c = p;
    tat_gpu_adam_update(c->a, c->b, c->c, c->d, .9f, .999f, 1e-7f, 5e-4f, 1e-3f, c->n, 64, 10, 1);
}
static void run_term_forward(void *p)
{
    perf_ctx *c = p;
    tat_gpu_term_forward(c->term, c->a, c->b, c->c, c->d);
    tat_gpu_loss_wait(&c->term->loss);
}
static void run_term_backward(void *p)
{
    perf_ctx *c = p;
    tat_gpu_term_backward(c->term, c->e, c->f, c->g, .5f);
}

static void perf_term(const char *what, int batch, int c, int h, int w, int stream)
{
    tat_term_geom geom;
    tat_gpu_term term;
    perf_ctx x;
    size_t nx = (size_t)batch * c * h * w;
    const char *err = tat_term_geom_patch(&geom, batch, c, h, w, 1, 1, 1); /* the full form */
    char name[160];
    double N, nn, d;
    if (err) {
        printf("PERF %s: geometry rejected: %s\n", what, err);
        return;
    }
    geom.stream_tile = stream ? TAT_STREAM_TILE : 0;
    tat_gpu_term_init(&term, &geom);
    memset(&x, 0, sizeof(x));
    x.term = &term;
    x.a = tat_gpu_alloc_floats(nx), x.b = tat_gpu_alloc_floats(nx), x.c = tat_gpu_alloc_floats(nx);
    x.d = tat_gpu_alloc_floats(nx), x.e = tat_gpu_alloc_floats(nx), x.f = tat_gpu_alloc_floats(nx);
    x.g = tat_gpu_alloc_floats(nx);
    N = geom.N, nn = (double)geom.n_blocks * N * N, d = geom.d;
    /* forward: S (2 d flops a pair) and O (2 d); streaming reads q, k, v once, materialised
       also writes and reads the N x N matrices */
    snprintf(name, sizeof(name), "term forward %s (%s)", what, stream ? "fused streaming" : "materialised");
    perf_line(name, run_term_forward, &x, 4.0 * 5 * nx + (stream ? 0 : 4.0 * 3 * nn), 4 * d * nn);
    snprintf(name, sizeof(name), "term backward %s (%s)", what, stream ? "fused streaming" : "materialised");
    perf_line(name, run_term_backward, &x, 4.0 * 7 * nx + (stream ? 0 : 4.0 * 4 * nn), 8 * d * nn);
    tat_gpu_term_free(&term);
    tat_gpu_free(x.a), tat_gpu_free(x.b), tat_gpu_free(x.c), tat_gpu_free(x.d);
    tat_gpu_free(x.e), tat_gpu_free(x.f), tat_gpu_free(x.g);
}

static int perf_mode(void)
{
    perf_ctx x;
    size_t n;
    printf("PERF device: %d SMs; peaks assumed: 4.8 TB/s, 67 TFLOP/s fp32 (an H200)\n", sm_count());
    memset(&x, 0, sizeof(x));
    /* BatchNorm of a 64 x 128 x 56 x 56 map: read in twice (sum, squared deviations), read
       once more and write out and x_hat; the backward reads d_out and x_hat twice, writes d_in */
    x.bn = (tat_bn_geom){64, 128, 56 * 56, 0};
    n = (size_t)64 * 128 * 56 * 56;
    x.a = tat_gpu_alloc_floats(n), x.b = tat_gpu_alloc_floats(n), x.c = tat_gpu_alloc_floats(n);
    x.d = tat_gpu_alloc_floats(64 * 128), x.e = tat_gpu_alloc_floats(64 * 128);
    x.f = tat_gpu_alloc_floats(128), x.g = tat_gpu_alloc_floats(128);
    perf_line("batchnorm forward 64x128x56x56 (batch statistics)", run_bn_forward, &x, 4.0 * 5 * n, 6.0 * n);
    perf_line("batchnorm backward 64x128x56x56", run_bn_backward, &x, 4.0 * 5 * n, 8.0 * n);
    x.bn.per_image = 1;
    perf_line("batchnorm forward 64x128x56x56 (per image)", run_bn_forward, &x, 4.0 * 5 * n, 6.0 * n);
    tat_gpu_free(x.b), tat_gpu_free(x.c), tat_gpu_free(x.d), tat_gpu_free(x.e), tat_gpu_free(x.f), tat_gpu_free(x.g);
    /* softmax rows (in the BatchNorm input, 25.7M floats): 16384 rows of 1024 (a warp each)
       and 1024 of 16384 (a block each) */
    x.rows = 16384, x.cols = 1024;
    perf_line("softmax rows 16384 x 1024 (a warp per row)", run_softmax, &x, 4.0 * 3 * x.rows * x.cols, 4.0 * x.rows * x.cols);
    x.rows = 1024, x.cols = 16384;
    perf_line("softmax rows 1024 x 16384 (a block per row)", run_softmax, &x, 4.0 * 3 * x.rows * x.cols, 4.0 * x.rows * x.cols);
    tat_gpu_free(x.a);
    /* a GEMM of the attention's shape: 64 blocks of S = Q^T K, d 256, N 1024 */
    x.mm = tat_gemm_scores(64, 1024, 256);
    x.a = tat_gpu_alloc_floats((size_t)64 * 256 * 1024), x.b = tat_gpu_alloc_floats((size_t)64 * 256 * 1024);
    x.c = tat_gpu_alloc_floats((size_t)64 * 1024 * 1024);
    tat_gpu_set_tf32(0);
    perf_line("gemm S = Q^T K, 64 x (1024 x 1024, d 256), fp32", run_gemm, &x,
              4.0 * (2 * 64.0 * 256 * 1024 + 64.0 * 1024 * 1024), 2.0 * 64 * 1024 * 1024 * 256);
    tat_gpu_set_tf32(1);
    perf_line("gemm S = Q^T K, 64 x (1024 x 1024, d 256), TF32 (tf32=1)", run_gemm, &x,
              4.0 * (2 * 64.0 * 256 * 1024 + 64.0 * 1024 * 1024), 2.0 * 64 * 1024 * 1024 * 256);
    tat_gpu_set_tf32(0);
    tat_gpu_free(x.a), tat_gpu_free(x.b), tat_gpu_free(x.c);
    /* Adam on 25M parameters: reads w, d, m, v, writes all four */
    x.n = 25 * 1000 * 1000;
    x.a = tat_gpu_alloc_floats(x.n), x.b = tat_gpu_alloc_floats(x.n), x.c = tat_gpu_alloc_floats(x.n);
    x.d = tat_gpu_alloc_floats(x.n);
    perf_line("adamw fused kernel, 25M parameters", run_adam, &x, 4.0 * 8 * x.n, 14.0 * x.n);
    tat_gpu_free(x.a), tat_gpu_free(x.b), tat_gpu_free(x.c), tat_gpu_free(x.d);
    /* terms: one block of a 32 x 32 map (N 1024), 256 channels, batch 16; and N 4096 */
    perf_term("b16 c256 32x32 (N 1024)", 16, 256, 32, 32, 0);
    perf_term("b16 c256 32x32 (N 1024)", 16, 256, 32, 32, 1);
    perf_term("b4 c128 64x64 (N 4096)", 4, 128, 64, 64, 1);
    return 0;
}

int main(int argc, char **argv)
{
    train_plugin_hooks(&darknet_plugin);
    if (argc > 1 && !strcmp(argv[1], "--oom-child")) {
        tat_gpu_set_alloc_context("student.cfg: [tat_distill] (layer 7)");
        tat_gpu_alloc_floats((size_t)1 << 40); /* 4 TiB */
        return 0;                             /* not reached when the message exits */
    }
    int devices = 0, i, perf;
    cudaError_t st;
    setvbuf(stdout, NULL, _IOLBF, 0);
    default_math = argc > 1 && !strcmp(argv[1], "--default-math");
    perf = argc > 1 && !strcmp(argv[1], "--perf");
    /* fp32 for the comparison: TF32 off in cuBLAS and cuDNN, which read this variable when
       CUDA starts, so it is set (and the program restarted) before any CUDA call */
    if (!default_math && !getenv("NVIDIA_TF32_OVERRIDE")) {
        setenv("NVIDIA_TF32_OVERRIDE", "0", 1);
        execv("/proc/self/exe", argv);
        perror("test_gpu: cannot restart itself with NVIDIA_TF32_OVERRIDE=0");
        return 1;
    }
    if (default_math) unsetenv("NVIDIA_TF32_OVERRIDE");
    /* the plugin's own opt-in TF32 (tf32=1, TAT_TF32=1) stays off: the checks are fp32 */
    unsetenv("TAT_TF32");
    tat_gpu_set_tf32(0);
    st = cudaGetDeviceCount(&devices);
    if (st != cudaSuccess || devices == 0) {
        report_skip("test_gpu", "no usable CUDA device (cudaGetDeviceCount: %s)",
                    st != cudaSuccess ? cudaGetErrorString(st) : "cudaGetDeviceCount found 0");
        return 0;
    }
    cuda_set_device(0);
    if (perf) return perf_mode();
    srand(2024); /* Darknet's and tat_embedding_init's weights */
    rng_seed(2024);
    tat_set_num_threads(2);
    {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof(dir), "%s/tat-gpu-test-XXXXXX", tmp ? tmp : P_tmpdir);
    }
    if (!mkdtemp(dir)) {
        report(0, "test_gpu", "cannot make a temporary directory");
        return test_exit_status();
    }
    if (!default_math) {
        char self[512];
        ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
        self[len > 0 ? len : 0] = 0;
        test_out_of_memory(self);
    }
    test_gemm();
    test_patch_and_pool();
    test_batchnorm(0, 3, 5, 301);
    test_batchnorm(1, 3, 5, 301);
    test_batchnorm(0, 16, 6, 3001);
    test_batchnorm(1, 16, 6, 3001);
    test_adam(0);
    test_adam(1);
    test_softmax(7, 1000);
    test_softmax(301, 16);
    test_softmax(5, TAT_SOFTMAX_WARP_COLS + 301);
    for (i = 0; i < TAT_NUM_CASES; ++i) {
        test_embedding(&tat_cases[i]);
        if (tat_cases[i].grid_h > 0) {
            test_term(&tat_cases[i], 0, 0);
            test_term(&tat_cases[i], 0, 5);
        }
        if (tat_cases[i].anchor_h > 0) {
            test_term(&tat_cases[i], 1, 0);
            test_term(&tat_cases[i], 1, 3);
        }
    }

    gpu_index = 0;
    test_layers("[tat_distill] grid 3,2 groups 3 learned key, bn image + shared [anchor_distill] 3,4", 5,
                "[tat_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=6\nsize=1\nkey=learned\ngrid=3,2\ngroups=3\nbn=image\nloss_weight=2\n\n"
                "[anchor_distill]\nembeddings=-1\nanchors=3,4\nloss_weight=0.5\n\n");
    test_layers("[tat_distill] full 3x3 identity key, bn batch + own [anchor_distill] 4,5 bn image", 5,
                "[tat_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=6\nsize=3\nkey=identity\nbn=batch\n\n"
                "[anchor_distill]\nfrom=-2\nteacher_layer=0\nteacher_channels=6\nkey=learned\nbn=image\nanchors=4,5\n\n");
    test_layers("[tat_distill] + shared [anchor_distill], attention=streaming", 5,
                "[tat_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=6\nsize=3\nkey=learned\ngrid=3,2\ngroups=3\nbn=image\nattention=streaming\nloss_weight=2\n\n"
                "[anchor_distill]\nembeddings=-1\nanchors=3,4\nattention=streaming\nloss_weight=0.5\n\n");
    test_layers("[fitnet_distill] bn batch + [kd_distill] T 4", 6,
                "[fitnet_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=6\nbn=batch\nloss_weight=2\n\n"
                "[kd_distill]\nfrom=-2\nteacher_layer=0\ntemperature=4\nloss_weight=0.5\n\n");
    test_layers("[fitnet_distill] bn image, 5 -> 6 channels", 5,
                "[fitnet_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=6\nbn=image\n\n");
    test_strided_1x1();
    {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    }
    return test_exit_status();
}
