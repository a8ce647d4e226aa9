/* TaT distillation math on the GPU: see tat_gpu.h. Each kernel loops its share of an index
 * space and calls one per-element function of tat_kernel_index.h; the reductions give each
 * thread of a block the share tat_kernel_index.h defines and combine the shares in shared
 * memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "cuda.h"
#include "tat_fail.h"
#include "tat_gpu.h"
#include "tat_gpu_steps.h"
}

#define TAT_THREADS 256

/* A failed CUDA or cuBLAS call: one line naming this file, the line and the call, exit 1. */
static void tat_cuda_check(cudaError_t status, const char *call, const char *file, int line)
{
    if (status == cudaSuccess) return;
    tat_fail("%s:%d: %s: CUDA error: %s", file, line, call, cudaGetErrorString(status));
}

static void tat_blas_check(cublasStatus_t status, const char *call, const char *file, int line)
{
    if (status == CUBLAS_STATUS_SUCCESS) return;
    tat_fail("%s:%d: %s: cuBLAS error (status %d)", file, line, call, (int)status);
}

#define TAT_CUDA_CHECK(call) tat_cuda_check((call), #call, __FILE__, __LINE__)
#define TAT_BLAS_CHECK(call) tat_blas_check((call), #call, __FILE__, __LINE__)
#define TAT_LAUNCH_CHECK() TAT_CUDA_CHECK(cudaPeekAtLastError())

/* Blocks for a grid-stride loop over n items: enough to fill any current GPU, never more
 * than the items need. */
static unsigned int tat_blocks(size_t n)
{
    size_t b = (n + TAT_THREADS - 1) / TAT_THREADS;
    if (b < 1) b = 1;
    return (unsigned int)(b > 65536 ? 65536 : b);
}

#define TAT_GRID_STRIDE(i, n) \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (size_t)gridDim.x * blockDim.x)

/* Every kernel, copy and event of the plugin goes to the stream of Darknet's cuBLAS handle,
 * the stream its GEMMs run on, so they stay ordered with them whatever stream that is. */
static cudaStream_t tat_stream(void)
{
    cudaStream_t s;
    TAT_BLAS_CHECK(cublasGetStream(blas_handle(), &s));
    return s;
}

/* The current device's SM count (reduction grids are sized by it), asked once per device. */
#define TAT_MAX_DEVICES 64
static int tat_sm_counts[TAT_MAX_DEVICES];

static int tat_sm_count(void)
{
    int dev = 0, sms = 0;
    TAT_CUDA_CHECK(cudaGetDevice(&dev));
    if (dev >= 0 && dev < TAT_MAX_DEVICES && tat_sm_counts[dev]) return tat_sm_counts[dev];
    TAT_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    if (dev >= 0 && dev < TAT_MAX_DEVICES) tat_sm_counts[dev] = sms;
    return sms;
}

/* Per-device scratch for the partial sums of split reductions (BatchNorm statistics), grown
 * on demand: steady-state steps allocate nothing. cudaFree waits for the device, so no kernel
 * still reads the old buffer. */
static double *tat_scratch[TAT_MAX_DEVICES];
static size_t tat_scratch_n[TAT_MAX_DEVICES];
static void *tat_gpu_alloc_bytes(size_t bytes);

static double *tat_gpu_scratch(size_t n)
{
    int dev = 0;
    TAT_CUDA_CHECK(cudaGetDevice(&dev));
    if (dev < 0 || dev >= TAT_MAX_DEVICES) tat_fail("tat: CUDA device %d out of range", dev);
    if (tat_scratch_n[dev] < n) {
        if (tat_scratch[dev]) TAT_CUDA_CHECK(cudaFree(tat_scratch[dev]));
        tat_scratch[dev] = (double *)tat_gpu_alloc_bytes(n * sizeof(double));
        tat_scratch_n[dev] = n;
    }
    return tat_scratch[dev];
}

static char tat_alloc_context[512] = "tat";

void tat_gpu_set_alloc_context(const char *context)
{
    snprintf(tat_alloc_context, sizeof(tat_alloc_context), "%s", context);
}

/* Says which layer wanted how much, and how much the device has free, and exits 1: out of
   device memory is a cfg problem (a fine grid on a big map, a large batch), not an abort in
   Darknet's check_error. */
static void tat_out_of_memory(size_t bytes, const char *what, cudaError_t status)
{
    size_t free_bytes = 0, total_bytes = 0;
    cudaGetLastError(); /* clear the error before asking for the free memory */
    cudaMemGetInfo(&free_bytes, &total_bytes);
    tat_fail("%s: cannot allocate %.1f MiB of %s (%.1f of %.1f MiB of GPU memory free): %s; a coarser grid, more groups, fewer anchors or a smaller batch need less",
            tat_alloc_context, bytes / 1048576.0, what, free_bytes / 1048576.0,
            total_bytes / 1048576.0, cudaGetErrorString(status));
}

static void *tat_gpu_alloc_bytes(size_t bytes)
{
    void *p;
    cudaError_t status;
    if (!bytes) bytes = 1;
    status = cudaMalloc(&p, bytes);
    if (status != cudaSuccess) tat_out_of_memory(bytes, "GPU memory", status);
    TAT_CUDA_CHECK(cudaMemset(p, 0, bytes));
    return p;
}

extern "C" float *tat_gpu_alloc_floats(size_t n) { return (float *)tat_gpu_alloc_bytes(n * sizeof(float)); }
extern "C" double *tat_gpu_alloc_doubles(size_t n) { return (double *)tat_gpu_alloc_bytes(n * sizeof(double)); }
static float *tat_gpu_alloc(size_t n) { return tat_gpu_alloc_floats(n); }

extern "C" void tat_gpu_free(void *p)
{
    if (p) TAT_CUDA_CHECK(cudaFree(p));
}

/* ---- losses: summed on the device, copied to pinned memory without waiting ---------------- */
extern "C" void tat_gpu_loss_init(tat_gpu_loss *l)
{
    cudaError_t status;
    cudaEvent_t ev;
    l->device_sum = tat_gpu_alloc_doubles(1);
    l->partials = tat_gpu_alloc_doubles(TAT_SUM_BLOCKS);
    status = cudaMallocHost((void **)&l->host_sum, sizeof(double));
    if (status != cudaSuccess) tat_out_of_memory(sizeof(double), "pinned host memory", status);
    *l->host_sum = 0;
    TAT_CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    l->ready = (void *)ev;
}

