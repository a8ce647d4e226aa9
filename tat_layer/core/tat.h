#ifndef TAT_H
#define TAT_H
/*
 * Target-aware Transformer (TaT) distillation math, as the official TaT / TaT-seg code
 * computes it. Pure C: explicit shapes, raw float pointers, no Darknet types.
 *
 * Layouts
 *   Feature maps are float32 NCHW, contiguous.
 *   A "block" is one independent TaT attention problem of N positions with d channels,
 *   stored channel-major: element (channel c, position i) at c*N + i. An NCHW image is
 *   already such a block (d = C, N = H*W), which is the full one-to-all form.
 *
 * Gradients
 *   Every backward function ACCUMULATES (+=) into its gradient outputs and never assigns,
 *   so several terms may feed one buffer. The gradients are linear in the loss weight w,
 *   so a caller that keeps negative gradients (Darknet's delta) simply passes -w.
 *   A gradient pointer may be NULL where noted: that gradient is then not computed.
 */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Batch-norm epsilon of the official code (PyTorch BatchNorm2d default), added inside the sqrt. */
#define TAT_BN_EPS 1e-5f

/* A precondition of the math that the caller must have checked (e.g. a geometry validated by
 * tat_term_geom_*): on failure one line naming the file, the line and the condition, then
 * abort(). A user's bad input never reaches one; a violated one is a bug in the caller. */
void tat_assert_fail(const char *cond, const char *file, int line);
#define TAT_ASSERT(cond) ((cond) ? (void)0 : tat_assert_fail(#cond, __FILE__, __LINE__))

/* ---- Geometry of the primitives (the CPU functions here and their GPU twins in tat_gpu.h
 * take the same structs; they hold shapes only, never buffers) ------------------------- */
/* Patch regrouping: see tat_patch_gather. */
typedef struct {
    int batch, c, h, w, grid_h, grid_w, groups;
} tat_patch_geom;
/* Average pooling, kernel = stride = (kh, kw), no padding, over planes = batch * channels. */
typedef struct {
    int planes, h, w, kh, kw;
} tat_pool_geom;
/* A stride-1 "same" convolution's im2col (pad = ksize / 2). */
typedef struct {
    int batch, c, h, w, ksize;
} tat_conv_geom;
/* Training-mode BatchNorm: see tat_batchnorm_forward. */
typedef struct {
    int batch, c, spatial, per_image;
} tat_bn_geom;

/* ---- Threads ------------------------------------------------------------------------- */
/* The attention, term and BatchNorm loops run their independent blocks on a small pool of
 * threads (default: the online CPUs, or the environment's TAT_NUM_THREADS), holding OpenBLAS
 * to one thread meanwhile. The count is fixed at first use; set it before any other call. */
void tat_set_num_threads(int n);
int tat_get_num_threads(void);

/* ---- Random numbers for initialisation ------------------------------------------------- */
/* The generator an initialisation draws from, passed to it explicitly. Either a state of its
 * own (tat_rng_seeded: splitmix64, the same numbers on every platform and libc), or the C
 * library's rand() (tat_rng_from_rand: the one global sequence that srand() and Darknet's
 * -seed set and that Darknet's own layers draw their weights from; `state` is then unused). */
typedef struct {
    uint64_t state;
    int from_rand;
} tat_rng;
tat_rng tat_rng_seeded(uint64_t seed);
tat_rng tat_rng_from_rand(void);
/* One draw in [-1, 1]: from rand(), 2 * rand() / RAND_MAX - 1 in float (one rand() call, as
 * Darknet's layers initialise); from the state, a multiple of 2^-23 in [-1, 1). */
float tat_rng_uniform(tat_rng *r);

/* ---- GEMM ----------------------------------------------------------------------------- */
/* Row-major C = alpha * op(A) op(B) + beta * C, op(X) = X or X^T, op(A) is M x K, op(B) K x N. */
void tat_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* ---- Embedding: conv (stride 1, pad ksize/2, no bias) followed by training-mode BatchNorm - */
/* Floats of scratch the conv needs for a batch (0 for 1x1; k x k convolutions run as GEMMs
 * over the im2col of as many images as fit a fixed budget, at least one). */
size_t tat_conv_workspace_floats(int batch, int in_c, int out_c, int h, int w, int ksize);
/* out[B,out_c,H,W] = weight[out_c, in_c, k, k] (*) in[B,in_c,H,W] */
void tat_conv_forward(float *out, const float *in, const float *weight, float *workspace, int batch,
                      int in_c, int h, int w, int out_c, int ksize);
