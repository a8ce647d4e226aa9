/* GPU benchmark of the distillation layers' math (tat_layer/tat_kernels.cu) at the paper's
 * settings, composed as tat_distill_layer.c's GPU path runs it: query, value (and learned key)
 * embeddings, the patch-group term and the anchor term on the shared embeddings, both term
 * backwards (anchor first, as the later layer), then the embedding backwards (the query's and
 * value's into the student's delta). Timed with CUDA events after one warm-up step.
 *
 * Output: the device's peaks, then per setting one line for the whole step and one per phase
 * (the embeddings: convolutions as GEMMs + BatchNorm; the attention terms: gathers, GEMMs,
 * softmax, residual), each with its achieved FP32 rate against the device's FP32 peak, and for
 * the terms the N x N attention-matrix traffic against the memory bandwidth peak:
 *   gpu <setting> batch <B> <ms/image> ms/image  (<ms/step> ms/step, <GFLOP/image> attention GFLOP/image)
 *   gpu <setting>   <phase> <ms/step> ms/step  <GFLOP/s> GFLOP/s (<%> of FP32 peak)[  <GB/s> GB/s (<%> of bandwidth)]
 * FLOPs count the products' multiply-adds (backward = 2x forward; the streaming backward's
 * recomputed scores and a learned key's gradient included); the matrix traffic counts each
 * pass over the N x N matrices (forward: S written, softmax read + written, mix read; backward:
 * A read twice, dP written, dS read + written, read twice), a lower bound on the bytes moved.
 * usage: bench_gpu [-r reps] [-s setting-name]. Without a CUDA device: one SKIP line, exit 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "tat.h"
#include "tat_gpu.h"

typedef struct {
    const char *name;
    int batch, c, h, w, ksize, key_learned, per_image;
    int grid, groups; /* patch-group term (grid 1, groups 1: one-to-all) */
    int anchors;      /* anchor term (0: none) */
} setting;

/* The segmentation settings of the method notes' table, at the paper's 129x129x256 decoder
 * feature and batch 8; ImageNet: 7x7x512, batch 256, 3x3 embeddings, identity key. */
static const setting settings[] = {
    {"voc-r18", 8, 256, 129, 129, 1, 1, 1, 16, 64, 32},
    {"voc-mnv2", 8, 256, 129, 129, 1, 1, 1, 32, 1024, 64},
    {"coco-r18", 8, 256, 129, 129, 1, 1, 1, 32, 512, 32},
    {"coco-mnv2", 8, 256, 129, 129, 1, 1, 1, 16, 64, 32},
    {"imagenet", 256, 512, 7, 7, 3, 0, 0, 1, 1, 0},
};

static double peak_flops, peak_bytes; /* FP32 FLOP/s and memory bytes/s of device 0 */

/* FP32 lanes per SM by compute capability (the CUDA programming guide's table). */
static int fp32_per_sm(int major, int minor)
{
    if (major == 7) return 64;
    if (major == 8) return minor == 0 ? 64 : 128;
    return 128; /* 9.x (Hopper), 10.x and 12.x (Blackwell) */
}

static void device_peaks(void)
{
    struct cudaDeviceProp p;
    int sms = 0, clock_khz = 0, mem_khz = 0, bus_bits = 0;
    cudaGetDeviceProperties(&p, 0);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, 0);
    cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, 0);
    cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0);
    peak_flops = 2.0 * sms * fp32_per_sm(p.major, p.minor) * clock_khz * 1e3;
    peak_bytes = 2.0 * mem_khz * 1e3 * bus_bits / 8; /* double data rate */
    printf("gpu device %s (sm_%d%d, %d SMs): FP32 peak %.1f TFLOP/s, memory bandwidth peak %.0f GB/s\n",
           p.name, p.major, p.minor, sms, peak_flops / 1e12, peak_bytes / 1e9);
}

