#ifndef TAT_GPU_H
#define TAT_GPU_H
/*
 * The TaT math of tat.h on the GPU (tat_kernels.cu, built with GPU=1 only). Same layouts, same
 * conventions (backward functions accumulate, gradients linear in w), every pointer below a
 * device pointer unless it is a tat.h host struct. Work goes to the current device's cuBLAS
 * handle (Darknet's blas_handle()) and to that handle's stream: kernels, copies and events
 * alike. Nothing waits in a forward: a loss is
 * summed on the device and copied to pinned host memory asynchronously (tat_gpu_loss); the
 * layers read it once their backward has been queued (tat_gpu_loss_wait).
 *
 * The per-element bodies of the kernels and the cuBLAS argument mapping are in
 * tat_kernel_index.h, shared with a CPU test.
 */
#include <stddef.h>

#include "tat.h"
#include "tat_kernel_index.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- allocation ------------------------------------------------------------------------- */
/* Prefix of the one-line message an out-of-memory allocation prints before exiting 1
 * ("<cfg>: [section] (layer N)"); set before the allocations of a layer. */
void tat_gpu_set_alloc_context(const char *context);
/* Zeroed device arrays; out of memory is that one line (context, size, free memory), exit 1. */
float *tat_gpu_alloc_floats(size_t n);
double *tat_gpu_alloc_doubles(size_t n);
void tat_gpu_free(void *p);

/* A loss on its way to the host: device_sum (device), host_sum (pinned host), ready (a CUDA
 * event recorded after the copy), partials (device, TAT_SUM_BLOCKS: the blocks' partial sums
 * of a long sum). */
typedef struct {
    double *device_sum, *host_sum, *partials;
    void *ready;
} tat_gpu_loss;
void tat_gpu_loss_init(tat_gpu_loss *l);
void tat_gpu_loss_free(tat_gpu_loss *l);
/* Waits for the copy the last forward started; returns the summed loss. */
double tat_gpu_loss_wait(tat_gpu_loss *l);

/* TF32 for the plugin's GEMMs: off unless tat_gpu_set_tf32(1) (tf32=1 in a distillation
 * section) or TAT_TF32=1 in the environment. Process-wide; Darknet's own layers unaffected. */
void tat_gpu_set_tf32(int on);
int tat_gpu_tf32(void);

/* ---- building blocks (also used one by one by the GPU test) ---------------------------- */
/* cublasSgemmStridedBatched with the arguments tat_gemm_map(g) gives; with TF32 on
 * (tat_gpu_tf32) the same product as cublasGemmStridedBatchedEx in CUBLAS_COMPUTE_32F_FAST_TF32. */
void tat_gpu_gemm(tat_rowmajor_gemm g, const float *A, const float *B, float *C);
void tat_gpu_patch_gather(float *blocks, const float *x, tat_patch_geom g);
void tat_gpu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g);
void tat_gpu_avgpool_forward(float *out, const float *in, tat_pool_geom g);
void tat_gpu_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g);
void tat_gpu_im2col(float *col, const float *in, tat_conv_geom g);
void tat_gpu_col2im_add(float *d_in, const float *col, tat_conv_geom g);
/* As tat_batchnorm_forward / tat_batchnorm_backward (in may alias x_hat; the backward
 * ASSIGNS d_in when assign is 1, else accumulates, and always accumulates d_gamma, d_beta). */
void tat_gpu_batchnorm_forward(float *out, float *x_hat, float *mean, float *inv_std,
                               const float *in, const float *gamma, const float *beta,
                               tat_bn_geom g);
void tat_gpu_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                                const float *x_hat, const float *inv_std, const float *gamma,
                                tat_bn_geom g, int assign);
/* In place, rows x cols, max subtracted, fp32. */
void tat_gpu_softmax_rows(float *s, int rows, int cols);
/* Darknet's adam_update_cpu rule (Adam, or AdamW when decoupled) on n device parameters, as
 * one kernel (tat_adam_element); the signature of distill_blas's adam. */
void tat_gpu_adam_update(float *w, float *d, float *m, float *v, float B1, float B2, float eps,
                         float decay, float rate, int n, int batch, int t, int decoupled);

/* ---- an embedding: conv (no bias) + training-mode BatchNorm ----------------------------- */
/* The host struct, its arrays on the device. */
typedef tat_embedding tat_gpu_embedding;

/* Device copies of host embedding e's parameters (its gradients start at zero), activations
 * for batch x h x w maps, and zeroed Adam moments when e has moments. */
