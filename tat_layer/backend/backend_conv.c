#include "backend.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "activations.h"
#include "blas.h"
#include "convolutional_layer.h"
#include "tat.h"
#include "tat_fail.h"

#ifdef CBLAS
#include <cblas.h>
#endif

#ifdef TAT_ONEDNN
#include <dnnl.h>
#include <omp.h>

/* One argument of a primitive: Darknet's plain NCHW (or OIHW) array, seen through `user`, and
 * the layout the primitive chose, `mem`. When the two agree, mem is user (no copy); otherwise mem
 * owns a buffer and `reorder` copies between them (with accumulation for the gradients that
 * Darknet adds into). */
typedef struct {
    dnnl_memory_desc_t md;
    dnnl_memory_t user, mem;
    dnnl_primitive_t reorder;
    int plain;
    int slot;                  /* the shared scratch buffer mem lives in; OWNED: its own */
} conv_arg;

/* A layer's transient copies (activations and gradients in the primitives' layouts) live in
 * scratch buffers shared by every layer, grown to the largest use: kept per layer they would
 * double the network's resident memory. Only the forward's reordered weights are kept. */
enum { OWNED = -1, SLOT_SRC, SLOT_DST, SLOT_DIFF_DST, SLOT_DIFF_DST_W, SLOT_DIFF_SRC, SLOT_DIFF_WEI,
       SLOT_DIFF_WEI_PLAIN, SLOT_WEI_BWD, SLOTS };
static struct {
    void *p;
    size_t size;
} scratch[SLOTS];

/* The primitives of one layer for one shape, built on the first call with that shape. */
typedef struct conv_state {
    network *owner;
    struct conv_state *next;   /* every state, for backend_release */
    int weights_dirty;         /* the reordered weights are stale */
    int built, failed;
    int key[12];               /* the shape the primitives were made for */
    dnnl_primitive_t fwd, bwd_data, bwd_weights;
    conv_arg src, wei, bias, dst;                        /* forward */
    conv_arg bd_wei, bd_diff_dst, bd_diff_src;           /* backward data */
    conv_arg bw_src, bw_diff_dst, bw_diff_wei, bw_diff_bias; /* backward weights */
    int bw_src_is_fwd, bd_wei_is_fwd, bw_diff_dst_is_bd; /* shared buffers */
    float *diff_bias;          /* backward weights' bias gradient, added to bias_updates */
    int bn_block;              /* BatchNorm reads and writes the primitives' aBcd<bn_block>b
                                  arrays itself (no reorder of dst and diff_dst); 0: NCHW */
} conv_state;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static conv_state *states;

static int ok(dnnl_status_t s) { return s == dnnl_success; }

static int engine_ready(void)
{
    if (engine) return 1;
    if (!ok(dnnl_engine_create(&engine, dnnl_cpu, 0))) return 0;
    if (!ok(dnnl_stream_create(&stream, engine, dnnl_stream_default_flags))) return 0;
    return 1;
}

static void run(dnnl_primitive_t p, int n, const dnnl_exec_arg_t *args)
{
    if (!ok(dnnl_primitive_execute(p, stream, n, args)) || !ok(dnnl_stream_wait(stream)))
        tat_fail("oneDNN: a primitive failed to run");
}

static void reorder(dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to)
{
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    run(r, 2, a);
}