/* Accumulates d_in (may be NULL) and d_weight from d_out. */
void tat_conv_backward(float *d_in, float *d_weight, const float *d_out, const float *in,
                       const float *weight, float *workspace, int batch, int in_c, int h, int w,
                       int out_c, int ksize);

/* Training-mode BatchNorm: statistics per channel over the whole batch (per_image = 0, the
 * ImageNet code) or per (image, channel) (per_image = 1, the segmentation code, which embeds
 * one image at a time). Biased variance, eps TAT_BN_EPS inside the sqrt.
 * mean/inv_std hold C floats (per_image = 0) or batch*C floats (per_image = 1).
 * x_hat (the normalised input) is kept for the backward; out = gamma * x_hat + beta. */
void tat_batchnorm_forward(float *out, float *x_hat, float *mean, float *inv_std, const float *in,
                           const float *gamma, const float *beta, tat_bn_geom g);
/* Accumulates d_in (may be NULL), d_gamma and d_beta from d_out. */
void tat_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta, const float *d_out,
                            const float *x_hat, const float *inv_std, const float *gamma,
                            tat_bn_geom g);

/* One learned embedding (query, key or value) with its parameters and saved activations. */
typedef struct {
    int in_c, out_c, ksize;
    float *weights, *scales, *biases;               /* out_c*in_c*k*k, out_c (gamma), out_c (beta) */
    float *weight_grads, *scale_grads, *bias_grads; /* accumulated, same sizes */
    float *x_hat, *out, *out_grad;                  /* batch*out_c*h*w each */
    float *mean, *inv_std;                          /* batch*out_c each (enough for both BN modes) */
    /* Adam's first and second moments of the parameters (weights, then scales, then biases:
     * tat_embedding_num_params floats each), or NULL when it is not trained with Adam */
    float *adam_m, *adam_v;
} tat_embedding;

/* Allocates parameters (weights He-uniform, drawn from rng in order, one draw each; scales 1,
 * biases 0) and zeroed grads. */
void tat_embedding_init(tat_embedding *e, int in_c, int out_c, int ksize, tat_rng *rng);
/* Allocates e's Adam moments, zeroed (freed with e). */
void tat_embedding_alloc_moments(tat_embedding *e);
/* Allocates the per-batch activations for batch x h x w maps. */
void tat_embedding_alloc_activations(tat_embedding *e, int batch, int h, int w);
void tat_embedding_free(tat_embedding *e);
size_t tat_embedding_num_params(const tat_embedding *e);
/* Forward FLOPs per image of the conv on h x w maps (multiply-adds counted as two). */
double tat_embedding_flops_per_image(const tat_embedding *e, int h, int w);
/* out = BN(conv(in)); zeroes out_grad for the coming backward. */
void tat_embedding_forward(tat_embedding *e, const float *in, float *workspace, int batch, int h,
                           int w, int per_image);
/* From out_grad: accumulates parameter grads and d_in (may be NULL). Reuses `out` as
 * scratch, so run every consumer's backward (tat_term_backward) before this. */
void tat_embedding_backward(tat_embedding *e, float *d_in, const float *in, float *workspace,
                            int batch, int h, int w, int per_image);

/* ---- Patch regrouping (patch-group distillation) --------------------------------------- */
/* Whole-map reference versions: the term (tat_term_forward) cuts and scatters one block at a
 * time instead; these serve the tests, the GPU check and the attention maps.
 * The map is cut into grid_h x grid_w patches of ph = h/grid_h by pw = w/grid_w (rows and
 * columns past grid*patch are left out). Patches are numbered row-major and split into
 * `groups` runs of P/groups consecutive patches. Block (image b, group a) has N = ph*pw
 * positions and d = (P/groups)*c channels; its element (e, r) is
 *   x[b, e % c, pi*ph + r / pw, pj*pw + r % pw],  pp = a*(P/groups) + e / c,
 *   pi = pp / grid_w, pj = pp % grid_w.
 * blocks: batch*groups blocks of d*N floats, image-major. */
void tat_patch_gather(float *blocks, const float *x, tat_patch_geom g);
/* d_x += the blocks' gradient put back at their source positions. */
void tat_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g);

/* ---- Anchor pooling (anchor-point distillation) ---------------------------------------- */
/* Average pooling, kernel = stride = (kh, kw), no padding: out is planes x (h/kh) x (w/kw). */
void tat_avgpool_forward(float *out, const float *in, tat_pool_geom g);
/* d_in += each output gradient spread uniformly over its window. */
void tat_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g);

