/* The transport-independent part of distributed training (tat_layer/core/distill_fused.c), with a
 * stand-in transport that marks what it reduces: every float of every tensor must go through
 * exactly one reduce call, in a bucket of at most bucket_floats, scaled once and put back where
 * it came from, with tensors of odd sizes straddling bucket boundaries. Also: the mini-batch
 * stream seeds depend on the run's seed and the global index only, and differ between indices.
 * No MPI needed: the MPI and NCCL transports only supply the reduce, copy and scale functions.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <stdint.h>

#include "distill_fused.h"
#include "test_helpers.h"

typedef struct {
    int calls;
    size_t largest, total;
    int copies_of_zero_length;
} fake_stats;

/* "sum over 3 ranks that all hold x, plus one": 3x + 1, exact in float for small integers */
static void fake_reduce(float *buf, size_t n, void *ctx)
{
    fake_stats *s = ctx;
    size_t i;
    ++s->calls;
    if (n > s->largest) s->largest = n;
    s->total += n;
    for (i = 0; i < n; ++i) buf[i] = 3 * buf[i] + 1;
}

static void fake_copy(float *dst, const float *src, size_t n, void *ctx)
{
    fake_stats *s = ctx;
    if (!n) ++s->copies_of_zero_length;
    memcpy(dst, src, n * sizeof(float));
}

static void fake_scale(float *buf, size_t n, float k, void *ctx)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; ++i) buf[i] *= k;
}

/* Tensors of the given sizes, reduced through buckets of `bucket` floats. */
static void check_sizes(const char *name, const size_t *sizes, int n_tensors, size_t bucket, float scale)
{
    tat_tensor_list l = {0};
    fake_stats s = {0};
    tat_transport t = {.reduce = fake_reduce, .copy = fake_copy, .scale = fake_scale, .ctx = &s,
                       .bucket = test_alloc(bucket * sizeof(float)), .bucket_floats = bucket};
    float **orig = test_alloc(n_tensors * sizeof(float *)), **data = test_alloc(n_tensors * sizeof(float *));
    size_t total = 0, wrong = 0, i;
    int k, calls, expected_calls;
    for (k = 0; k < n_tensors; ++k) {
        data[k] = test_alloc((sizes[k] ? sizes[k] : 1) * sizeof(float));
        orig[k] = test_alloc((sizes[k] ? sizes[k] : 1) * sizeof(float));
        for (i = 0; i < sizes[k]; ++i) data[k][i] = orig[k][i] = (float)(total + i) - 7; /* each float unique */
        total += sizes[k];
        tat_tensor_list_add(&l, data[k], sizes[k]);
    }
    calls = tat_fused_reduce(&l, &t, scale);
    expected_calls = (int)((total + bucket - 1) / bucket);
    for (k = 0; k < n_tensors; ++k)
        for (i = 0; i < sizes[k]; ++i)
            wrong += data[k][i] != (3 * orig[k][i] + 1) * scale;
    report(wrong == 0 && calls == expected_calls && s.calls == calls && s.total == total &&
               s.largest <= bucket && tat_tensor_list_floats(&l) == total && s.copies_of_zero_length == 0,
           name, "%zu floats in %d tensors, buckets of %zu: %zu floats wrong, %d reduce calls (want %d), %zu floats reduced, largest bucket %zu, %d empty copies",
           total, n_tensors, bucket, wrong, calls, expected_calls, s.total, s.largest, s.copies_of_zero_length);
    for (k = 0; k < n_tensors; ++k) {
        free(data[k]);
        free(orig[k]);
    }
    free(data);
    free(orig);
    free(t.bucket);
    tat_tensor_list_free(&l);
}

static void test_fused_reduce(void)
{
    static const size_t odd[] = {7, 1, 13, 0, 29, 2, 64, 5};
    static const size_t one[] = {1000};
    /* one bucket for everything, as the Fashion-MNIST student takes */
    check_sizes("fused_one_bucket", odd, 8, 4096, 0.5f);
    /* tensors straddling boundaries: buckets smaller than some tensors, not dividing the total */
    check_sizes("fused_tensors_straddle_buckets", odd, 8, 10, 0.25f);
    /* a bucket of one float: the degenerate case of the same loop */
    check_sizes("fused_bucket_of_one", odd, 8, 1, 1.0f);
    /* one tensor larger than a bucket, split across several */
    check_sizes("fused_large_tensor_split", one, 1, 96, 0.5f);
    /* the total an exact multiple of the bucket */
    check_sizes("fused_exact_multiple", odd, 8, 11, 2.0f); /* 121 floats = 11 x 11 */
}

static void test_empty_list(void)
{
    tat_tensor_list l = {0};
    fake_stats s = {0};
    float bucket[4];
    tat_transport t = {.reduce = fake_reduce, .copy = fake_copy, .scale = fake_scale, .ctx = &s,
                       .bucket = bucket, .bucket_floats = 4};
    tat_tensor_list_add(&l, bucket, 0); /* ignored */
    report(tat_fused_reduce(&l, &t, 0.5f) == 0 && s.calls == 0 && l.n == 0, "fused_empty_list",
           "%d tensors, %d reduce calls", l.n, s.calls);
}

static void test_stream_seeds(void)
{
    /* 2 ranks x 1 mini-batch and 1 rank x 2 mini-batches name the same global indices, so the
       seeds must depend on (run seed, index) only: a pure function, checked for collisions */
    enum { N = 4096 };
    static unsigned seen[N];
    int i, j, collisions = 0, repeat_ok = 1;
    for (i = 0; i < N; ++i) {
        seen[i] = tat_stream_seed(5, (uint64_t)i);
        repeat_ok &= seen[i] == tat_stream_seed(5, (uint64_t)i);
    }
    for (i = 0; i < N; ++i)
        for (j = i + 1; j < N; ++j) collisions += seen[i] == seen[j];
    report(repeat_ok && collisions == 0, "stream_seeds_distinct_and_repeatable",
           "%d collisions among %d indices, repeatable %d", collisions, N, repeat_ok);
    report(tat_stream_seed(5, 0) != tat_stream_seed(6, 0) && tat_stream_seed(5, 1) != tat_stream_seed(6, 1),
           "stream_seeds_follow_the_run_seed", "seed 5 vs 6 at index 0: %u %u", tat_stream_seed(5, 0),
           tat_stream_seed(6, 0));
}

static void test_hash(void)
{
    float a[3] = {1, 2, 3}, b[3] = {1, 2, 3};
    uint64_t ha, hb;
    ha = tat_hash_bytes(TAT_HASH_START, a, sizeof a);
    hb = tat_hash_bytes(TAT_HASH_START, b, sizeof b);
    b[2] = nextafterf(3, 4); /* one bit */
    report(ha == hb && ha != tat_hash_bytes(TAT_HASH_START, b, sizeof b), "hash_sees_one_bit",
           "equal arrays %d, one-ulp change detected %d", ha == hb,
           ha != tat_hash_bytes(TAT_HASH_START, b, sizeof b));
}

int main(void)
{
    test_fused_reduce();
    test_empty_list();
    test_stream_seeds();
    test_hash();
    return test_exit_status();
}