/* in: user -> mem before the primitive; out: mem -> user after it, added to user when `sum` */
static int arg_init(conv_arg *a, const dnnl_memory_desc_t *user_md, const dnnl_memory_desc_t *prim_md,
                    int out, int sum, int slot)
{
    dnnl_primitive_desc_t pd;
    dnnl_primitive_attr_t attr = NULL;
    int r;
    a->md = *prim_md;
    if (!ok(dnnl_memory_create(&a->user, user_md, engine, DNNL_MEMORY_NONE))) return 0;
    a->plain = !sum && dnnl_memory_desc_equal(user_md, prim_md);
    if (a->plain) {
        a->mem = a->user;
        return 1;
    }
    a->slot = slot;
    if (!ok(dnnl_memory_create(&a->mem, prim_md, engine, slot == OWNED ? DNNL_MEMORY_ALLOCATE : DNNL_MEMORY_NONE)))
        return 0;
    if (sum) {
        dnnl_post_ops_t po;
        dnnl_primitive_attr_create(&attr);
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_sum(po, 1.f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    r = out ? ok(dnnl_reorder_primitive_desc_create(&pd, prim_md, engine, user_md, engine, attr))
            : ok(dnnl_reorder_primitive_desc_create(&pd, user_md, engine, prim_md, engine, attr));
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!r) return 0;
    r = ok(dnnl_primitive_create(&a->reorder, pd));
    dnnl_primitive_desc_destroy(pd);
    return r;
}

/* b shares a's primitive-side memory (same layout, filled once) */
static int arg_share(conv_arg *b, const conv_arg *a, const dnnl_memory_desc_t *user_md)
{
    b->md = a->md;
    b->plain = a->plain;
    if (!ok(dnnl_memory_create(&b->user, user_md, engine, DNNL_MEMORY_NONE))) return 0;
    b->mem = a->plain ? b->user : a->mem;
    b->reorder = NULL;
    b->slot = OWNED;
    return 1;
}

static void arg_free(conv_arg *a, int shared)
{
    if (a->reorder) dnnl_primitive_destroy(a->reorder);
    if (a->mem && a->mem != a->user && !shared) dnnl_memory_destroy(a->mem);
    if (a->user) dnnl_memory_destroy(a->user);
    memset(a, 0, sizeof(*a));
}

static void *scratch_buffer(int slot, size_t need)
{
    if (scratch[slot].size < need) {
        free(scratch[slot].p);
        if (posix_memalign(&scratch[slot].p, 64, need)) tat_fail("out of memory (%zu bytes of oneDNN scratch)", need);
        scratch[slot].size = need;
    }
    return scratch[slot].p;
}

/* Before a call uses it: a transient argument's memory points into its scratch buffer. */
static void bind(conv_arg *a)
{
    if (a->plain || a->slot == OWNED || !a->mem) return;
    dnnl_memory_set_data_handle(a->mem, scratch_buffer(a->slot, dnnl_memory_desc_get_size(&a->md)));
}

/* to += from: the weight gradient into Darknet's accumulated weight_updates (a reorder with a
   sum post-op does this too, but ran at a tenth of the memory bandwidth) */
static void accumulate(float *to, const float *from, size_t n)
{
    long i;
#pragma omp parallel for schedule(static)
    for (i = 0; i < (long)n; ++i) to[i] += from[i];
}

/* Points the argument at Darknet's array; an input is copied into the primitive's layout. */
static void arg_in(conv_arg *a, const float *p)
{
    dnnl_memory_set_data_handle(a->user, (void *)p);
    if (!a->plain && a->reorder) reorder(a->reorder, a->user, a->mem);
}

static void arg_out_bind(conv_arg *a, float *p) { dnnl_memory_set_data_handle(a->user, p); }

static void arg_out_finish(conv_arg *a)
{
    if (!a->plain) reorder(a->reorder, a->mem, a->user);
}

static void state_clear(conv_state *s)
{
    if (s->fwd) dnnl_primitive_destroy(s->fwd);
    if (s->bwd_data) dnnl_primitive_destroy(s->bwd_data);
    if (s->bwd_weights) dnnl_primitive_destroy(s->bwd_weights);
    arg_free(&s->bw_src, s->bw_src_is_fwd);
    arg_free(&s->bd_wei, s->bd_wei_is_fwd);
    arg_free(&s->bw_diff_dst, s->bw_diff_dst_is_bd);
    arg_free(&s->src, 0), arg_free(&s->wei, 0), arg_free(&s->bias, 0), arg_free(&s->dst, 0);
    arg_free(&s->bd_diff_dst, 0), arg_free(&s->bd_diff_src, 0);
    arg_free(&s->bw_diff_wei, 0), arg_free(&s->bw_diff_bias, 0);
    free(s->diff_bias);
    s->fwd = s->bwd_data = s->bwd_weights = NULL;
    s->diff_bias = NULL;
    s->bn_block = 0;
    s->built = s->failed = 0;
}

static void layer_key(const layer *l, int *key)
{
    int k[12] = {l->batch, l->c, l->h, l->w, l->n, l->groups, l->size, l->stride, l->pad,
                 l->activation, l->batch_normalize, l->out_h * 65536 + l->out_w};
    memcpy(key, k, sizeof(k));
}

/* The eltwise post-op that equals Darknet's activation exactly in meaning (Darknet's leaky has
 * slope 0.1); 0 for linear; -1 when there is none (Darknet's own activation runs instead). */
static int activation_post_op(ACTIVATION a, dnnl_alg_kind_t *alg, float *alpha)
{
    switch (a) {
    case LINEAR: return 0;
    case RELU: *alg = dnnl_eltwise_relu, *alpha = 0; return 1;
    case LEAKY: *alg = dnnl_eltwise_relu, *alpha = .1f; return 1;
    case LOGISTIC: *alg = dnnl_eltwise_logistic, *alpha = 0; return 1;
    default: return -1;
    }
}

/* whether the forward applies the activation itself (a post-op) */
static int fused_activation(const layer *l)
{
    dnnl_alg_kind_t alg;
    float alpha;
    return !l->batch_normalize && activation_post_op(l->activation, &alg, &alpha) >= 0;
}

/* The channel block of md when it is oneDNN's aBcd16b or aBcd8b layout of dims, else 0 */
static int channel_block(const dnnl_memory_desc_t *md, const dnnl_dims_t dims)
{
    static const struct { dnnl_format_tag_t tag; int block; } blocked[] = {{dnnl_aBcd16b, 16}, {dnnl_aBcd8b, 8}};
    size_t i;
    for (i = 0; i < sizeof(blocked) / sizeof(blocked[0]); ++i) {
        dnnl_memory_desc_t b;
        if (ok(dnnl_memory_desc_init_by_tag(&b, 4, dims, dnnl_f32, blocked[i].tag)) && dnnl_memory_desc_equal(md, &b))
            return blocked[i].block;
    }
    return 0;
}

static int build(conv_state *s, const layer *l)
{
    const int g = l->groups;
    dnnl_dims_t src_d = {l->batch, l->c, l->h, l->w};
    dnnl_dims_t dst_d = {l->batch, l->n, l->out_h, l->out_w};
    dnnl_dims_t wei_d = {g, l->n / g, l->c / g, l->size, l->size};
    dnnl_dims_t bias_d = {l->n};
    dnnl_dims_t strides = {l->stride, l->stride};
    dnnl_dims_t pad_l = {l->pad, l->pad};
    /* Darknet's output size floors; oneDNN wants the right padding that reaches exactly it */
    dnnl_dims_t pad_r = {(l->out_h - 1) * l->stride + l->size - l->h - l->pad,
                         (l->out_w - 1) * l->stride + l->size - l->w - l->pad};
    int wnd = g > 1 ? 5 : 4;
    dnnl_dim_t *wd = g > 1 ? wei_d : wei_d + 1;
    dnnl_format_tag_t wtag = g > 1 ? dnnl_goihw : dnnl_oihw;
    dnnl_memory_desc_t u_src, u_dst, u_wei, u_bias, a_src, a_dst, a_wei, a_bias;
    dnnl_convolution_desc_t cd;
    dnnl_primitive_desc_t fpd = NULL, dpd = NULL, wpd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_alg_kind_t alg;
    float alpha;
    int has_bias = !l->batch_normalize, r = 0;

    if (!engine_ready()) return 0;
    dnnl_memory_desc_init_by_tag(&u_src, 4, src_d, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&u_dst, 4, dst_d, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&u_wei, wnd, wd, dnnl_f32, wtag);
    dnnl_memory_desc_init_by_tag(&u_bias, 1, bias_d, dnnl_f32, dnnl_x);
    dnnl_memory_desc_init_by_tag(&a_src, 4, src_d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&a_dst, 4, dst_d, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&a_wei, wnd, wd, dnnl_f32, dnnl_format_tag_any);
    a_bias = u_bias;

    /* forward, with the bias and the activation fused where Darknet's order allows it */
    if (!ok(dnnl_convolution_forward_desc_init(&cd, dnnl_forward_training, dnnl_convolution_direct, &a_src,
                                               &a_wei, has_bias ? &a_bias : NULL, &a_dst, strides, pad_l, pad_r)))
        goto done;
    if (fused_activation(l) && activation_post_op(l->activation, &alg, &alpha) > 0) {
        dnnl_post_ops_t po;
        dnnl_primitive_attr_create(&attr);
        dnnl_post_ops_create(&po);
        dnnl_post_ops_append_eltwise(po, 1.f, alg, alpha, 0.f);
        dnnl_primitive_attr_set_post_ops(attr, po);
        dnnl_post_ops_destroy(po);
    }
    if (!ok(dnnl_primitive_desc_create(&fpd, &cd, attr, engine, NULL))) goto done;
    if (!ok(dnnl_primitive_create(&s->fwd, fpd))) goto done;
    if (!arg_init(&s->src, &u_src, dnnl_primitive_desc_query_md(fpd, dnnl_query_src_md, 0), 0, 0, SLOT_SRC)) goto done;
    if (!arg_init(&s->wei, &u_wei, dnnl_primitive_desc_query_md(fpd, dnnl_query_weights_md, 0), 0, 0, OWNED)) goto done;
    if (has_bias && !arg_init(&s->bias, &u_bias, &u_bias, 0, 0, OWNED)) goto done;
    if (!arg_init(&s->dst, &u_dst, dnnl_primitive_desc_query_md(fpd, dnnl_query_dst_md, 0), 1, 0, SLOT_DST)) goto done;

    /* backward data: the gradient is added into net.delta (Darknet's backward accumulates) */
    if (!ok(dnnl_convolution_backward_data_desc_init(&cd, dnnl_convolution_direct, &a_src, &a_wei, &a_dst,
                                                     strides, pad_l, pad_r)))
        goto done;
    if (!ok(dnnl_primitive_desc_create(&dpd, &cd, NULL, engine, fpd))) goto done;
    if (!ok(dnnl_primitive_create(&s->bwd_data, dpd))) goto done;
    {
        const dnnl_memory_desc_t *w = dnnl_primitive_desc_query_md(dpd, dnnl_query_weights_md, 0);
        s->bd_wei_is_fwd = dnnl_memory_desc_equal(w, &s->wei.md);
        if (!(s->bd_wei_is_fwd ? arg_share(&s->bd_wei, &s->wei, &u_wei) : arg_init(&s->bd_wei, &u_wei, w, 0, 0, SLOT_WEI_BWD)))
            goto done;
    }
    if (!arg_init(&s->bd_diff_dst, &u_dst, dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_dst_md, 0), 0, 0, SLOT_DIFF_DST))
        goto done;
    if (!arg_init(&s->bd_diff_src, &u_src, dnnl_primitive_desc_query_md(dpd, dnnl_query_diff_src_md, 0), 1, 1, SLOT_DIFF_SRC))
        goto done;

    /* backward weights: added into weight_updates (and bias_updates) */
    if (!ok(dnnl_convolution_backward_weights_desc_init(&cd, dnnl_convolution_direct, &a_src, &a_wei,
                                                        has_bias ? &a_bias : NULL, &a_dst, strides, pad_l, pad_r)))
        goto done;
    if (!ok(dnnl_primitive_desc_create(&wpd, &cd, NULL, engine, fpd))) goto done;
    if (!ok(dnnl_primitive_create(&s->bwd_weights, wpd))) goto done;
    {
        const dnnl_memory_desc_t *m = dnnl_primitive_desc_query_md(wpd, dnnl_query_src_md, 0);
        s->bw_src_is_fwd = dnnl_memory_desc_equal(m, &s->src.md);
        if (!(s->bw_src_is_fwd ? arg_share(&s->bw_src, &s->src, &u_src) : arg_init(&s->bw_src, &u_src, m, 0, 0, SLOT_SRC)))
            goto done;
        m = dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_dst_md, 0);
        s->bw_diff_dst_is_bd = dnnl_memory_desc_equal(m, &s->bd_diff_dst.md);
        if (!(s->bw_diff_dst_is_bd ? arg_share(&s->bw_diff_dst, &s->bd_diff_dst, &u_dst)
                                   : arg_init(&s->bw_diff_dst, &u_dst, m, 0, 0, SLOT_DIFF_DST_W)))
            goto done;
    }
    /* the gradient lands in plain layout in a scratch buffer, then is added to weight_updates */
    if (!arg_init(&s->bw_diff_wei, &u_wei, dnnl_primitive_desc_query_md(wpd, dnnl_query_diff_weights_md, 0), 1, 0, SLOT_DIFF_WEI))
        goto done;
    if (has_bias) {
        s->diff_bias = tat_calloc(l->n, sizeof(float));
        if (!arg_init(&s->bw_diff_bias, &u_bias, &u_bias, 1, 0, OWNED)) goto done;
    }
    /* BatchNorm on the blocked arrays: both backward primitives read one diff_dst array, laid
       out as the forward's dst, in whole channel blocks */
    if (l->batch_normalize && s->bw_diff_dst_is_bd) {
        int block = channel_block(&s->dst.md, dst_d);
        if (block && block == channel_block(&s->bd_diff_dst.md, dst_d) && l->n % block == 0) s->bn_block = block;
    }
    r = 1;
done:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (fpd) dnnl_primitive_desc_destroy(fpd);
    if (dpd) dnnl_primitive_desc_destroy(dpd);
    if (wpd) dnnl_primitive_desc_destroy(wpd);
    return r;
}

/* The state with primitives for l's current shape, or NULL when oneDNN cannot run it. */
static conv_state *ready(const layer *l)
{
    conv_state *s = l->plugin_state;
    int key[12];
    if (!s) return NULL;
    layer_key(l, key);
    if (s->built && memcmp(key, s->key, sizeof(key))) state_clear(s);
    if (!s->built && !s->failed) {
        memcpy(s->key, key, sizeof(key));
        s->built = 1;
        s->weights_dirty = 1;
        if (!build(s, l)) {
            state_clear(s);
            memcpy(s->key, key, sizeof(key));
            s->built = s->failed = 1;
        }
    }
    return s->failed ? NULL : s;
}

static int env_selects_darknet(void)
{
    const char *e = getenv("TAT_BACKEND");
    return e && !strcmp(e, "darknet");
}

int backend_compiled(void) { return 1; }
int backend_enabled(void) { return !env_selects_darknet(); }

void backend_forward_convolutional(layer l, network net)
{
    conv_state *s = ready(&l);
    if (!s) {
        forward_convolutional_layer(l, net);
        return;
    }
    /* a training forward reorders the weights (they may have changed since: an update, a
       test's perturbation); inference keeps them until an update or backend_weights_changed */
    if (net.train || s->weights_dirty) {
        arg_in(&s->wei, l.weights);
        s->weights_dirty = 0;
    }
    bind(&s->src), bind(&s->dst);
    arg_in(&s->src, net.input);
    arg_out_bind(&s->dst, l.output);
    {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, s->src.mem}, {DNNL_ARG_WEIGHTS, s->wei.mem},
                                {DNNL_ARG_DST, s->dst.mem}, {DNNL_ARG_BIAS, NULL}};
        int n = 3;
        if (!l.batch_normalize) {
            dnnl_memory_set_data_handle(s->bias.user, l.biases);
            a[n++].memory = s->bias.mem;
        }
        run(s->fwd, n, a);
    }
    if (s->bn_block) {
        void *conv_out;
        dnnl_memory_get_data_handle(s->dst.mem, &conv_out);
        backend_batchnorm_forward_blocked(&l, conv_out, s->bn_block, net.train);
        return;
    }
    arg_out_finish(&s->dst);
    if (l.batch_normalize) backend_batchnorm_forward(&l, net.train);
    else if (!fused_activation(&l)) activate_array(l.output, l.outputs * l.batch, l.activation);
}