/* ---- One TaT attention block, batched over n_blocks independent blocks ----------------- */
/* Unfused reference (tests only): the term runs the same math block by block in one pass,
 * with its copies and scratch per thread. */
/* S = Q^T K (N x N, S[i][j] = <q_i, k_j>, unscaled), A = row softmax of S (max subtracted),
 * O = V A^T (d x N: o_i = sum_j A[i][j] v_j). Q, K, V, T, O: n_blocks * d*N; A: n_blocks*N*N.
 * Returns sum over all elements of (O - T)^2, accumulated in double. */
double tat_attention_forward(float *O, float *A, const float *Q, const float *K, const float *V,
                             const float *T, int n_blocks, int N, int d);
/* Floats of scratch tat_attention_backward needs. */
size_t tat_attention_scratch_floats(int N, int d);
/* Gradient of L = w * sum (O - T)^2, accumulated into d_Q, d_K (may be NULL: key not
 * learned), d_V, all n_blocks * d*N. */
void tat_attention_backward(float *d_Q, float *d_K, float *d_V, const float *Q, const float *K,
                            const float *V, const float *T, const float *A, const float *O, float w,
                            float *scratch, int n_blocks, int N, int d);

/* ---- A distillation term: q, k, v, t maps -> blocks -> attention -> squared error ------- */
typedef enum { TAT_TERM_PATCH_GROUPS, TAT_TERM_ANCHORS } tat_term_kind;

/* What a term computes, apart from any buffer: the parsers validate it, the CPU term and the
 * GPU term are allocated from it. */
typedef struct {
    tat_term_kind kind;
    int batch, c, h, w;
    int grid_h, grid_w, groups;      /* TAT_TERM_PATCH_GROUPS (1, 1, 1 = full one-to-all) */
    int pool_h, pool_w;              /* TAT_TERM_ANCHORS: kernel = stride of the pooling  */
    int n_blocks, N, d;              /* block geometry derived from the above             */
    int direct;                      /* 1: the maps are the blocks (full form), no copies */
    /* How the attention is computed (same loss and gradients either way, to rounding):
     * 0 materialises each block's N x N softmax matrix; > 0 streams it in tiles of
     * stream_tile queries x stream_tile keys (online softmax with a running row max and sum,
     * the backward recomputing each tile from the saved row log-sum-exp), in memory linear
     * in N. The tat_term_geom_* functions set 0; a caller may set it before tat_term_init. */
    int stream_tile;
} tat_term_geom;

/* The tile edge of the streaming attention when a caller just asks for streaming. */
#define TAT_STREAM_TILE 256
/* The smallest tile edge a device streams with. */
#define TAT_GPU_STREAM_TILE 1024
/* Above this many bytes of attention matrices (the kept ones and the backward's per-thread
 * copies), tat_term_prefers_streaming says stream. */
#define TAT_ATTENTION_BUDGET_BYTES ((size_t)512 << 20)

/* Fill g for batch x c x h x w maps cut into a grid_h x grid_w patch grid in `groups` groups,
 * or for anchor_h x anchor_w anchors. Allocate nothing. On a geometry that does not fit the
 * map, return a static message naming the problem (g is then unusable), else NULL. */
const char *tat_term_geom_patch(tat_term_geom *g, int batch, int c, int h, int w, int grid_h,
                                int grid_w, int groups);
const char *tat_term_geom_anchor(tat_term_geom *g, int batch, int c, int h, int w, int anchor_h,
                                 int anchor_w);
/* Elements of the loss per image (the MSE denominator). */
size_t tat_term_elements_per_image(const tat_term_geom *g);
/* Forward FLOPs per image of the attention part (S, softmax ignored, O). */
double tat_term_flops_per_image(const tat_term_geom *g);
/* Bytes the materialised attention of g needs (N x N per block kept, plus one per thread of
 * nthreads for the backward). */
size_t tat_term_materialized_bytes(const tat_term_geom *g, int nthreads);
/* 1 when the materialised attention would exceed TAT_ATTENTION_BUDGET_BYTES. */
int tat_term_prefers_streaming(const tat_term_geom *g);
/* A device's attention choice under a memory budget (the GPU path asks with a share of the
 * device's free memory, tat_gpu_term_stream_tile): 0, materialise, when allow_materialized and
 * `kept` N x N matrices per block fit in budget_bytes; else the largest tile edge of 4096,
 * 2048 and min_tile whose `kept` tile x tile matrices per block fit, min_tile when none does
 * (its allocation then says what is missing). Fewer, larger tiles: fewer launches per step. */