extern "C" void tat_gpu_loss_free(tat_gpu_loss *l)
{
    tat_gpu_free(l->device_sum);
    tat_gpu_free(l->partials);
    if (l->host_sum) TAT_CUDA_CHECK(cudaFreeHost(l->host_sum));
    if (l->ready) TAT_CUDA_CHECK(cudaEventDestroy((cudaEvent_t)l->ready));
    memset(l, 0, sizeof(*l));
}

extern "C" double tat_gpu_loss_wait(tat_gpu_loss *l)
{
    TAT_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)l->ready));
    return *l->host_sum;
}

/* ---- block reductions (TAT_REDUCE_THREADS threads, a power of two) ---------------------- */
template <typename T> __device__ static T block_sum(T v, T *red)
{
    int tid = threadIdx.x, s;
    red[tid] = v;
    __syncthreads();
    for (s = TAT_REDUCE_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] += red[tid + s];
        __syncthreads();
    }
    v = red[0];
    __syncthreads(); /* red is reused by the next reduction */
    return v;
}

template <typename T> __device__ static T block_max(T v, T *red)
{
    int tid = threadIdx.x, s;
    red[tid] = v;
    __syncthreads();
    for (s = TAT_REDUCE_THREADS / 2; s > 0; s >>= 1) {
        if (tid < s) red[tid] = red[tid + s] > red[tid] ? red[tid + s] : red[tid];
        __syncthreads();
    }
    v = red[0];
    __syncthreads();
    return v;
}

/* A warp's halving tree as an xor butterfly: every lane ends with the tree's value. */
__device__ static float warp_max_f(float v)
{
    for (int o = TAT_WARP / 2; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffffu, v, o);
        v = other > v ? other : v;
    }
    return v;
}

__device__ static float warp_sum_f(float v)
{
    for (int o = TAT_WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- GEMM ------------------------------------------------------------------------------- */
/* fp32 unless TF32 was asked for: tf32=1 in a distillation section (tat_gpu_set_tf32) or
 * TAT_TF32=1 in the environment; then cuBLAS may round the operands to TF32 (10-bit mantissa)
 * on tensor cores. Only the plugin's products: Darknet's handle keeps its math mode. */
static int tat_tf32_cfg;

extern "C" void tat_gpu_set_tf32(int on) { tat_tf32_cfg = on; }

extern "C" int tat_gpu_tf32(void)
{
    const char *env = getenv("TAT_TF32");
    return tat_tf32_cfg || (env && !strcmp(env, "1"));
}

extern "C" void tat_gpu_gemm(tat_rowmajor_gemm g, const float *A, const float *B, float *C)
{
    tat_cublas_gemm c = tat_gemm_map(g);
    cublasOperation_t op_first = c.trans_first ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = c.trans_second ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (tat_gpu_tf32()) {
        TAT_BLAS_CHECK(cublasGemmStridedBatchedEx(
            blas_handle(), op_first, op_second, c.m, c.n, c.k, &c.alpha, tat_gemm_first(A, B),
            CUDA_R_32F, c.ld_first, c.stride_first, tat_gemm_second(A, B), CUDA_R_32F,
            c.ld_second, c.stride_second, &c.beta, C, CUDA_R_32F, c.ldc, c.stride_c, c.batch,
            CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT));
        return;
    }
    TAT_BLAS_CHECK(cublasSgemmStridedBatched(
        blas_handle(), op_first, op_second, c.m, c.n, c.k, &c.alpha, tat_gemm_first(A, B),
        c.ld_first, c.stride_first, tat_gemm_second(A, B), c.ld_second, c.stride_second, &c.beta, C,
        c.ldc, c.stride_c, c.batch));
}

/* ---- element-wise kernels --------------------------------------------------------------- */
/* The index-dividing kernels are templates over the index type I: unsigned int when every
 * buffer they index has fewer than 2^31 elements (tat_index_fits_32; then i + the grid stride
 * cannot wrap either), size_t otherwise. These overloads pick the matching instantiation of
 * tat_kernel_index_body.h. */
__device__ static inline size_t patch_map_index(tat_patch_geom g, size_t i) { return tat_patch_map_index(g, i); }
__device__ static inline unsigned int patch_map_index(tat_patch_geom g, unsigned int i) { return tat_patch_map_index_32(g, i); }
__device__ static inline float pool_forward_value(tat_pool_geom g, const float *in, size_t o) { return tat_pool_forward_value(g, in, o); }
__device__ static inline float pool_forward_value(tat_pool_geom g, const float *in, unsigned int o) { return tat_pool_forward_value_32(g, in, o); }
__device__ static inline long long pool_window_of(tat_pool_geom g, size_t i) { return tat_pool_window_of(g, i); }
__device__ static inline long long pool_window_of(tat_pool_geom g, unsigned int i) { return tat_pool_window_of_32(g, i); }
__device__ static inline float im2col_value(tat_conv_geom g, const float *in, size_t i) { return tat_im2col_value(g, in, i); }
__device__ static inline float im2col_value(tat_conv_geom g, const float *in, unsigned int i) { return tat_im2col_value_32(g, in, i); }
__device__ static inline float col2im_value(tat_conv_geom g, const float *col, size_t i) { return tat_col2im_value(g, col, i); }
__device__ static inline float col2im_value(tat_conv_geom g, const float *col, unsigned int i) { return tat_col2im_value_32(g, col, i); }
__device__ static inline size_t stack_cm_index(tat_stack_geom g, size_t i) { return tat_stack_cm_index(g, i); }
__device__ static inline unsigned int stack_cm_index(tat_stack_geom g, unsigned int i) { return tat_stack_cm_index_32(g, i); }
__device__ static inline void dscore_element(float *ds, const float *a, const float *drow, float two_w, int N, size_t i) { tat_dscore_element(ds, a, drow, two_w, N, i); }
__device__ static inline void dscore_element(float *ds, const float *a, const float *drow, float two_w, int N, unsigned int i) { tat_dscore_element_32(ds, a, drow, two_w, N, i); }

#define TAT_GRID_STRIDE_I(I, i, n) \
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (I)gridDim.x * blockDim.x)

/* kernel<unsigned int> or kernel<size_t> over n items, the arguments then n */
#define TAT_LAUNCH_INDEXED(kernel, fits32, n, ...)                                               \
    do {                                                                                         \
        if (fits32)                                                                              \
            kernel<unsigned int><<<tat_blocks(n), TAT_THREADS, 0, tat_stream()>>>(__VA_ARGS__, (unsigned int)(n)); \
        else                                                                                     \
            kernel<size_t><<<tat_blocks(n), TAT_THREADS, 0, tat_stream()>>>(__VA_ARGS__, (size_t)(n));            \
        TAT_LAUNCH_CHECK();                                                                      \
    } while (0)

template <typename I>
__global__ static void patch_gather_kernel(float *blocks, const float *x, tat_patch_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) blocks[i] = x[patch_map_index(g, i)];
}

