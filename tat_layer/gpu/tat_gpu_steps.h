#ifndef TAT_GPU_STEPS_H
#define TAT_GPU_STEPS_H
/*
 * The sequence of operations of the GPU embedding and term (which primitive runs on which
 * buffer, in which order, with which GEMM), written once over a table of primitives.
 * tat_kernels.cu passes its kernel launchers and cuBLAS; tests/test_kernel_emulation.c passes
 * host loops over the same per-element functions and a reference sgemm, so the CPU test runs
 * this very code, not a copy of it. Buffers are those of tat_gpu_embedding / tat_gpu_term.
 */
#include <stddef.h>

#include "tat_gpu.h"

typedef struct {
    void (*gemm)(tat_rowmajor_gemm g, const float *A, const float *B, float *C);
    void (*patch_gather)(float *blocks, const float *x, tat_patch_geom g);
    void (*patch_scatter_add)(float *d_x, const float *d_blocks, tat_patch_geom g);
    void (*avgpool_forward)(float *out, const float *in, tat_pool_geom g);
    void (*avgpool_backward)(float *d_in, const float *d_out, tat_pool_geom g);
    void (*im2col)(float *col, const float *in, tat_conv_geom g);
    /* stacked NCHW <-> channel-major (tat_stack_cm_index) */
    void (*stack_to_nchw)(float *nchw, const float *cm, tat_stack_geom g);
    void (*stack_to_cm)(float *cm, const float *nchw, tat_stack_geom g);
    void (*col2im_add)(float *d_in, const float *col, tat_conv_geom g);
    void (*batchnorm_forward)(float *out, float *x_hat, float *mean, float *inv_std,
                              const float *in, const float *gamma, const float *beta,
                              tat_bn_geom g);
    void (*batchnorm_backward)(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                               const float *x_hat, const float *inv_std, const float *gamma,
                               tat_bn_geom g, int assign);
    void (*softmax_rows)(float *s, int rows, int cols);
    /* o -> o - t per position, drow and sse_pos per (block, position); rows = n_blocks * N */
    void (*residual)(float *o, const float *t, float *drow, double *sse_pos, int N, int d,
                     size_t rows);
    /* sum of n doubles into the loss's device double, then copied to its pinned host double
     * without waiting; loss_wait waits for that copy and returns it */
    void (*loss_start)(tat_gpu_loss *loss, const double *x, size_t n);
    double (*loss_wait)(tat_gpu_loss *loss);
    void (*dscore)(float *ds, const float *a, const float *drow, float two_w, int N, size_t n);
    void (*zero)(float *x, size_t n);
    /* diff = x - target, TAT_SUM_BLOCKS partial sums of its squares */
    void (*sse)(float *diff, const float *x, const float *target, size_t n, double *partials);
    void (*sse_grad)(float *d_x, const float *diff, float two_w, size_t n);
    /* softmaxes at the temperature of each of `rows` rows of n logits, KL of each row */
    void (*kd_rows)(float *p_s, float *p_t, const float *s, const float *t, int rows, int n,
                    float temperature, double *kl_rows);
    void (*kd_grad)(float *d_s, const float *p_s, const float *p_t, float scale, size_t n);
    /* streaming attention, fused (tat_flash_args; f.r, f.drow, f.two_w unused forward):
     * O and lse; dQ accumulated; dK (may be NULL) and dV accumulated */
    void (*flash_forward)(float *o, float *lse, tat_flash_args f);
    void (*flash_query_grad)(float *dq, tat_flash_args f);
    void (*flash_key_value_grad)(float *dk, float *dv, tat_flash_args f);
} tat_gpu_ops;

/* ---- embeddings: conv (no bias) + BatchNorm, n of one input stacked --------------------- */
/* e[0..n-1] share in_c, out_c and ksize, and their weights, weight_grads, x_hat and out are
 * contiguous (tat_gpu_embeddings_init): the convs of all n run as one product and one im2col.
 * workspace: tat_gpu_conv_workspace_floats. */