int tat_term_stream_tile_for_budget(const tat_term_geom *g, int kept, size_t budget_bytes, int min_tile,
                                    int allow_materialized);
/* The gather of a term's maps into blocks, as the primitives' geometry: whole batch (planes =
 * batch * c) or, with one_image, one image of it. */
tat_patch_geom tat_term_patch_geom(const tat_term_geom *g, int one_image);
tat_pool_geom tat_term_pool_geom(const tat_term_geom *g, int one_image);
/* What "one-to-many" means for the query at map position (y, x) of image 0: its row of the
 * softmax of Q^T K in its block, the blocks cut from q and k (batch x c x h x w, as the term
 * cuts them). map (h*w floats) gets each key's weight at every position the key stands for:
 * for patch groups the key at an intra-patch offset spans every patch of the group, so its
 * weight is drawn on each of them; for anchors, on the anchor's whole window; 0 elsewhere.
 * Returns NULL, or a static message when (y, x) is outside the map or in the rows/columns the
 * patch grid or the anchor pooling leaves out (map is then not written). */
const char *tat_term_attention_map(const tat_term_geom *g, const float *q, const float *k, int y,
                                   int x, float *map);

typedef struct {
    tat_term_geom geom;
    int nthreads;                    /* threads the scratch was sized for                 */
    const float *Q, *K, *V, *T;      /* the q, k, v, target maps of the last forward      */
    float *attn;                     /* n_blocks x N x N softmax weights (materialised)   */
    float *lse;                      /* n_blocks x N row log-sum-exp of S (streaming)     */
    float *resid;                    /* n_blocks x d x N: O - T                           */
    float *drow;                     /* n_blocks x N: (O_i - T_i) . O_i                   */
    float *kept;                     /* anchors: the pooled q, k, v blocks (else NULL)    */
    double *sse_blk;                 /* n_blocks: squared error per block                 */
    float *scratch;                  /* per-thread block copies and gradients             */
} tat_term;

/* Allocates a term for a geometry that tat_term_geom_* accepted. */
void tat_term_init(tat_term *t, const tat_term_geom *g);
void tat_term_free(tat_term *t);
/* q, k, v, t: batch x c x h x w. Returns the sum of squared errors over the batch. The
 * blocks are cut from the maps as needed: q, k, v must stay unchanged until the backward. */
double tat_term_forward(tat_term *t, const float *q, const float *k, const float *v,
                        const float *target);
/* Accumulates the gradient of L = w * (sum of squared errors) into d_q, d_k (may be NULL), d_v
 * (batch x c x h x w). Uses what the last tat_term_forward saved. */
void tat_term_backward(tat_term *t, float *d_q, float *d_k, float *d_v, float w);

/* ---- Baseline distillation terms ------------------------------------------------------- */
/* Logit knowledge distillation (Hinton et al. 2015). s, t: batch x n logits (pre-softmax) of the
 * student and the teacher. Per image, p_s = softmax(s / T), p_t = softmax(t / T) (max
 * subtracted), and KL(p_t || p_s) = sum_j p_t[j] (log p_t[j] - log p_s[j]), from log-softmaxes
 * in double; classes with p_t[j] = 0 add nothing (the limit of p log p). p_s and p_t
 * (batch x n) receive the softmaxes for the backward. Returns the sum over images of the KL,
 * unweighted and without the T^2 factor. */
double tat_kd_forward(float *p_s, float *p_t, const float *s, const float *t, int batch, int n,
                      float temperature);
/* Accumulates the gradient of L = w * T^2 * (sum over images of KL(p_t || p_s)) w.r.t. s:
 * d_s += w * T * (p_s - p_t). */
void tat_kd_backward(float *d_s, const float *p_s, const float *p_t, int batch, int n,
                     float temperature, float w);

/* Squared error of a map against a target (feature distillation): diff = x - target (n floats).
 * Returns the sum of diff^2, accumulated in double. */
double tat_sse_forward(float *diff, const float *x, const float *target, size_t n);
/* Accumulates the gradient of L = w * sum (x - target)^2 w.r.t. x: d_x += 2 w diff. */
void tat_sse_backward(float *d_x, const float *diff, size_t n, float w);

#ifdef __cplusplus
}
#endif
#endif