/* Blocks never overlap: each map element has at most one writer, no atomics needed. */
template <typename I>
__global__ static void patch_scatter_add_kernel(float *d_x, const float *d_blocks,
                                                tat_patch_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) d_x[patch_map_index(g, i)] += d_blocks[i];
}

template <typename I>
__global__ static void avgpool_forward_kernel(float *out, const float *in, tat_pool_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, o, n) out[o] = pool_forward_value(g, in, o);
}

template <typename I>
__global__ static void avgpool_backward_kernel(float *d_in, const float *d_out, tat_pool_geom g, I n)
{
    float inv = 1.f / (g.kh * g.kw);
    TAT_GRID_STRIDE_I(I, i, n) {
        long long o = pool_window_of(g, i);
        if (o >= 0) d_in[i] += d_out[o] * inv;
    }
}

template <typename I>
__global__ static void im2col_kernel(float *col, const float *in, tat_conv_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) col[i] = im2col_value(g, in, i);
}

template <typename I>
__global__ static void stack_to_nchw_kernel(float *nchw, const float *cm, tat_stack_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) nchw[i] = cm[stack_cm_index(g, i)];
}

template <typename I>
__global__ static void stack_to_cm_kernel(float *cm, const float *nchw, tat_stack_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) cm[stack_cm_index(g, i)] = nchw[i];
}

template <typename I>
__global__ static void col2im_add_kernel(float *d_in, const float *col, tat_conv_geom g, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) d_in[i] += col2im_value(g, col, i);
}

template <typename I>
__global__ static void dscore_kernel(float *ds, const float *a, const float *drow, float two_w,
                                     int N, I n)
{
    TAT_GRID_STRIDE_I(I, i, n) dscore_element(ds, a, drow, two_w, N, i);
}

/* Streaming attention, fused: a warp per query row (forward, dQ) or key column (dK, dV),
 * TAT_FLASH_ROWS warps to a block; the lanes' weights of a tile go through shared memory to
 * the lanes that own the channels (tat_kernel_index.h, "fused"). */
__global__ static void flash_forward_kernel(float *o, float *lse, tat_flash_args f)
{
    __shared__ float p_sh[TAT_FLASH_ROWS][TAT_WARP];
    int lane = threadIdx.x % TAT_WARP, w = threadIdx.x / TAT_WARP, j0;
    size_t row = (size_t)blockIdx.x * TAT_FLASH_ROWS + w, blk;
    float m = 0, l = 0;
    int i;
    if (row >= (size_t)f.n_blocks * f.N) return; /* the whole warp leaves together */
    blk = row / f.N, i = (int)(row % f.N);
    for (j0 = 0; j0 < f.N; j0 += TAT_WARP) {
        int first = j0 == 0, j = j0 + lane, valid = j < f.N, cnt = f.N - j0 < TAT_WARP ? f.N - j0 : TAT_WARP;
        float s = valid ? tat_flash_score(f.q, f.k, f.N, f.d, blk, i, j) : 0.f;
        float mx = warp_max_f(valid ? s : -3.402823466e38f), m_new = tat_flash_new_max(m, mx, first);
        float p = tat_flash_prob(s, valid, m_new), keep = tat_flash_rescale(m, m_new, first);
        l = l * keep + warp_sum_f(p);
        m = m_new;
        p_sh[w][lane] = p;
        __syncwarp();
        tat_flash_mix(o, f.v, p_sh[w], cnt, keep, first, f.N, f.d, blk, i, j0, lane, TAT_WARP);
        __syncwarp(); /* p_sh is rewritten by the next tile */
    }
    tat_flash_finish(o, lse, m, l, f.N, f.d, blk, i, lane, TAT_WARP);
}

__global__ static void flash_query_grad_kernel(float *dq, tat_flash_args f)
{
    __shared__ float ds_sh[TAT_FLASH_ROWS][TAT_WARP];
    int lane = threadIdx.x % TAT_WARP, w = threadIdx.x / TAT_WARP, j0, i;
    size_t row = (size_t)blockIdx.x * TAT_FLASH_ROWS + w, blk;
    if (row >= (size_t)f.n_blocks * f.N) return;
    blk = row / f.N, i = (int)(row % f.N);
    for (j0 = 0; j0 < f.N; j0 += TAT_WARP) {
        int j = j0 + lane, cnt = f.N - j0 < TAT_WARP ? f.N - j0 : TAT_WARP;
        float a;
        ds_sh[w][lane] = j < f.N ? tat_flash_dscore(f, blk, i, j, &a) : 0.f;
        __syncwarp();
        tat_flash_mix(dq, f.k, ds_sh[w], cnt, 1.f, 0, f.N, f.d, blk, i, j0, lane, TAT_WARP);
        __syncwarp();
    }
}

__global__ static void flash_key_value_grad_kernel(float *dk, float *dv, tat_flash_args f)
{
    __shared__ float ds_sh[TAT_FLASH_ROWS][TAT_WARP], a_sh[TAT_FLASH_ROWS][TAT_WARP];
    int lane = threadIdx.x % TAT_WARP, w = threadIdx.x / TAT_WARP, i0, j;
    size_t col = (size_t)blockIdx.x * TAT_FLASH_ROWS + w, blk;
    if (col >= (size_t)f.n_blocks * f.N) return;
    blk = col / f.N, j = (int)(col % f.N);
    for (i0 = 0; i0 < f.N; i0 += TAT_WARP) {
        int i = i0 + lane, cnt = f.N - i0 < TAT_WARP ? f.N - i0 : TAT_WARP;
        float a = 0, ds = i < f.N ? tat_flash_dscore(f, blk, i, j, &a) : 0.f;
        ds_sh[w][lane] = ds;
        a_sh[w][lane] = f.two_w * a; /* dV_j += sum_i A_ij dO_i, dO = 2w R */
        __syncwarp();
        tat_flash_mix(dv, f.r, a_sh[w], cnt, 1.f, 0, f.N, f.d, blk, j, i0, lane, TAT_WARP);
        if (dk) tat_flash_mix(dk, f.q, ds_sh[w], cnt, 1.f, 0, f.N, f.d, blk, j, i0, lane, TAT_WARP);
        __syncwarp();
    }
}