static void print_phase(const char *setting_name, const char *phase, float ms, double flops,
                        double bytes)
{
    double sec = ms / 1e3;
    printf("gpu %-10s   %-10s %9.3f ms/step  %8.1f GFLOP/s (%4.1f%% of FP32 peak)", setting_name,
           phase, ms, flops / sec / 1e9, peak_flops > 0 ? 100 * flops / sec / peak_flops : 0);
    if (bytes > 0)
        printf("  %7.1f GB/s (%4.1f%% of bandwidth)", bytes / sec / 1e9,
               peak_bytes > 0 ? 100 * bytes / sec / peak_bytes : 0);
    printf("\n");
}

static float *random_device_array(size_t n)
{
    float *x = malloc(n * sizeof(float)), *g;
    size_t i;
    for (i = 0; i < n; ++i) x[i] = 2.f * rand() / (float)RAND_MAX - 1.f;
    g = cuda_make_array(x, n);
    free(x);
    return g;
}

/* A GPU term of a setting's patch groups (anchors 0) or anchors. */
static void gpu_term(tat_gpu_term *g, const setting *s, int anchors)
{
    tat_term_geom geom;
    const char *err = anchors ? tat_term_geom_anchor(&geom, s->batch, s->c, s->h, s->w, anchors, anchors)
                              : tat_term_geom_patch(&geom, s->batch, s->c, s->h, s->w, s->grid, s->grid, s->groups);
    if (err) {
        fprintf(stderr, "bench: %s\n", err);
        exit(1);
    }
    /* the attention form training would take on this device */
    geom.stream_tile = tat_gpu_term_stream_tile(&geom, 0);
    tat_gpu_term_init(g, &geom);
}

