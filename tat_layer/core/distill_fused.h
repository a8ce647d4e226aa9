#ifndef DISTILL_FUSED_H
#define DISTILL_FUSED_H
/*
 * Fused reductions for distributed training, independent of the transport: a list of tensors
 * (host or device arrays, never mixed in one list) is packed in order into buckets of at most
 * `bucket_floats`, each bucket is reduced (summed over the ranks, or broadcast from rank 0) by
 * the transport in one call, scaled, and unpacked. MPI on host buffers and NCCL on device
 * buffers differ only in the transport's functions. Plain C: no Darknet, no MPI.
 */
#include <stddef.h>
#include <stdint.h>

typedef struct {
    float *data;
    size_t n;
} tat_tensor;

typedef struct {
    tat_tensor *t;
    int n, cap;
} tat_tensor_list;

void tat_tensor_list_add(tat_tensor_list *l, float *data, size_t n); /* n == 0: ignored */
size_t tat_tensor_list_floats(const tat_tensor_list *l);
void tat_tensor_list_free(tat_tensor_list *l);

typedef struct {
    /* in place on buf[0..n): the sum over the ranks (all-reduce) or rank 0's values (broadcast) */
    void (*reduce)(float *buf, size_t n, void *ctx);
    void (*copy)(float *dst, const float *src, size_t n, void *ctx);
    void (*scale)(float *buf, size_t n, float s, void *ctx);
    void *ctx;
    float *bucket; /* bucket_floats floats, where the list's arrays live */
    size_t bucket_floats;
} tat_transport;

/* Packs, reduces, multiplies by `scale` (skipped when 1) and unpacks every tensor of the list;
 * a tensor may straddle two buckets. Returns the number of reduce calls made. */
int tat_fused_reduce(const tat_tensor_list *l, const tat_transport *t, float scale);

/* 64-bit FNV-1a over bytes, continued from h (start with TAT_HASH_START). */
#define TAT_HASH_START 14695981039346656037ULL
uint64_t tat_hash_bytes(uint64_t h, const void *p, size_t n);

/* The seed of one mini-batch's stream of images: a function of the run's seed and the
 * mini-batch's global index only (well mixed, so neighbouring indices give unrelated streams). */
unsigned tat_stream_seed(unsigned run_seed, uint64_t global_minibatch);

#endif