/* TAT_RESID_ROWS rows (x) by TAT_RESID_SPLIT channel shares (y), combined in shared memory. */
__global__ static void residual_kernel(float *o, const float *t, float *drow, double *sse_pos,
                                       int N, int d, size_t rows)
{
    __shared__ float dred[TAT_RESID_SPLIT][TAT_RESID_ROWS];
    __shared__ double sred[TAT_RESID_SPLIT][TAT_RESID_ROWS];
    int tx = threadIdx.x, ty = threadIdx.y, s;
    size_t row = (size_t)blockIdx.x * TAT_RESID_ROWS + tx;
    float D = 0;
    double sse = 0;
    if (row < rows) D = tat_residual_partial(o, t, row, N, d, ty, TAT_RESID_SPLIT, &sse);
    dred[ty][tx] = D;
    sred[ty][tx] = sse;
    __syncthreads();
    for (s = TAT_RESID_SPLIT / 2; s > 0; s >>= 1) {
        if (ty < s) {
            dred[ty][tx] += dred[ty + s][tx];
            sred[ty][tx] += sred[ty + s][tx];
        }
        __syncthreads();
    }
    if (ty == 0 && row < rows) {
        drow[row] = dred[0][tx];
        sse_pos[row] = sred[0][tx];
    }
}

__global__ static void sse_grad_kernel(float *d_x, const float *diff, float two_w, size_t n)
{
    TAT_GRID_STRIDE(i, n) tat_sse_grad_element(d_x, diff, two_w, i);
}

__global__ static void kd_grad_kernel(float *d_s, const float *p_s, const float *p_t, float scale,
                                      size_t n)
{
    TAT_GRID_STRIDE(i, n) tat_kd_grad_element(d_s, p_s, p_t, scale, i);
}

/* ---- reduction kernels ------------------------------------------------------------------ */
/* BatchNorm: a grid of statistics groups (x) by splits (y); block (gi, s) takes chunk s of
 * group gi (tat_bn_chunk_range). Forward: the chunks' sums, then every block combines its
 * group's sums in split order (the mean) and writes its chunk's squared deviations, then the
 * same for those and the normalisation. partials: groups x splits sums, then as many squared
 * deviations. */
__global__ static void bn_sum_kernel(double *partials, const float *in, tat_bn_geom g)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    int gi = blockIdx.x, s = blockIdx.y, splits = gridDim.y;
    size_t j0, j1;
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    double v = block_sum(tat_bn_partial_sum(g, in, gi, j0, j1, threadIdx.x, blockDim.x), red);
    if (threadIdx.x == 0) partials[(size_t)gi * splits + s] = v;
}

__global__ static void bn_sqdev_kernel(double *partials, const float *in, tat_bn_geom g)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    int gi = blockIdx.x, groups = gridDim.x, s = blockIdx.y, splits = gridDim.y;
    size_t j0, j1;
    double mean = tat_bn_combine(partials + (size_t)gi * splits, splits, 1) / (double)tat_bn_count(g);
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    double v = block_sum(tat_bn_partial_sqdev(g, in, gi, mean, j0, j1, threadIdx.x, blockDim.x), red);
    if (threadIdx.x == 0) partials[((size_t)groups + gi) * splits + s] = v;
}

__global__ static void bn_normalize_kernel(float *out, float *x_hat, float *mean, float *inv_std,
                                           const float *in, const float *gamma,
                                           const float *beta, const double *partials,
                                           tat_bn_geom g)
{
    int gi = blockIdx.x, groups = gridDim.x, s = blockIdx.y, splits = gridDim.y;
    size_t j, j0, j1;
    double sum = tat_bn_combine(partials + (size_t)gi * splits, splits, 1);
    double sqdev = tat_bn_combine(partials + ((size_t)groups + gi) * splits, splits, 1);
    float m, is;
    tat_bn_stats(g, sum, sqdev, TAT_BN_EPS, &m, &is);
    if (s == 0 && threadIdx.x == 0) {
        mean[gi] = m;
        inv_std[gi] = is;
    }
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    for (j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        tat_bn_normalize(g, out, x_hat, in, gamma, beta, gi, m, is, j);
}

/* Backward: the chunks' (sum dy, sum dy x_hat) pairs, then d_in chunk by chunk from the
 * group's combined pairs, then one thread per channel adds its groups' pairs into d_gamma,
 * d_beta (tat_bn_param_grads: one writer per channel, a fixed order). */
__global__ static void bn_dsums_kernel(double *partials, const float *d_out, const float *x_hat,
                                       tat_bn_geom g)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    int gi = blockIdx.x, s = blockIdx.y, splits = gridDim.y;
    size_t j0, j1;
    double a, b;
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    tat_bn_partial_dsums(g, d_out, x_hat, gi, j0, j1, threadIdx.x, blockDim.x, &a, &b);
    a = block_sum(a, red);
    b = block_sum(b, red);
    if (threadIdx.x == 0) {
        partials[((size_t)gi * splits + s) * 2] = a;
        partials[((size_t)gi * splits + s) * 2 + 1] = b;
    }
}

__global__ static void bn_dinput_kernel(float *d_in, const float *d_out, const float *x_hat,
                                        const float *inv_std, const float *gamma,
                                        const double *partials, tat_bn_geom g, int assign)
{
    int gi = blockIdx.x, s = blockIdx.y, splits = gridDim.y;
    const double *p = partials + (size_t)gi * splits * 2;
    double s_dy = tat_bn_combine(p, splits, 2), s_dy_xh = tat_bn_combine(p + 1, splits, 2);
    size_t j, j0, j1;
    tat_bn_chunk_range(g, splits, s, &j0, &j1);
    for (j = j0 + threadIdx.x; j < j1; j += blockDim.x)
        tat_bn_backward_element(g, d_in, d_out, x_hat, gamma, inv_std, gi, s_dy, s_dy_xh, assign, j);
}