void backend_backward_convolutional(layer l, network net)
{
    conv_state *s = ready(&l);
    if (!s) {
        backward_convolutional_layer(l, net);
        return;
    }
    bind(&s->bd_diff_dst), bind(&s->bw_diff_dst), bind(&s->bd_diff_src), bind(&s->bw_src), bind(&s->src);
    bind(&s->bw_diff_wei), bind(&s->bd_wei);
    if (s->bn_block) {
        void *conv_delta;
        dnnl_memory_get_data_handle(s->bd_diff_dst.mem, &conv_delta);
        backend_batchnorm_backward_blocked(&l, conv_delta, s->bn_block, net.train);
    } else {
        if (l.batch_normalize) backend_batchnorm_backward(&l, net.train);
        else gradient_array(l.output, l.outputs * l.batch, l.activation, l.delta);
        arg_in(&s->bd_diff_dst, l.delta);
    }
    if (!s->bw_diff_dst_is_bd) arg_in(&s->bw_diff_dst, l.delta);
    else dnnl_memory_set_data_handle(s->bw_diff_dst.user, l.delta);
    /* the input again (other layers have used the scratch since this layer's forward) */
    if (!s->bw_src_is_fwd || !s->src.plain) arg_in(s->bw_src_is_fwd ? &s->src : &s->bw_src, net.input);
    else dnnl_memory_set_data_handle(s->bw_src.user, net.input);
    {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, s->bw_src.mem}, {DNNL_ARG_DIFF_DST, s->bw_diff_dst.mem},
                                {DNNL_ARG_DIFF_WEIGHTS, s->bw_diff_wei.mem}, {DNNL_ARG_DIFF_BIAS, NULL}};
        int n = 3;
        float *diff_wei = scratch_buffer(SLOT_DIFF_WEI_PLAIN, l.nweights * sizeof(float));
        arg_out_bind(&s->bw_diff_wei, diff_wei);
        if (!l.batch_normalize) {
            arg_out_bind(&s->bw_diff_bias, s->diff_bias);
            a[n++].memory = s->bw_diff_bias.mem;
        }
        run(s->bwd_weights, n, a);
        arg_out_finish(&s->bw_diff_wei);
        accumulate(l.weight_updates, diff_wei, l.nweights);
        if (!l.batch_normalize) axpy_cpu(l.n, 1, s->diff_bias, 1, l.bias_updates, 1);
    }
    if (net.delta) {
        /* the weights as this step's forward reordered them, where the layouts agree */
        if (!s->bd_wei_is_fwd) arg_in(&s->bd_wei, l.weights);
        else if (s->wei.plain) dnnl_memory_set_data_handle(s->bd_wei.user, l.weights);
        else if (!net.train || s->weights_dirty) arg_in(&s->wei, l.weights);
        arg_out_bind(&s->bd_diff_src, net.delta);
        dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, s->bd_diff_dst.mem}, {DNNL_ARG_WEIGHTS, s->bd_wei.mem},
                                {DNNL_ARG_DIFF_SRC, s->bd_diff_src.mem}};
        run(s->bwd_data, 3, a);
        arg_out_finish(&s->bd_diff_src);
    }
}