static inline void tat_steps_embeddings_forward(const tat_gpu_ops *op, tat_gpu_embedding **e,
                                                int n, const float *in, float *workspace,
                                                int batch, int h, int w, int per_image)
{
    tat_gpu_embedding *g = e[0];
    int hw = h * w, kk = g->in_c * g->ksize * g->ksize, i;
    tat_bn_geom bn = {batch, g->out_c, hw, per_image};
    tat_stack_geom sg = {n, batch, g->out_c, hw};
    const float *col = in;
    if (g->ksize != 1) {
        tat_conv_geom cg = {batch, g->in_c, h, w, g->ksize};
        op->im2col(workspace, in, cg);
        col = workspace;
    }
    /* the stack's conv output, channel-major, into `out` (dead until BN writes it), then to
       x_hat as NCHW maps; BN normalises x_hat in place as tat.c does */
    op->gemm(tat_gemm_conv_forward(batch, n * g->out_c, kk, hw, g->ksize == 1), g->weights, col,
             g->out);
    op->stack_to_nchw(g->x_hat, g->out, sg);
    for (i = 0; i < n; ++i) {
        op->batchnorm_forward(e[i]->out, e[i]->x_hat, e[i]->mean, e[i]->inv_std, e[i]->x_hat,
                              e[i]->scales, e[i]->biases, bn);
        op->zero(e[i]->out_grad, (size_t)batch * g->out_c * hw);
    }
}

static inline void tat_steps_embeddings_backward(const tat_gpu_ops *op, tat_gpu_embedding **e,
                                                 int n, float *d_in, const float *in,
                                                 float *workspace, int batch, int h, int w,
                                                 int per_image)
{
    tat_gpu_embedding *g = e[0];
    int hw = h * w, kk = g->in_c * g->ksize * g->ksize, rows = n * g->out_c, i;
    tat_bn_geom bn = {batch, g->out_c, hw, per_image};
    tat_conv_geom cg = {batch, g->in_c, h, w, g->ksize};
    tat_stack_geom sg = {n, batch, g->out_c, hw};
    /* d(conv out) into `out` (dead now, as tat.c), then channel-major into x_hat (dead after
       the BN backward) */
    for (i = 0; i < n; ++i)
        op->batchnorm_backward(e[i]->out, e[i]->scale_grads, e[i]->bias_grads, e[i]->out_grad,
                               e[i]->x_hat, e[i]->inv_std, e[i]->scales, bn, 1);
    op->stack_to_cm(g->x_hat, g->out, sg);
    op->im2col(workspace, in, cg); /* 1x1: the input channel-major */
    op->gemm(tat_gemm_conv_weight_grad(batch, rows, kk, hw), g->x_hat, workspace, g->weight_grads);
    if (!d_in) return;
    if (g->ksize == 1) {
        op->gemm(tat_gemm_conv_input_grad(batch, rows, kk, hw, 1), g->weights, g->x_hat, d_in);
    } else {
        op->gemm(tat_gemm_conv_input_grad(batch, rows, kk, hw, 0), g->weights, g->x_hat, workspace);
        op->col2im_add(d_in, workspace, cg);
    }
}

static inline void tat_steps_embedding_forward(const tat_gpu_ops *op, tat_gpu_embedding *g,
                                               const float *in, float *workspace, int batch,
                                               int h, int w, int per_image)
{
    tat_steps_embeddings_forward(op, &g, 1, in, workspace, batch, h, w, per_image);
}

static inline void tat_steps_embedding_backward(const tat_gpu_ops *op, tat_gpu_embedding *g,
                                                float *d_in, const float *in, float *workspace,
                                                int batch, int h, int w, int per_image)
{
    tat_steps_embeddings_backward(op, &g, 1, d_in, in, workspace, batch, h, w, per_image);
}

/* ---- term ------------------------------------------------------------------------------- */
/* Floats of one set of blocks (q, k, v, t, ... each): n_blocks x d x N. */
static inline size_t tat_steps_block_floats(const tat_term_geom *t)
{
    return (size_t)t->n_blocks * t->d * t->N;
}

