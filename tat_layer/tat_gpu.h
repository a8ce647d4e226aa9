#ifndef TAT_GPU_H
#define TAT_GPU_H
/*
 * The TaT math of tat.h on the GPU (tat_kernels.cu, built with GPU=1 only). Same layouts, same
 * conventions (backward functions accumulate, gradients linear in w), every pointer below a
 * device pointer unless it is a tat.h host struct. Work goes to the current device's default
 * stream and cuBLAS handle (Darknet's blas_handle()); only tat_gpu_term_forward waits, to
 * return the loss.
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

/* ---- building blocks (also used one by one by the GPU test) ---------------------------- */
/* cublasSgemmStridedBatched with the arguments tat_gemm_map(g) gives. */
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

/* ---- an embedding: conv (no bias) + training-mode BatchNorm ----------------------------- */
/* The host struct, its arrays on the device. */
typedef tat_embedding tat_gpu_embedding;

/* Prefix of the one-line message an out-of-memory allocation prints before exiting 1
 * ("<cfg>: [section] (layer N)"); set before the allocations of a layer. */
void tat_gpu_set_alloc_context(const char *context);
/* Device copies of host embedding e's parameters (its gradients start at zero) and
 * activations for batch x h x w maps. */
void tat_gpu_embedding_init(tat_gpu_embedding *g, const tat_embedding *e, int batch, int h, int w);
void tat_gpu_embedding_free(tat_gpu_embedding *g);
/* Parameters only (biases, scales, weights), device <-> host. */
void tat_gpu_embedding_push(tat_gpu_embedding *g, const tat_embedding *e);
void tat_gpu_embedding_pull(const tat_gpu_embedding *g, tat_embedding *e);
/* Workspace floats of the conv for the whole batch (im2col; 0 for 1x1). */
size_t tat_gpu_conv_workspace_floats(int batch, int in_c, int h, int w, int ksize);
void tat_gpu_embedding_forward(tat_gpu_embedding *g, const float *in, float *workspace, int batch,
                               int h, int w, int per_image);
void tat_gpu_embedding_backward(tat_gpu_embedding *g, float *d_in, const float *in,
                                float *workspace, int batch, int h, int w, int per_image);

/* ---- a distillation term --------------------------------------------------------------- */
typedef struct {
    tat_term_geom geom;
    const float *Q, *K, *V;    /* blocks of the last forward (the maps when geom.direct)     */
    float *blocks;             /* not direct: q, k, v, t, then dq, dk, dv blocks             */
    float *attn, *ds;          /* n_blocks x N x N                                            */
    float *resid, *drow;       /* n_blocks x d x N (O - T), n_blocks x N ((O - T)_i . O_i)    */
    double *sse_pos, *sse_sum; /* n_blocks x N, 1                                             */
} tat_gpu_term;

/* Allocates everything once, for a geometry that tat_term_geom_* accepted. */
void tat_gpu_term_init(tat_gpu_term *g, const tat_term_geom *geom);
void tat_gpu_term_free(tat_gpu_term *g);
/* As tat_term_forward / tat_term_backward, on device maps. Returns the sum of squared errors
 * (the only device-to-host copy of a step). */
double tat_gpu_term_forward(tat_gpu_term *g, const float *q, const float *k, const float *v,
                            const float *target);
void tat_gpu_term_backward(tat_gpu_term *g, float *d_q, float *d_k, float *d_v, float w);

#ifdef __cplusplus
}
#endif
#endif