void backend_update_convolutional(layer l, update_args a)
{
    conv_state *s = l.plugin_state;
    if (a.adam) {
        /* Darknet's update_convolutional_layer, the weights' Adam on threads */
        float rate = a.learning_rate * l.learning_rate_scale;
        backend_adam_update(l.weights, l.weight_updates, l.m, l.v, a.B1, a.B2, a.eps, a.decay, rate, l.nweights,
                            a.batch, a.t, a.decoupled_decay);
        adam_update_cpu(l.biases, l.bias_updates, l.bias_m, l.bias_v, a.B1, a.B2, a.eps, a.decay, rate, l.n, a.batch,
                        a.t, a.decoupled_decay);
        if (l.scales)
            adam_update_cpu(l.scales, l.scale_updates, l.scale_m, l.scale_v, a.B1, a.B2, a.eps, a.decay, rate, l.n,
                            a.batch, a.t, a.decoupled_decay);
    } else {
        update_convolutional_layer(l, a);
    }
    if (s) s->weights_dirty = 1;
}

void backend_weights_changed(layer *l)
{
    conv_state *s = l->plugin_state;
    if (s && l->forward == backend_forward_convolutional) s->weights_dirty = 1;
}

int backend_layer_on_onednn(const layer *l)
{
    const conv_state *s = l->plugin_state;
    return l->forward == backend_forward_convolutional && s && s->built && !s->failed;
}