__global__ static void bn_param_grads_kernel(float *d_gamma, float *d_beta, const double *partials,
                                             int splits, tat_bn_geom g)
{
    int ch = blockIdx.x * blockDim.x + threadIdx.x;
    if (ch < g.c) tat_bn_param_grads(g, partials, splits, ch, d_gamma, d_beta);
}

/* Short rows: one warp per row, TAT_REDUCE_THREADS / TAT_WARP rows per block. */
__global__ static void softmax_rows_warp_kernel(float *s, int rows, int cols)
{
    int lane = threadIdx.x % TAT_WARP;
    size_t r = (size_t)blockIdx.x * (blockDim.x / TAT_WARP) + threadIdx.x / TAT_WARP;
    float *row, mx, sum;
    if (r >= (size_t)rows) return; /* the whole warp leaves together */
    row = s + r * cols;
    mx = warp_max_f(tat_softmax_partial_max(row, cols, lane, TAT_WARP));
    sum = warp_sum_f(tat_softmax_partial_expsum(row, cols, mx, lane, TAT_WARP));
    tat_softmax_write(row, cols, mx, sum, lane, TAT_WARP);
}

/* Long rows: one block per row. */
__global__ static void softmax_rows_kernel(float *s, int cols)
{
    __shared__ float red[TAT_REDUCE_THREADS];
    float *row = s + (size_t)blockIdx.x * cols;
    int tid = threadIdx.x, nt = blockDim.x;
    float mx = block_max(tat_softmax_partial_max(row, cols, tid, nt), red);
    float sum = block_sum(tat_softmax_partial_expsum(row, cols, mx, tid, nt), red);
    tat_softmax_write(row, cols, mx, sum, tid, nt);
}

/* A grid-stride share of n doubles per thread, one partial per block; block 0 zeroes the
 * partials past the grid (tat_reduce_blocks). One block (the grid of 1) sums into *out. */
__global__ static void sum_kernel(double *out, const double *x, size_t n)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, nt = (size_t)gridDim.x * blockDim.x;
    double s = block_sum(tat_partial_sum_d(x, n, tid, nt), red);
    if (threadIdx.x == 0) out[blockIdx.x] = s;
    if (blockIdx.x == 0 && gridDim.x > 1)
        for (size_t i = gridDim.x + threadIdx.x; i < TAT_SUM_BLOCKS; i += blockDim.x) out[i] = 0;
}

/* tat_reduce_blocks blocks, one partial sum of squares each, the rest of the TAT_SUM_BLOCKS
 * partials zeroed. */
__global__ static void sse_kernel(float *diff, const float *x, const float *target, size_t n,
                                  double *partials)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x, nt = (size_t)gridDim.x * blockDim.x;
    double s = block_sum(tat_sse_partial(diff, x, target, n, tid, nt), red);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
    if (blockIdx.x == 0)
        for (size_t i = gridDim.x + threadIdx.x; i < TAT_SUM_BLOCKS; i += blockDim.x) partials[i] = 0;
}

/* Adam / AdamW, the whole step of one array in one kernel. */
__global__ static void adam_kernel(float *w, float *d, float *m, float *v, tat_adam_step a, size_t n)
{
    TAT_GRID_STRIDE(i, n) tat_adam_element(w, d, m, v, a, i);
}

/* One block per row of logits: both log-normalisers, the softmaxes and the row's KL. */
__global__ static void kd_rows_kernel(float *p_s, float *p_t, const float *s, const float *t,
                                      int n, float temperature, double *kl_rows)
{
    __shared__ double red[TAT_REDUCE_THREADS];
    size_t off = (size_t)blockIdx.x * n;
    int tid = threadIdx.x, nt = blockDim.x;
    double ms = block_max(tat_kd_partial_max(s + off, n, temperature, tid, nt), red);
    double mt = block_max(tat_kd_partial_max(t + off, n, temperature, tid, nt), red);
    double zs = ms + log(block_sum(tat_kd_partial_expsum(s + off, n, temperature, ms, tid, nt), red));
    double zt = mt + log(block_sum(tat_kd_partial_expsum(t + off, n, temperature, mt, tid, nt), red));
    double kl = block_sum(tat_kd_partial_kl(p_s + off, p_t + off, s + off, t + off, n,
                                              temperature, zs, zt, tid, nt), red);
    if (tid == 0) kl_rows[blockIdx.x] = kl;
}

/* ---- launchers -------------------------------------------------------------------------- */
extern "C" void tat_gpu_patch_gather(float *blocks, const float *x, tat_patch_geom g)
{
    size_t n = tat_patch_block_elements(g), map = (size_t)g.batch * g.c * g.h * g.w;
    TAT_LAUNCH_INDEXED(patch_gather_kernel, tat_index_fits_32(map), n, blocks, x, g);
}

extern "C" void tat_gpu_patch_scatter_add(float *d_x, const float *d_blocks, tat_patch_geom g)
{
    size_t n = tat_patch_block_elements(g), map = (size_t)g.batch * g.c * g.h * g.w;
    TAT_LAUNCH_INDEXED(patch_scatter_add_kernel, tat_index_fits_32(map), n, d_x, d_blocks, g);
}

extern "C" void tat_gpu_avgpool_forward(float *out, const float *in, tat_pool_geom g)
{
    size_t n = tat_pool_out_elements(g), in_n = (size_t)g.planes * g.h * g.w;
    TAT_LAUNCH_INDEXED(avgpool_forward_kernel, tat_index_fits_32(in_n), n, out, in, g);
}

extern "C" void tat_gpu_avgpool_backward(float *d_in, const float *d_out, tat_pool_geom g)
{
    size_t n = (size_t)g.planes * g.h * g.w;
    TAT_LAUNCH_INDEXED(avgpool_backward_kernel, tat_index_fits_32(n), n, d_in, d_out, g);
}

extern "C" void tat_gpu_im2col(float *col, const float *in, tat_conv_geom g)
{
    size_t n = tat_col_elements(g);
    TAT_LAUNCH_INDEXED(im2col_kernel, tat_index_fits_32(n), n, col, in, g);
}

static void stack_to_nchw_launch(float *nchw, const float *cm, tat_stack_geom g)
{
    size_t n = tat_stack_elements(g);
    TAT_LAUNCH_INDEXED(stack_to_nchw_kernel, tat_index_fits_32(n), n, nchw, cm, g);
}