/* Map -> blocks (patch regrouping or anchor pooling). */
static inline void tat_steps_gather(const tat_gpu_ops *op, const tat_term_geom *t, float *blocks,
                                    const float *x)
{
    if (t->kind == TAT_TERM_ANCHORS) op->avgpool_forward(blocks, x, tat_term_pool_geom(t, 0));
    else op->patch_gather(blocks, x, tat_term_patch_geom(t, 0));
}

/* The adjoint: map gradient += the blocks' gradient put back. */
static inline void tat_steps_scatter_add(const tat_gpu_ops *op, const tat_term_geom *t, float *d_x,
                                         const float *d_blocks)
{
    if (t->kind == TAT_TERM_ANCHORS) op->avgpool_backward(d_x, d_blocks, tat_term_pool_geom(t, 0));
    else op->patch_scatter_add(d_x, d_blocks, tat_term_patch_geom(t, 0));
}

/* Floats of each of attn and ds: every block's N x N matrix; streaming (fused kernels) none. */
static inline size_t tat_steps_attention_floats(const tat_term_geom *t)
{
    return t->stream_tile ? 1 : (size_t)t->n_blocks * t->N * t->N;
}

/* The streaming form (tat.c's block_forward_streaming / block_backward_streaming) as fused
 * kernels, one launch forward and two backward whatever N (tat_kernel_index.h, "fused"):
 * memory linear in N. */
static inline tat_flash_args tat_steps_flash_args(const tat_gpu_term *g, float two_w)
{
    tat_flash_args f;
    f.q = g->Q, f.k = g->K, f.v = g->V, f.r = g->resid, f.lse = g->lse, f.drow = g->drow;
    f.two_w = two_w;
    f.n_blocks = g->geom.n_blocks, f.N = g->geom.N, f.d = g->geom.d;
    return f;
}

static inline void tat_steps_stream_forward(const tat_gpu_ops *op, tat_gpu_term *g)
{
    op->flash_forward(g->resid, g->lse, tat_steps_flash_args(g, 0));
}

/* dq, dk (may be NULL), dv accumulate; dO = 2w R. */
static inline void tat_steps_stream_backward(const tat_gpu_ops *op, tat_gpu_term *g, float *dq,
                                             float *dk, float *dv, float two_w)
{
    tat_flash_args f = tat_steps_flash_args(g, two_w);
    op->flash_query_grad(dq, f);
    op->flash_key_value_grad(dk, dv, f);
}

/* Starts the loss copy (g->loss): tat_gpu_loss_wait gives the sum of squared errors. */
static inline void tat_steps_term_forward(const tat_gpu_ops *op, tat_gpu_term *g,
                                          const float *q, const float *k, const float *v,
                                          const float *target)
{
    const tat_term_geom *t = &g->geom;
    int n = t->n_blocks, N = t->N, d = t->d;
    size_t blk = tat_steps_block_floats(t), rows = (size_t)n * N;
    const float *tg = target;
    if (t->direct) {
        g->Q = q, g->K = k, g->V = v;
    } else {
        /* blocks: q, k, v, t, then dq, dk, dv for the backward */
        tat_steps_gather(op, t, g->blocks, q);
        tat_steps_gather(op, t, g->blocks + blk, k);
        tat_steps_gather(op, t, g->blocks + 2 * blk, v);
        tat_steps_gather(op, t, g->blocks + 3 * blk, target);
        g->Q = g->blocks, g->K = g->blocks + blk, g->V = g->blocks + 2 * blk;
        tg = g->blocks + 3 * blk;
    }
    if (t->stream_tile) {
        tat_steps_stream_forward(op, g);
    } else {
        op->gemm(tat_gemm_scores(n, N, d), g->Q, g->K, g->attn);
        op->softmax_rows(g->attn, (int)rows, N);
        op->gemm(tat_gemm_mix(n, N, d), g->V, g->attn, g->resid);
    }
    op->residual(g->resid, tg, g->drow, g->sse_pos, N, d, rows);
    op->loss_start(&g->loss, g->sse_pos, rows);
}