int backend_layer_bn_blocked(const layer *l)
{
    const conv_state *s = l->plugin_state;
    return backend_layer_on_onednn(l) && s->bn_block;
}

void backend_prepare_layer(layer *l, void *owner)
{
    conv_state *s;
    if (l->type != CONVOLUTIONAL || l->xnor || l->binary || l->forward != forward_convolutional_layer) return;
    s = tat_calloc(1, sizeof(*s));
    s->owner = owner;
    s->next = states;
    states = s;
    l->plugin_state = s;
    l->forward = backend_forward_convolutional;
    l->backward = backend_backward_convolutional;
    l->update = backend_update_convolutional;
}

void backend_attach(network *net)
{
    int i;
    if (!backend_enabled()) return;
    for (i = 0; i < net->n; ++i) {
        backend_prepare_layer(&net->layers[i], net);
        backend_prepare_pass_layer(&net->layers[i]);
    }
}

void backend_release(network *net)
{
    conv_state **p = &states;
    while (*p) {
        conv_state *s = *p;
        if (s->owner == net) {
            *p = s->next;
            state_clear(s);
            free(s);
        } else {
            p = &s->next;
        }
    }
    if (!states) {
        int i;
        for (i = 0; i < SLOTS; ++i) free(scratch[i].p), scratch[i].p = NULL, scratch[i].size = 0;
    }
}