static void stack_to_cm_launch(float *cm, const float *nchw, tat_stack_geom g)
{
    size_t n = tat_stack_elements(g);
    TAT_LAUNCH_INDEXED(stack_to_cm_kernel, tat_index_fits_32(n), n, cm, nchw, g);
}

extern "C" void tat_gpu_col2im_add(float *d_in, const float *col, tat_conv_geom g)
{
    size_t n = (size_t)g.batch * g.c * g.h * g.w;
    TAT_LAUNCH_INDEXED(col2im_add_kernel, tat_index_fits_32(tat_col_elements(g)), n, d_in, col, g);
}

extern "C" void tat_gpu_batchnorm_forward(float *out, float *x_hat, float *mean, float *inv_std,
                                          const float *in, const float *gamma, const float *beta,
                                          tat_bn_geom g)
{
    int splits = tat_bn_splits(g, tat_sm_count()), groups = tat_bn_groups(g);
    double *partials = tat_gpu_scratch(2 * (size_t)groups * splits);
    dim3 grid(groups, splits); /* groups on x: up to 2^31 - 1 of them */
    bn_sum_kernel<<<grid, TAT_REDUCE_THREADS, 0, tat_stream()>>>(partials, in, g);
    TAT_LAUNCH_CHECK();
    bn_sqdev_kernel<<<grid, TAT_REDUCE_THREADS, 0, tat_stream()>>>(partials, in, g);
    TAT_LAUNCH_CHECK();
    bn_normalize_kernel<<<grid, TAT_REDUCE_THREADS, 0, tat_stream()>>>(out, x_hat, mean, inv_std,
                                                                       in, gamma, beta, partials, g);
    TAT_LAUNCH_CHECK();
}

extern "C" void tat_gpu_batchnorm_backward(float *d_in, float *d_gamma, float *d_beta,
                                           const float *d_out, const float *x_hat,
                                           const float *inv_std, const float *gamma,
                                           tat_bn_geom g, int assign)
{
    int splits = tat_bn_splits(g, tat_sm_count()), groups = tat_bn_groups(g);
    double *partials = tat_gpu_scratch(2 * (size_t)groups * splits);
    dim3 grid(groups, splits); /* groups on x: up to 2^31 - 1 of them */
    bn_dsums_kernel<<<grid, TAT_REDUCE_THREADS, 0, tat_stream()>>>(partials, d_out, x_hat, g);
    TAT_LAUNCH_CHECK();
    if (d_in) {
        bn_dinput_kernel<<<grid, TAT_REDUCE_THREADS, 0, tat_stream()>>>(d_in, d_out, x_hat, inv_std,
                                                                        gamma, partials, g, assign);
        TAT_LAUNCH_CHECK();
    }
    bn_param_grads_kernel<<<(g.c + TAT_THREADS - 1) / TAT_THREADS, TAT_THREADS, 0, tat_stream()>>>(
        d_gamma, d_beta, partials, splits, g);
    TAT_LAUNCH_CHECK();
}

extern "C" void tat_gpu_adam_update(float *w, float *d, float *m, float *v, float B1, float B2,
                                    float eps, float decay, float rate, int n, int batch, int t,
                                    int decoupled)
{
    tat_adam_step a = tat_adam_step_of(B1, B2, eps, decay, rate, batch, t, decoupled);
    adam_kernel<<<tat_blocks((size_t)n), TAT_THREADS, 0, tat_stream()>>>(w, d, m, v, a, (size_t)n);
    TAT_LAUNCH_CHECK();
}

extern "C" void tat_gpu_softmax_rows(float *s, int rows, int cols)
{
    if (tat_softmax_row_threads(cols) == TAT_WARP) {
        int per_block = TAT_REDUCE_THREADS / TAT_WARP;
        softmax_rows_warp_kernel<<<(rows + per_block - 1) / per_block, TAT_REDUCE_THREADS, 0, tat_stream()>>>(s, rows, cols);
    } else {
        softmax_rows_kernel<<<rows, TAT_REDUCE_THREADS, 0, tat_stream()>>>(s, cols);
    }
    TAT_LAUNCH_CHECK();
}

/* ---- embedding -------------------------------------------------------------------------- */
extern "C" void tat_gpu_embedding_push(tat_gpu_embedding *g, const tat_embedding *e)
{
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize;
    TAT_CUDA_CHECK(cudaMemcpy(g->weights, e->weights, nw * sizeof(float), cudaMemcpyHostToDevice));
    TAT_CUDA_CHECK(cudaMemcpy(g->scales, e->scales, e->out_c * sizeof(float), cudaMemcpyHostToDevice));
    TAT_CUDA_CHECK(cudaMemcpy(g->biases, e->biases, e->out_c * sizeof(float), cudaMemcpyHostToDevice));
}

extern "C" void tat_gpu_embedding_pull(const tat_gpu_embedding *g, tat_embedding *e)
{
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize;
    TAT_CUDA_CHECK(cudaMemcpy(e->weights, g->weights, nw * sizeof(float), cudaMemcpyDeviceToHost));
    TAT_CUDA_CHECK(cudaMemcpy(e->scales, g->scales, e->out_c * sizeof(float), cudaMemcpyDeviceToHost));
    TAT_CUDA_CHECK(cudaMemcpy(e->biases, g->biases, e->out_c * sizeof(float), cudaMemcpyDeviceToHost));
}

extern "C" void tat_gpu_embeddings_init(tat_gpu_embedding **g, const tat_embedding *const *e,
                                        int n, int batch, int h, int w)
{
    size_t nw = (size_t)e[0]->out_c * e[0]->in_c * e[0]->ksize * e[0]->ksize;
    size_t nout = (size_t)batch * e[0]->out_c * h * w;
    /* the arrays the stacked product reads and writes: one allocation each for the stack */
    float *weights = tat_gpu_alloc(n * nw), *weight_grads = tat_gpu_alloc(n * nw);
    float *x_hat = tat_gpu_alloc(n * nout), *out = tat_gpu_alloc(n * nout);
    int i;
    for (i = 0; i < n; ++i) {
        tat_gpu_embedding *d = g[i];
        d->in_c = e[i]->in_c;
        d->out_c = e[i]->out_c;
        d->ksize = e[i]->ksize;
        d->weights = weights + i * nw;
        d->weight_grads = weight_grads + i * nw;
        d->x_hat = x_hat + i * nout;
        d->out = out + i * nout;
        d->scales = tat_gpu_alloc(d->out_c);
        d->biases = tat_gpu_alloc(d->out_c);
        d->scale_grads = tat_gpu_alloc(d->out_c);
        d->bias_grads = tat_gpu_alloc(d->out_c);
        d->out_grad = tat_gpu_alloc(nout);
        d->mean = tat_gpu_alloc((size_t)batch * d->out_c);
        d->inv_std = tat_gpu_alloc((size_t)batch * d->out_c);
        /* moments of the device's parameters, which the device updates */
        d->adam_m = e[i]->adam_m ? tat_gpu_alloc(tat_embedding_num_params(e[i])) : 0;
        d->adam_v = e[i]->adam_v ? tat_gpu_alloc(tat_embedding_num_params(e[i])) : 0;
        tat_gpu_embedding_push(d, e[i]);
    }
}