static inline void tat_steps_term_backward(const tat_gpu_ops *op, tat_gpu_term *g, float *d_q,
                                           float *d_k, float *d_v, float w)
{
    const tat_term_geom *t = &g->geom;
    int n = t->n_blocks, N = t->N, d = t->d;
    size_t blk = tat_steps_block_floats(t), nn = (size_t)n * N * N;
    float two_w = 2 * w, beta = t->direct ? 1.f : 0.f;
    float *dq = d_q, *dk = d_k, *dv = d_v;
    if (!t->direct) {
        dq = g->blocks + 4 * blk;
        dk = d_k ? g->blocks + 5 * blk : NULL;
        dv = g->blocks + 6 * blk;
    }
    if (t->stream_tile) {
        /* the tiles accumulate: block gradients start at zero, maps (direct) keep theirs */
        if (!t->direct) {
            op->zero(dq, blk);
            op->zero(dv, blk);
            if (dk) op->zero(dk, blk);
        }
        tat_steps_stream_backward(op, g, dq, dk, dv, two_w);
    } else {
        /* dO = 2w R is folded into the alphas: dV = dO A, dP = dO^T V */
        op->gemm(tat_gemm_value_grad(n, N, d, two_w, beta), g->resid, g->attn, dv);
        op->gemm(tat_gemm_prob_grad(n, N, d, two_w), g->resid, g->V, g->ds);
        op->dscore(g->ds, g->attn, g->drow, two_w, N, nn);
        op->gemm(tat_gemm_query_grad(n, N, d, beta), g->K, g->ds, dq);
        if (dk) op->gemm(tat_gemm_key_grad(n, N, d, beta), g->Q, g->ds, dk);
    }
    if (t->direct) return;
    tat_steps_scatter_add(op, t, d_q, dq);
    tat_steps_scatter_add(op, t, d_v, dv);
    if (d_k) tat_steps_scatter_add(op, t, d_k, dk);
}

/* ---- the baselines ----------------------------------------------------------------------- */
/* FitNet: the projection p (a 1x1 embedding) of the student map against the teacher map;
 * diff holds projection - teacher, partials TAT_SUM_BLOCKS doubles. */
static inline void tat_steps_fitnet_forward(const tat_gpu_ops *op, tat_gpu_embedding *p,
                                            const float *student, const float *teacher,
                                            float *diff, double *partials, tat_gpu_loss *loss,
                                            int batch, int h, int w, int per_image)
{
    size_t n = (size_t)batch * p->out_c * h * w;
    tat_steps_embedding_forward(op, p, student, NULL, batch, h, w, per_image); /* 1x1: no im2col */
    op->sse(diff, p->out, teacher, n, partials);
    op->loss_start(loss, partials, TAT_SUM_BLOCKS);
}

/* w: the weight of the squared error of each element (gradient 2 w diff). */
static inline void tat_steps_fitnet_backward(const tat_gpu_ops *op, tat_gpu_embedding *p,
                                             float *d_student, const float *student,
                                             const float *diff, float *workspace, float w,
                                             int batch, int h, int w_map, int per_image)
{
    op->sse_grad(p->out_grad, diff, 2 * w, (size_t)batch * p->out_c * h * w_map);
    tat_steps_embedding_backward(op, p, d_student, student, workspace, batch, h, w_map, per_image);
}

/* KD: p_s, p_t, kl_rows sized batch x n, batch x n, batch. */
static inline void tat_steps_kd_forward(const tat_gpu_ops *op, float *p_s, float *p_t,
                                        double *kl_rows, tat_gpu_loss *loss, const float *s,
                                        const float *t, int batch, int n, float temperature)
{
    op->kd_rows(p_s, p_t, s, t, batch, n, temperature, kl_rows);
    op->loss_start(loss, kl_rows, batch);
}

/* d_s += w T (p_s - p_t) */
static inline void tat_steps_kd_backward(const tat_gpu_ops *op, float *d_s, const float *p_s,
                                         const float *p_t, int batch, int n, float temperature,
                                         float w)
{
    op->kd_grad(d_s, p_s, p_t, w * temperature, (size_t)batch * n);
}

#endif
