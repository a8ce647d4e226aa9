/* Benchmark of the TaT math library (tat_layer/core/tat.c) at the paper's settings.
 *
 * Composes one forward+backward exactly as tat_layer/layers/tat_distill_layer.c does: query, value (and
 * learned key) embeddings, the patch-group term and the anchor term on the shared embeddings,
 * both term backwards (the anchor layer comes later in the cfg, so its backward runs first),
 * then the embedding backwards. Also measures the machine's sgemm peaks (OpenBLAS's, and
 * oneDNN's in a oneDNN build, where the largest products run on it as in the layers), so the
 * table can state the achieved fraction of the faster one.
 *
 * Output: one line per measurement, whitespace separated, read by bench/run.sh:
 *   blas <the start-up line of tat_layer/core/blas_core.h>
 *   peak <threads> <GFLOP/s>            (OpenBLAS)
 *   peak-onednn <threads> <GFLOP/s>     (oneDNN builds)
 *   tat <setting> <batch> <threads> <ms/image> <GFLOP/image> <GFLOP/s> <ms emb> <ms attn>
 *   mem <setting> <peak RSS MiB> <MiB the terms added to it>
 * usage: bench_tat [-t threads] [-r reps] [-s setting-name] [-n] [-b]
 * The settings marked `alone` (the full one-to-all form at segmentation size) run only when
 * named with -s, one per process, so that each peak RSS is its own.
 */
#include "blas_core.h"
#include "tat.h"

#include <cblas.h>
#ifdef TAT_ONEDNN
#include <dnnl.h>
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct {
    const char *name;
    int batch, c, h, w, ksize, key_learned, per_image;
    int grid, groups;   /* patch-group term */
    int anchors;        /* anchor term (0: none) */
    float beta, gamma;  /* term weights */
    int streaming;      /* the terms' attention streamed (1) or materialised (0) */
    int alone;          /* run only when named (-s) */
} setting;

/* The segmentation maps are 129x129x256 (batch 8 in the paper; timed at batch 2 to fit the
 * time budget: the work per image does not depend on the batch with per-image BatchNorm). */
static const setting settings[] = {
    {"voc-r18", 2, 256, 129, 129, 1, 1, 1, 16, 64, 32, 1.0f, 0.4f},
    {"voc-mnv2", 2, 256, 129, 129, 1, 1, 1, 32, 1024, 64, 1.0f, 0.5f},
    {"coco-r18", 2, 256, 129, 129, 1, 1, 1, 32, 512, 32, 1.0f, 1.0f},
    {"coco-mnv2", 2, 256, 129, 129, 1, 1, 1, 16, 64, 32, 1.0f, 1.0f},
    /* ImageNet: batch 256 in the paper; 32 here, batch BatchNorm, one-to-all, identity key */
    {"imagenet", 32, 512, 7, 7, 3, 0, 0, 1, 1, 0, 1.0f, 0},
    /* the full one-to-all form at segmentation size (N = 16641 positions per image), which the
     * paper approximated with patch groups and anchors: streamed, and materialised for its
     * memory (2 x 1.1 GB of attention kept, 1.1 GB per thread in the backward) */
    {"full-streaming", 2, 256, 129, 129, 1, 1, 1, 1, 1, 0, 1.0f, 0, 1, 1},
    {"full-materialized", 2, 256, 129, 129, 1, 1, 1, 1, 1, 0, 1.0f, 0, 0, 1},
};

/* Peak resident memory of this process so far, MiB. */
static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static float *frand(size_t n)
{
    float *p = malloc(n * sizeof(float));
    size_t i;
    if (!p) { fprintf(stderr, "bench_tat: out of memory\n"); exit(1); }
    for (i = 0; i < n; ++i) p[i] = 2.f * rand() / (float)RAND_MAX - 1.f;
    return p;
}

/* The sgemm peaks at 1 and at `threads` threads (GFLOP/s, 2048^3) of OpenBLAS (onednn = 0) or
 * oneDNN (1): the best of PEAK_ROUNDS runs each, the two thread counts alternating, so that a
 * burst of load on a shared machine lowers one run, not one thread count's figure; the first
 * round warms up the threads and the caches and is not counted. */