/* OpenMP's threads spin while they wait at a barrier (libgomp's default), and OpenBLAS's threads
 * spin (yielding) for about 2^28 cycles after each call. Beside Darknet's data loading threads,
 * the other runtime's threads, or other work on the machine, a waiting thread then burns the core
 * the thread it waits for needs: measured, a Fashion-MNIST student step 16x slower than with
 * OMP_WAIT_POLICY=passive under load, and the Fashion-MNIST TaT step 25-46 ms against a steady
 * 24-26 ms with OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's shortest wait before sleeping). Both
 * libraries read their variable once, when they load, so they are set here and the program
 * re-executed once; the user's own settings always win. */
static const char *const wait_policies[][2] = {{"OMP_WAIT_POLICY", "passive"}, {"OPENBLAS_THREAD_TIMEOUT", "4"}};
static int wait_policy_was_set[2];

int backend_wait_policy_set(void)
{
    int i, any = 0;
    if (env_selects_darknet()) return 0;
    for (i = 0; i < 2; ++i)
        if (!getenv(wait_policies[i][0])) {
            setenv(wait_policies[i][0], wait_policies[i][1], 1);
            wait_policy_was_set[i] = any = 1;
        }
    return any;
}

void backend_reexec(char **argv)
{
    int i;
    execv("/proc/self/exe", argv);
    /* not re-executed: go on with the libraries' defaults */
    for (i = 0; i < 2; ++i)
        if (wait_policy_was_set[i]) unsetenv(wait_policies[i][0]);
}

/* TAT_NUM_THREADS, when set, is the one count: the TaT pool reads it, and oneDNN's OpenMP threads
 * and OpenBLAS get it here (before either has run). Unset, each keeps its own default (the
 * online CPUs, or OMP_NUM_THREADS / OPENBLAS_NUM_THREADS). The three never run at once: layers
 * run one after another, and the pool holds OpenBLAS to one thread while it works. */
void backend_set_threads(void)
{
    if (!getenv("TAT_NUM_THREADS")) return;
    omp_set_num_threads(tat_get_num_threads());
#ifdef CBLAS
    openblas_set_num_threads(tat_get_num_threads());
#endif
}

#else /* no oneDNN in this build: Darknet's own layers everywhere */

int backend_compiled(void) { return 0; }
int backend_enabled(void) { return 0; }
void backend_attach(network *net) { (void)net; }
void backend_release(network *net) { (void)net; }
void backend_weights_changed(layer *l) { (void)l; }
void backend_forward_convolutional(layer l, network net) { forward_convolutional_layer(l, net); }
void backend_backward_convolutional(layer l, network net) { backward_convolutional_layer(l, net); }
void backend_update_convolutional(layer l, update_args a) { update_convolutional_layer(l, a); }
void backend_prepare_layer(layer *l, void *owner) { (void)l, (void)owner; }
int backend_layer_on_onednn(const layer *l) { (void)l; return 0; }
int backend_layer_bn_blocked(const layer *l) { (void)l; return 0; }
int backend_wait_policy_set(void) { return 0; }
void backend_reexec(char **argv) { (void)argv; }
void backend_set_threads(void)
{
#ifdef CBLAS
    if (getenv("TAT_NUM_THREADS")) openblas_set_num_threads(tat_get_num_threads());
#endif
}
#endif