void tat_gpu_embedding_init(tat_gpu_embedding *g, const tat_embedding *e, int batch, int h, int w);
void tat_gpu_embedding_free(tat_gpu_embedding *g);
/* n embeddings of one input (same in_c, out_c, ksize) as one stack: weights, weight_grads,
 * x_hat and out contiguous, so their convs run as one product (tat_gpu_steps.h). The free
 * releases everything the init allocated, the moments included. */
void tat_gpu_embeddings_init(tat_gpu_embedding **g, const tat_embedding *const *e, int n,
                             int batch, int h, int w);
void tat_gpu_embeddings_free(tat_gpu_embedding **g, int n);
/* Parameters only (biases, scales, weights), device <-> host. */
void tat_gpu_embedding_push(tat_gpu_embedding *g, const tat_embedding *e);
void tat_gpu_embedding_pull(const tat_gpu_embedding *g, tat_embedding *e);
/* Workspace floats of the convs for the whole batch: the batch-wide im2col (the backward
 * needs it for 1x1 too; a 1x1 forward alone may get NULL). */
size_t tat_gpu_conv_workspace_floats(int batch, int in_c, int h, int w, int ksize);
void tat_gpu_embedding_forward(tat_gpu_embedding *g, const float *in, float *workspace, int batch,
                               int h, int w, int per_image);
void tat_gpu_embedding_backward(tat_gpu_embedding *g, float *d_in, const float *in,
                                float *workspace, int batch, int h, int w, int per_image);
/* A stack from tat_gpu_embeddings_init; the backward adds every embedding's input gradient. */
void tat_gpu_embeddings_forward(tat_gpu_embedding **g, int n, const float *in, float *workspace,
                                int batch, int h, int w, int per_image);
void tat_gpu_embeddings_backward(tat_gpu_embedding **g, int n, float *d_in, const float *in,
                                 float *workspace, int batch, int h, int w, int per_image);

/* ---- a distillation term --------------------------------------------------------------- */
typedef struct {
    tat_term_geom geom;
    const float *Q, *K, *V;    /* blocks of the last forward (the maps when geom.direct)     */
    float *blocks;             /* not direct: q, k, v, t, then dq, dk, dv blocks             */
    float *attn, *ds;          /* n_blocks x N x N (streaming: unused, one float)             */
    float *lse;                /* streaming: n_blocks x N row log-sum-exp                     */
    float *resid, *drow;       /* n_blocks x d x N (O - T), n_blocks x N ((O - T)_i . O_i)    */
    double *sse_pos;           /* n_blocks x N                                                */
    tat_gpu_loss loss;         /* the sum of squared errors of the last forward              */
} tat_gpu_term;

/* Allocates everything once, for a geometry that tat_term_geom_* accepted (streaming when
 * geom->stream_tile > 0, as tat.c: memory linear in N). */
void tat_gpu_term_init(tat_gpu_term *g, const tat_term_geom *geom);
/* The term's stream_tile on the current device (training and the benchmark both ask here): a
 * quarter of the device's free memory is the budget for its two attention buffers (softmax and
 * dS per block); materialised when they fit and !streaming, else tiles of
 * TAT_GPU_STREAM_TILE or more (tat_term_stream_tile_for_budget). */
int tat_gpu_term_stream_tile(const tat_term_geom *geom, int streaming);
void tat_gpu_term_free(tat_gpu_term *g);
/* As tat_term_forward / tat_term_backward, on device maps. The sum of squared errors is
 * tat_gpu_loss_wait(&g->loss) (the only device-to-host copy of a step). */
void tat_gpu_term_forward(tat_gpu_term *g, const float *q, const float *k, const float *v,
                            const float *target);
void tat_gpu_term_backward(tat_gpu_term *g, float *d_q, float *d_k, float *d_v, float w);

/* ---- the baselines (state of kd_distill_layer.c / fitnet_distill_layer.c) ------------------ */
/* FitNet: projection (1x1 embedding) - teacher; w weights each squared error. */
void tat_gpu_fitnet_forward(tat_gpu_embedding *p, const float *student, const float *teacher,
                            float *diff, double *partials, tat_gpu_loss *loss, int batch, int h,
                            int w, int per_image);
void tat_gpu_fitnet_backward(tat_gpu_embedding *p, float *d_student, const float *student,
                             const float *diff, float *workspace, float w, int batch, int h,
                             int w_map, int per_image);
/* KD: loss = sum over rows of KL(softmax(t/T) || softmax(s/T)); d_s += w T (p_s - p_t). */
void tat_gpu_kd_forward(float *p_s, float *p_t, double *kl_rows, tat_gpu_loss *loss,
                        const float *s, const float *t, int batch, int n, float temperature);
void tat_gpu_kd_backward(float *d_s, const float *p_s, const float *p_t, int batch, int n,
                         float temperature, float w);

#ifdef __cplusplus
}
#endif
#endif