#define PEAK_ROUNDS 6
static void sgemm_peaks(int onednn, int threads, double *one, double *many)
{
    const int n = 2048;
    float *a = frand((size_t)n * n), *b = frand((size_t)n * n), *c = frand((size_t)n * n);
    double best[2] = {1e30, 1e30};
    for (int r = 0; r < PEAK_ROUNDS; ++r)
        for (int k = 0; k < 2; ++k) {
            double t0;
            if (onednn) {
#ifdef TAT_ONEDNN
                omp_set_num_threads(k ? threads : 1);
                t0 = now();
                dnnl_sgemm('N', 'N', n, n, n, 1, a, n, b, n, 0, c, n);
#endif
            } else {
                openblas_set_num_threads(k ? threads : 1);
                t0 = now();
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
            }
            double dt = now() - t0;
            if (r && dt < best[k]) best[k] = dt;
        }
    openblas_set_num_threads(threads);
#ifdef TAT_ONEDNN
    omp_set_num_threads(threads);
#endif
    free(a), free(b), free(c);
    *one = 2.0 * n * n * n / best[0] * 1e-9;
    *many = 2.0 * n * n * n / best[1] * 1e-9;
}

/* GEMM FLOPs per image of one forward+backward, as the layers compose it. */
static double flops_per_image(const setting *s, const tat_term *patch, const tat_term *anchor)
{
    double hw = (double)s->h * s->w, conv = 2.0 * s->c * s->c * s->ksize * s->ksize * hw;
    /* q, v: forward, d_weight, d_input; key: forward, d_weight (the teacher gets no gradient) */
    double f = 2 * 3 * conv + (s->key_learned ? 2 * conv : 0);
    const tat_term *terms[2] = {patch, anchor};
    int i;
    for (i = 0; i < 2; ++i) {
        const tat_term_geom *t;
        if (!terms[i]) continue;
        t = &terms[i]->geom;
        double blk = (double)t->N * t->N * t->d * (t->n_blocks / t->batch);
        /* forward S and O; backward dV, dP, dQ (and dK), streaming: S recomputed too */
        f += 4 * blk + 2 * blk * (3 + (s->key_learned ? 1 : 0) + (t->stream_tile ? 1 : 0));
    }
    return f;
}