static void run(const setting *s, int reps)
{
    tat_embedding hq, hv, hk;
    tat_gpu_embedding q, v, k;
    tat_gpu_term patch, anchor;
    size_t n = (size_t)s->batch * s->c * s->h * s->w;
    size_t nws = tat_gpu_conv_workspace_floats(s->batch, s->c, s->h, s->w, s->ksize);
    float *student = random_device_array(n), *teacher = random_device_array(n);
    float *d_student = cuda_make_array(0, n), *ws = cuda_make_array(0, nws ? nws : 1);
    float w_patch = -1.f, w_anchor = -0.5f, ms = 0, ms_emb = 0, ms_terms = 0;
    double flops;
    cudaEvent_t start, mid1, mid2, stop;
    int r;
    tat_rng rng = tat_rng_from_rand();
    tat_embedding_init(&hq, s->c, s->c, s->ksize, &rng);
    tat_embedding_init(&hv, s->c, s->c, s->ksize, &rng);
    tat_gpu_embedding *qv[2] = {&q, &v};
    const tat_embedding *host_qv[2] = {&hq, &hv};
    tat_gpu_embeddings_init(qv, host_qv, 2, s->batch, s->h, s->w);
    if (s->key_learned) {
        tat_embedding_init(&hk, s->c, s->c, 1, &rng);
        tat_gpu_embedding_init(&k, &hk, s->batch, s->h, s->w);
    }
    gpu_term(&patch, s, 0);
    if (s->anchors) gpu_term(&anchor, s, s->anchors);
    flops = tat_term_flops_per_image(&patch.geom) + (s->anchors ? tat_term_flops_per_image(&anchor.geom) : 0);
    cudaEventCreate(&start);
    cudaEventCreate(&mid1);
    cudaEventCreate(&mid2);
    cudaEventCreate(&stop);
    for (r = -1; r < reps; ++r) {
        const float *key;
        float a, b, c;
        /* r = -1 is the warm-up; each phase between two events */
        cudaEventRecord(start, 0);
        tat_gpu_embeddings_forward(qv, 2, student, ws, s->batch, s->h, s->w, s->per_image);
        if (s->key_learned) tat_gpu_embedding_forward(&k, teacher, ws, s->batch, s->h, s->w, s->per_image);
        cudaEventRecord(mid1, 0);
        key = s->key_learned ? k.out : teacher;
        tat_gpu_term_forward(&patch, q.out, key, v.out, teacher);
        if (s->anchors) {
            tat_gpu_term_forward(&anchor, q.out, key, v.out, teacher);
            tat_gpu_term_backward(&anchor, q.out_grad, s->key_learned ? k.out_grad : NULL, v.out_grad, w_anchor);
        }
        tat_gpu_term_backward(&patch, q.out_grad, s->key_learned ? k.out_grad : NULL, v.out_grad, w_patch);
        cudaEventRecord(mid2, 0);
        tat_gpu_embeddings_backward(qv, 2, d_student, student, ws, s->batch, s->h, s->w, s->per_image);
        if (s->key_learned) tat_gpu_embedding_backward(&k, NULL, teacher, ws, s->batch, s->h, s->w, s->per_image);
        cudaEventRecord(stop, 0);
        cudaEventSynchronize(stop);
        if (r < 0) continue;
        cudaEventElapsedTime(&a, start, mid1);
        cudaEventElapsedTime(&b, mid1, mid2);
        cudaEventElapsedTime(&c, mid2, stop);
        ms_emb += a + c;
        ms_terms += b;
    }
    ms = ms_emb + ms_terms;
    printf("gpu %-10s batch %3d %9.3f ms/image  (%8.2f ms/step, %.2f attention GFLOP/image, attention %s, tile %d)\n",
           s->name, s->batch, ms / reps / s->batch, ms / reps, flops / 1e9,
           patch.geom.stream_tile ? "streaming" : "materialized", patch.geom.stream_tile);
    {
        double hw = (double)s->h * s->w, kk = (double)s->c * s->ksize * s->ksize;
        /* forward conv FLOPs per image: query + value (+ key, 1x1); backward twice that, minus
           the key's input gradient */
        double emb = 2 * 2.0 * s->c * kk * hw * 3 + (s->key_learned ? 2.0 * s->c * s->c * hw * 2 : 0);
        /* forward S and O; backward dV, dP, dQ (+ dK), and the streaming recomputation of S */
        double terms = 0, bytes = 0;
        tat_gpu_term *t[2] = {&patch, &anchor};
        int j;
        for (j = 0; j < (s->anchors ? 2 : 1); ++j) {
            double f = tat_term_flops_per_image(&t[j]->geom), nn = (double)t[j]->geom.n_blocks * t[j]->geom.N * t[j]->geom.N;
            terms += f * (1 + (s->key_learned ? 2.0 : 1.5) + (t[j]->geom.stream_tile ? 0.5 : 0));
            bytes += nn * sizeof(float) * (4 + 7);
        }
        print_phase(s->name, "embeddings", ms_emb / reps, emb * s->batch, 0);
        print_phase(s->name, "terms", ms_terms / reps, terms * s->batch, bytes);
    }
    cudaEventDestroy(start);
    cudaEventDestroy(mid1);
    cudaEventDestroy(mid2);
    cudaEventDestroy(stop);
    tat_gpu_term_free(&patch);
    if (s->anchors) tat_gpu_term_free(&anchor);
    tat_gpu_embeddings_free(qv, 2);
    tat_embedding_free(&hq);
    tat_embedding_free(&hv);
    if (s->key_learned) {
        tat_gpu_embedding_free(&k);
        tat_embedding_free(&hk);
    }
    cuda_free(student), cuda_free(teacher), cuda_free(d_student), cuda_free(ws);
}

int main(int argc, char **argv)
{
    int reps = 10, i, devices = 0;
    const char *only = NULL;
    cudaError_t st = cudaGetDeviceCount(&devices);
    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s")) only = argv[i + 1];
    }
    if (st != cudaSuccess || devices == 0) {
        printf("SKIP bench_gpu: no usable CUDA device (cudaGetDeviceCount: %s)\n",
               st != cudaSuccess ? cudaGetErrorString(st) : "cudaGetDeviceCount found 0");
        return 0;
    }
    if (reps < 1) reps = 1;
    cuda_set_device(0);
    /* the host-side term set-up only computes geometry: keep its scratch to one thread */
    tat_set_num_threads(1);
    srand(1);
    device_peaks();
    for (i = 0; i < (int)(sizeof(settings) / sizeof(settings[0])); ++i)
        if (!only || !strcmp(only, settings[i].name)) run(&settings[i], reps);
    return 0;
}