extern "C" void tat_gpu_embeddings_free(tat_gpu_embedding **g, int n)
{
    int i;
    tat_gpu_free(g[0]->weights);
    tat_gpu_free(g[0]->weight_grads);
    tat_gpu_free(g[0]->x_hat);
    tat_gpu_free(g[0]->out);
    for (i = 0; i < n; ++i) {
        tat_gpu_free(g[i]->scales);
        tat_gpu_free(g[i]->biases);
        tat_gpu_free(g[i]->scale_grads);
        tat_gpu_free(g[i]->bias_grads);
        tat_gpu_free(g[i]->out_grad);
        tat_gpu_free(g[i]->mean);
        tat_gpu_free(g[i]->inv_std);
        tat_gpu_free(g[i]->adam_m);
        tat_gpu_free(g[i]->adam_v);
        memset(g[i], 0, sizeof(*g[i]));
    }
}

extern "C" void tat_gpu_embedding_init(tat_gpu_embedding *g, const tat_embedding *e, int batch,
                                       int h, int w)
{
    tat_gpu_embeddings_init(&g, &e, 1, batch, h, w);
}

extern "C" void tat_gpu_embedding_free(tat_gpu_embedding *g) { tat_gpu_embeddings_free(&g, 1); }

extern "C" size_t tat_gpu_conv_workspace_floats(int batch, int in_c, int h, int w, int ksize)
{
    return (size_t)batch * in_c * ksize * ksize * h * w;
}

/* ---- the primitives as tat_gpu_steps.h sees them ----------------------------------------- */
static void residual_launch(float *o, const float *t, float *drow, double *sse_pos, int N, int d,
                            size_t rows)
{
    dim3 threads(TAT_RESID_ROWS, TAT_RESID_SPLIT);
    residual_kernel<<<(unsigned int)((rows + TAT_RESID_ROWS - 1) / TAT_RESID_ROWS), threads, 0, tat_stream()>>>(
        o, t, drow, sse_pos, N, d, rows);
    TAT_LAUNCH_CHECK();
}

/* The sum on tat_reduce_blocks blocks, then (several blocks) their partials on one; the copy
 * and its event on the handle's stream. */
static void loss_start(tat_gpu_loss *l, const double *x, size_t n)
{
    cudaStream_t st = tat_stream();
    int blocks = tat_reduce_blocks(n, tat_sm_count());
    if (blocks > 1) {
        sum_kernel<<<blocks, TAT_REDUCE_THREADS, 0, st>>>(l->partials, x, n);
        TAT_LAUNCH_CHECK();
        x = l->partials;
        n = TAT_SUM_BLOCKS;
    }
    sum_kernel<<<1, TAT_REDUCE_THREADS, 0, st>>>(l->device_sum, x, n);
    TAT_LAUNCH_CHECK();
    TAT_CUDA_CHECK(cudaMemcpyAsync(l->host_sum, l->device_sum, sizeof(double),
                                   cudaMemcpyDeviceToHost, st));
    TAT_CUDA_CHECK(cudaEventRecord((cudaEvent_t)l->ready, st));
}

static void sse_launch(float *diff, const float *x, const float *target, size_t n, double *partials)
{
    sse_kernel<<<tat_reduce_blocks(n, tat_sm_count()), TAT_REDUCE_THREADS, 0, tat_stream()>>>(
        diff, x, target, n, partials);
    TAT_LAUNCH_CHECK();
}

static void sse_grad_launch(float *d_x, const float *diff, float two_w, size_t n)
{
    sse_grad_kernel<<<tat_blocks(n), TAT_THREADS, 0, tat_stream()>>>(d_x, diff, two_w, n);
    TAT_LAUNCH_CHECK();
}

static void kd_rows_launch(float *p_s, float *p_t, const float *s, const float *t, int rows, int n,
                           float temperature, double *kl_rows)
{
    kd_rows_kernel<<<rows, TAT_REDUCE_THREADS, 0, tat_stream()>>>(p_s, p_t, s, t, n, temperature, kl_rows);
    TAT_LAUNCH_CHECK();
}

static void kd_grad_launch(float *d_s, const float *p_s, const float *p_t, float scale, size_t n)
{
    kd_grad_kernel<<<tat_blocks(n), TAT_THREADS, 0, tat_stream()>>>(d_s, p_s, p_t, scale, n);
    TAT_LAUNCH_CHECK();
}

static void dscore_launch(float *ds, const float *a, const float *drow, float two_w, int N, size_t n)
{
    TAT_LAUNCH_INDEXED(dscore_kernel, tat_index_fits_32(n), n, ds, a, drow, two_w, N);
}

static void zero_launch(float *x, size_t n)
{
    TAT_CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(float), tat_stream()));
}

static unsigned int flash_blocks(tat_flash_args f)
{
    return (unsigned int)(((size_t)f.n_blocks * f.N + TAT_FLASH_ROWS - 1) / TAT_FLASH_ROWS);
}

static void flash_forward_launch(float *o, float *lse, tat_flash_args f)
{
    flash_forward_kernel<<<flash_blocks(f), TAT_FLASH_ROWS * TAT_WARP, 0, tat_stream()>>>(o, lse, f);
    TAT_LAUNCH_CHECK();
}

static void flash_query_grad_launch(float *dq, tat_flash_args f)
{
    flash_query_grad_kernel<<<flash_blocks(f), TAT_FLASH_ROWS * TAT_WARP, 0, tat_stream()>>>(dq, f);
    TAT_LAUNCH_CHECK();
}