static void run_setting(const setting *s, int threads, int reps)
{
    int B = s->batch, hw = s->h * s->w;
    size_t n = (size_t)B * s->c * hw;
    tat_embedding q, v, k;
    tat_term patch, anchor;
    tat_term_geom geom, anchor_geom;
    float *student = frand(n), *teacher = frand(n), *d_student = calloc(n, sizeof(float));
    float *ws = calloc(tat_conv_workspace_floats(B, s->c, s->c, s->h, s->w, s->ksize) + 1, sizeof(float));
    double best = 1e30, best_emb = 0, best_att = 0;
    int r;

    srand(1);
    tat_rng rng = tat_rng_from_rand();
    tat_embedding_init(&q, s->c, s->c, s->ksize, &rng);
    tat_embedding_init(&v, s->c, s->c, s->ksize, &rng);
    tat_embedding_alloc_activations(&q, B, s->h, s->w);
    tat_embedding_alloc_activations(&v, B, s->h, s->w);
    if (s->key_learned) {
        tat_embedding_init(&k, s->c, s->c, 1, &rng);
        tat_embedding_alloc_activations(&k, B, s->h, s->w);
    }
    if (tat_term_geom_patch(&geom, B, s->c, s->h, s->w, s->grid, s->grid, s->groups) ||
        (s->anchors && tat_term_geom_anchor(&anchor_geom, B, s->c, s->h, s->w, s->anchors, s->anchors))) {
        fprintf(stderr, "bench: the setting's geometry does not fit its map\n");
        exit(1);
    }
    /* the embeddings' buffers touched once, so that what the terms add to the peak shows */
    tat_embedding_forward(&q, student, ws, B, s->h, s->w, s->per_image);
    tat_embedding_forward(&v, student, ws, B, s->h, s->w, s->per_image);
    if (s->key_learned) tat_embedding_forward(&k, teacher, ws, B, s->h, s->w, s->per_image);
    tat_embedding_backward(&q, d_student, student, ws, B, s->h, s->w, s->per_image);
    tat_embedding_backward(&v, d_student, student, ws, B, s->h, s->w, s->per_image);
    if (s->key_learned) tat_embedding_backward(&k, NULL, teacher, ws, B, s->h, s->w, s->per_image);
    double rss_before_terms = peak_rss_mib();
    geom.stream_tile = anchor_geom.stream_tile = s->streaming ? TAT_STREAM_TILE : 0;
    tat_term_init(&patch, &geom);
    if (s->anchors) tat_term_init(&anchor, &anchor_geom);

    for (r = 0; r < reps + 1; ++r) {   /* rep 0 warms up (page faults, thread start) */
        const float *kmap;
        double t0 = now(), t1, t2, t3, t4;
        tat_embedding_forward(&q, student, ws, B, s->h, s->w, s->per_image);
        tat_embedding_forward(&v, student, ws, B, s->h, s->w, s->per_image);
        if (s->key_learned) tat_embedding_forward(&k, teacher, ws, B, s->h, s->w, s->per_image);
        kmap = s->key_learned ? k.out : teacher;
        t1 = now();
        tat_term_forward(&patch, q.out, kmap, v.out, teacher);
        if (s->anchors) tat_term_forward(&anchor, q.out, kmap, v.out, teacher);
        if (s->anchors)
            tat_term_backward(&anchor, q.out_grad, s->key_learned ? k.out_grad : NULL, v.out_grad,
                              -s->gamma / (float)tat_term_elements_per_image(&anchor.geom));
        tat_term_backward(&patch, q.out_grad, s->key_learned ? k.out_grad : NULL, v.out_grad,
                          -s->beta / (float)tat_term_elements_per_image(&patch.geom));
        t2 = now();
        tat_embedding_backward(&q, d_student, student, ws, B, s->h, s->w, s->per_image);
        tat_embedding_backward(&v, d_student, student, ws, B, s->h, s->w, s->per_image);
        if (s->key_learned) tat_embedding_backward(&k, NULL, teacher, ws, B, s->h, s->w, s->per_image);
        t3 = now();
        t4 = t3 - t0;
        if (r && t4 < best) best = t4, best_emb = (t1 - t0) + (t3 - t2), best_att = t2 - t1;
    }
    double f = flops_per_image(s, &patch, s->anchors ? &anchor : NULL);
    printf("tat %s %d %d %.2f %.3f %.1f %.2f %.2f\n", s->name, B, threads, 1e3 * best / B, f * 1e-9,
           f * B / best * 1e-9, 1e3 * best_emb / B, 1e3 * best_att / B);
    printf("mem %s %.0f %.0f\n", s->name, peak_rss_mib(), peak_rss_mib() - rss_before_terms);
    fflush(stdout);

    tat_term_free(&patch);
    if (s->anchors) tat_term_free(&anchor);
    tat_embedding_free(&q);
    tat_embedding_free(&v);
    if (s->key_learned) tat_embedding_free(&k);
    free(student), free(teacher), free(d_student), free(ws);
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 3, i, peak = 1, blas_only = 0;
    const char *only = NULL;
    char line[512];
    tat_blas_select(argv);
    for (i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-n")) peak = 0;
        else if (!strcmp(argv[i], "-b")) blas_only = 1;
        else {
            fprintf(stderr, "usage: %s [-t threads] [-r reps] [-s setting] [-n: no peak] [-b: the BLAS line only]\n", argv[0]);
            return 2;
        }
    }
    if (!only) {
        tat_blas_describe(line, sizeof(line));
        printf("blas %s\n", line);
        fflush(stdout);
    }
    if (blas_only) return 0;
    if (peak) {
        double one, many;
        sgemm_peaks(0, threads, &one, &many);
        printf("peak 1 %.1f\n", one);
        printf("peak %d %.1f\n", threads, many);
#ifdef TAT_ONEDNN
        sgemm_peaks(1, threads, &one, &many);
        printf("peak-onednn 1 %.1f\n", one);
        printf("peak-onednn %d %.1f\n", threads, many);
#endif
        fflush(stdout);
    }
    openblas_set_num_threads(threads);
    tat_set_num_threads(threads);
    for (i = 0; i < (int)(sizeof(settings) / sizeof(settings[0])); ++i)
        if (only ? !strcmp(only, settings[i].name) : !settings[i].alone)
            run_setting(&settings[i], threads, reps);
    return 0;
}
