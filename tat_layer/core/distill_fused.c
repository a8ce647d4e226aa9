#include "distill_fused.h"
#include "tat_fail.h"

#include <stdio.h>
#include <stdlib.h>

void tat_tensor_list_add(tat_tensor_list *l, float *data, size_t n)
{
    if (!n) return;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 32;
        l->t = tat_realloc(l->t, l->cap, sizeof(*l->t));
    }
    l->t[l->n].data = data;
    l->t[l->n].n = n;
    ++l->n;
}

size_t tat_tensor_list_floats(const tat_tensor_list *l)
{
    size_t n = 0;
    int i;
    for (i = 0; i < l->n; ++i) n += l->t[i].n;
    return n;
}

void tat_tensor_list_free(tat_tensor_list *l)
{
    free(l->t);
    l->t = 0;
    l->n = l->cap = 0;
}

/* Copies the stretch of the list that starts at (tensor i, offset off) and fills `len` floats
 * between the tensors and the bucket, in the direction `to_bucket` says. */
static void move_stretch(const tat_tensor_list *l, const tat_transport *t, int i, size_t off,
                         size_t len, int to_bucket)
{
    size_t done = 0;
    while (done < len) {
        size_t take = l->t[i].n - off;
        if (take > len - done) take = len - done;
        if (to_bucket)
            t->copy(t->bucket + done, l->t[i].data + off, take, t->ctx);
        else
            t->copy(l->t[i].data + off, t->bucket + done, take, t->ctx);
        done += take;
        off = 0;
        ++i;
    }
}

int tat_fused_reduce(const tat_tensor_list *l, const tat_transport *t, float scale)
{
    int i = 0, calls = 0;
    size_t off = 0, left = tat_tensor_list_floats(l);
    while (left) {
        size_t len = left < t->bucket_floats ? left : t->bucket_floats, skip = len;
        move_stretch(l, t, i, off, len, 1);
        t->reduce(t->bucket, len, t->ctx);
        if (scale != 1) t->scale(t->bucket, len, scale, t->ctx);
        move_stretch(l, t, i, off, len, 0);
        ++calls;
        left -= len;
        /* advance (i, off) past the stretch */
        while (skip) {
            size_t rest = l->t[i].n - off;
            if (skip < rest) {
                off += skip;
                skip = 0;
            } else {
                skip -= rest;
                off = 0;
                ++i;
            }
        }
    }
    return calls;
}

uint64_t tat_hash_bytes(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    size_t i;
    for (i = 0; i < n; ++i) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

unsigned tat_stream_seed(unsigned run_seed, uint64_t global_minibatch)
{
    /* splitmix64's finaliser over the two numbers */
    uint64_t z = ((uint64_t)run_seed << 32) ^ (global_minibatch + 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (unsigned)(z ^ (z >> 32));
}