static void flash_key_value_grad_launch(float *dk, float *dv, tat_flash_args f)
{
    flash_key_value_grad_kernel<<<flash_blocks(f), TAT_FLASH_ROWS * TAT_WARP, 0, tat_stream()>>>(
        dk, dv, f);
    TAT_LAUNCH_CHECK();
}

static const tat_gpu_ops gpu_ops = {
    .gemm = tat_gpu_gemm,
    .patch_gather = tat_gpu_patch_gather,
    .patch_scatter_add = tat_gpu_patch_scatter_add,
    .avgpool_forward = tat_gpu_avgpool_forward,
    .avgpool_backward = tat_gpu_avgpool_backward,
    .im2col = tat_gpu_im2col,
    .stack_to_nchw = stack_to_nchw_launch,
    .stack_to_cm = stack_to_cm_launch,
    .col2im_add = tat_gpu_col2im_add,
    .batchnorm_forward = tat_gpu_batchnorm_forward,
    .batchnorm_backward = tat_gpu_batchnorm_backward,
    .softmax_rows = tat_gpu_softmax_rows,
    .residual = residual_launch,
    .loss_start = loss_start,
    .loss_wait = tat_gpu_loss_wait,
    .dscore = dscore_launch,
    .zero = zero_launch,
    .sse = sse_launch,
    .sse_grad = sse_grad_launch,
    .kd_rows = kd_rows_launch,
    .kd_grad = kd_grad_launch,
    .flash_forward = flash_forward_launch,
    .flash_query_grad = flash_query_grad_launch,
    .flash_key_value_grad = flash_key_value_grad_launch,
};

extern "C" void tat_gpu_embedding_forward(tat_gpu_embedding *g, const float *in, float *workspace,
                                          int batch, int h, int w, int per_image)
{
    tat_steps_embedding_forward(&gpu_ops, g, in, workspace, batch, h, w, per_image);
}

extern "C" void tat_gpu_embedding_backward(tat_gpu_embedding *g, float *d_in, const float *in,
                                           float *workspace, int batch, int h, int w,
                                           int per_image)
{
    tat_steps_embedding_backward(&gpu_ops, g, d_in, in, workspace, batch, h, w, per_image);
}

extern "C" void tat_gpu_embeddings_forward(tat_gpu_embedding **g, int n, const float *in,
                                           float *workspace, int batch, int h, int w,
                                           int per_image)
{
    tat_steps_embeddings_forward(&gpu_ops, g, n, in, workspace, batch, h, w, per_image);
}

extern "C" void tat_gpu_embeddings_backward(tat_gpu_embedding **g, int n, float *d_in,
                                            const float *in, float *workspace, int batch, int h,
                                            int w, int per_image)
{
    tat_steps_embeddings_backward(&gpu_ops, g, n, d_in, in, workspace, batch, h, w, per_image);
}

/* ---- term ------------------------------------------------------------------------------- */
extern "C" int tat_gpu_term_stream_tile(const tat_term_geom *geom, int streaming)
{
    size_t free_bytes = 0, total_bytes = 0;
    TAT_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    /* the rest: the term's other buffers, the networks' activations, later layers' terms */
    return tat_term_stream_tile_for_budget(geom, 2, free_bytes / 4, TAT_GPU_STREAM_TILE, !streaming);
}

extern "C" void tat_gpu_term_init(tat_gpu_term *g, const tat_term_geom *geom)
{
    size_t blk = tat_steps_block_floats(geom), nn = tat_steps_attention_floats(geom);
    memset(g, 0, sizeof(*g));
    g->geom = *geom;
    if (!geom->direct) g->blocks = tat_gpu_alloc(7 * blk);
    g->attn = tat_gpu_alloc(nn);
    g->ds = tat_gpu_alloc(nn);
    if (geom->stream_tile) {
        g->lse = tat_gpu_alloc((size_t)geom->n_blocks * geom->N);
    }
    g->resid = tat_gpu_alloc(blk);
    g->drow = tat_gpu_alloc((size_t)geom->n_blocks * geom->N);
    g->sse_pos = tat_gpu_alloc_doubles((size_t)geom->n_blocks * geom->N);
    tat_gpu_loss_init(&g->loss);
}

extern "C" void tat_gpu_term_free(tat_gpu_term *g)
{
    tat_gpu_free(g->blocks);
    tat_gpu_free(g->attn);
    tat_gpu_free(g->ds);
    tat_gpu_free(g->lse);
    tat_gpu_free(g->resid);
    tat_gpu_free(g->drow);
    tat_gpu_free(g->sse_pos);
    tat_gpu_loss_free(&g->loss);
    memset(g, 0, sizeof(*g));
}

extern "C" void tat_gpu_term_forward(tat_gpu_term *g, const float *q, const float *k,
                                     const float *v, const float *target)
{
    tat_steps_term_forward(&gpu_ops, g, q, k, v, target);
}

extern "C" void tat_gpu_term_backward(tat_gpu_term *g, float *d_q, float *d_k, float *d_v, float w)
{
    tat_steps_term_backward(&gpu_ops, g, d_q, d_k, d_v, w);
}

/* ---- the baselines ------------------------------------------------------------------------ */
extern "C" void tat_gpu_fitnet_forward(tat_gpu_embedding *p, const float *student,
                                       const float *teacher, float *diff, double *partials,
                                       tat_gpu_loss *loss, int batch, int h, int w, int per_image)
{
    tat_steps_fitnet_forward(&gpu_ops, p, student, teacher, diff, partials, loss, batch, h, w,
                             per_image);
}

extern "C" void tat_gpu_fitnet_backward(tat_gpu_embedding *p, float *d_student,
                                        const float *student, const float *diff,
                                        float *workspace, float w, int batch, int h, int w_map,
                                        int per_image)
{
    tat_steps_fitnet_backward(&gpu_ops, p, d_student, student, diff, workspace, w, batch, h,
                              w_map, per_image);
}

extern "C" void tat_gpu_kd_forward(float *p_s, float *p_t, double *kl_rows, tat_gpu_loss *loss,
                                   const float *s, const float *t, int batch, int n,
                                   float temperature)
{
    tat_steps_kd_forward(&gpu_ops, p_s, p_t, kl_rows, loss, s, t, batch, n, temperature);
}

extern "C" void tat_gpu_kd_backward(float *d_s, const float *p_s, const float *p_t, int batch,
                                    int n, float temperature, float w)
{
    tat_steps_kd_backward(&gpu_ops, d_s, p_s, p_t, batch, n, temperature, w);
}
