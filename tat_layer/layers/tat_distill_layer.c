#include "tat_distill_layer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cuda.h"
#include "distill_common.h"
#include "option_list.h"
#include "tat.h"
#ifdef GPU
#include "tat_gpu.h"
#endif

/* The embeddings of a layer, in the order of its weights file: the query and the value (student
   map -> teacher channels, size x size), then the key (teacher map, 1x1) when learned. */
enum { EMB_Q, EMB_V, EMB_K, EMB_MAX };
/* The query and the value embed the same map: on a device they are one stack. */
#define EMB_STACK 2

typedef struct tat_state {
    int index;                         /* this layer's index, for messages                */
    int from, teacher_layer;           /* absolute indices in the student and the teacher  */
    int batch, h, w, student_c, teacher_c;
    int ksize, key_learned, bn_per_image;
    float loss_weight;
    int owner;                         /* holds the embeddings it uses                     */
    int n_emb;                         /* embeddings in use: 2, or 3 with a learned key    */
    tat_embedding own[EMB_MAX];        /* owned embeddings (owner only), the first n_emb    */
    tat_embedding *emb[EMB_MAX];       /* the embeddings in use, own or the shared layer's;
                                          emb[EMB_K] NULL: the teacher map is the key       */
    struct tat_state *shared;          /* the owner of the embeddings when not owner        */
    int active;                        /* a teacher is attached: buffers are allocated      */
    tat_term_geom geom;                /* what the term computes (always set)               */
    tat_term term;                     /* the CPU term (active, on the host)                */
    float *workspace;                  /* conv im2col scratch (owner, active, on the host)  */
    float loss;                        /* weighted loss of the last forward, per image       */
    struct tat_gpu_state *gpu;         /* device state (GPU builds on a device, active)     */
} tat_state;

#ifdef GPU
static void tat_gpu_setup(const network *net, tat_state *s);
static void tat_gpu_params(tat_state *s, int to_host);
static void tat_gpu_free_state(tat_state *s);
#endif

static tat_state *state_of(const layer *l) { return (tat_state *)l->plugin_state; }

static size_t tat_params(const layer *l);
static double tat_flops(const layer *l);

/* What embedding i embeds: the key the teacher map, the query and the value the student's. */
static const float *embedded_map(int i, const float *student, const float *teacher)
{
    return i == EMB_K ? teacher : student;
}

/* The key the term attends with: the learned key's output, or the teacher map itself. */
static const float *key_map(const tat_state *s, const float *teacher)
{
    return s->emb[EMB_K] ? s->emb[EMB_K]->out : teacher;
}

/* The work runs on the device in a GPU build with one (the host then holds parameters only). */
static int on_device(void)
{
#ifdef GPU
    return gpu_index >= 0;
#else
    return 0;
#endif
}

/* ---- parsing: fields only ----------------------------------------------------------------- */

static void read_embedding_options(const distill_cfg *c, distill_embedding_options *e)
{
    e->from = distill_cfg_int(c, "from", -1, 0);
    e->teacher_layer = distill_cfg_int(c, "teacher_layer", 0, 1);
    e->teacher_channels = distill_cfg_int(c, "teacher_channels", 0, 1);
    if (e->teacher_channels < 1) distill_cfg_fail(c, "teacher_channels", "must be at least 1");
    e->ksize = distill_cfg_int(c, "size", 1, 0);
    if (e->ksize != 1 && e->ksize != 3) distill_cfg_fail(c, "size", "%d: must be 1 or 3", e->ksize);
    e->key_learned = distill_cfg_choice(c, "key", "identity", "learned");
    e->bn_per_image = distill_cfg_choice(c, "bn", "batch", "image");
}

static distill_attention_mode read_attention_mode(const distill_cfg *c)
{
    static const char *names[] = {"auto", "materialized", "streaming"};
    char *s = option_find(c->options, "attention");
    int i;
    if (!s) return DISTILL_ATTENTION_AUTO;
    for (i = 0; i < 3; ++i)
        if (!strcmp(s, names[i])) return (distill_attention_mode)i;
    distill_cfg_fail(c, "attention", "'%s' must be auto, materialized or streaming", s);
}

static layer parse_tat_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "size", "key",
                                  "grid", "groups", "bn", "attention", "loss_weight", 0};
    distill_cfg c = {options, net, index, TAT_DISTILL};
    distill_tat_options o;
    distill_cfg_check_fields(&c, known);
    read_embedding_options(&c, &o.emb);
    o.attention = read_attention_mode(&c);
    distill_cfg_pair(&c, "grid", 1, &o.grid_h, &o.grid_w);
    o.groups = distill_cfg_int(&c, "groups", 1, 0);
    o.loss_weight = distill_cfg_loss_weight(&c);
    return make_tat_distill_layer(net, index, &o);
}

static layer parse_anchor_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "size", "key",
                                  "bn", "embeddings", "anchors", "attention", "loss_weight", 0};
    distill_cfg c = {options, net, index, ANCHOR_DISTILL};
    distill_anchor_options o;
    memset(&o, 0, sizeof(o));
    distill_cfg_check_fields(&c, known);
    if (distill_cfg_has(&c, "embeddings")) {
        o.embeddings = distill_cfg_int(&c, "embeddings", 0, 1);
        if (distill_cfg_has(&c, "size") || distill_cfg_has(&c, "key") || distill_cfg_has(&c, "bn"))
            distill_cfg_fail(&c, "embeddings", "size, key and bn come from the shared layer %d: remove them here",
                             o.embeddings < 0 ? index + o.embeddings : o.embeddings);
        o.emb.from = distill_cfg_has(&c, "from") ? distill_cfg_int(&c, "from", -1, 0) : DISTILL_UNSET;
        o.emb.teacher_channels = distill_cfg_has(&c, "teacher_channels")
                                     ? distill_cfg_int(&c, "teacher_channels", 0, 1) : DISTILL_UNSET;
        o.emb.teacher_layer = distill_cfg_has(&c, "teacher_layer")
                                  ? distill_cfg_int(&c, "teacher_layer", 0, 1) : DISTILL_UNSET;
    } else {
        o.embeddings = DISTILL_UNSET;
        read_embedding_options(&c, &o.emb);
    }
    o.attention = read_attention_mode(&c);
    if (!distill_cfg_has(&c, "anchors")) distill_cfg_fail(&c, "anchors", "missing (required)");
    distill_cfg_pair(&c, "anchors", 0, &o.anchor_h, &o.anchor_w);
    o.loss_weight = distill_cfg_loss_weight(&c);
    return make_anchor_distill_layer(net, index, &o);
}

/* ---- make: checks against the networks, buffers ----------------------------------------- */

/* The maps and embedding settings of a layer with its own embeddings. */
static void set_own_embeddings(const distill_cfg *c, tat_state *s, const distill_embedding_options *e)
{
    network *net = c->net;
    tat_rng rng = distill_init_rng();
    int i;
    s->from = distill_student_layer(c, e->from);
    s->teacher_c = e->teacher_channels;
    s->ksize = e->ksize;
    s->key_learned = e->key_learned;
    s->bn_per_image = e->bn_per_image;
    s->h = net->layers[s->from].out_h;
    s->w = net->layers[s->from].out_w;
    s->student_c = net->layers[s->from].out_c;
    s->teacher_layer = e->teacher_layer;
    if (net->teacher) {
        s->teacher_layer = distill_teacher_layer(c, e->teacher_layer);
        distill_check_teacher_map(c, s->teacher_layer, s->teacher_c, s->from);
        s->active = 1;
    }
    s->owner = 1;
    s->n_emb = s->key_learned ? EMB_K + 1 : EMB_K;
    for (i = 0; i < s->n_emb; ++i) {
        if (i == EMB_K) distill_embedding_init(&s->own[i], net, s->teacher_c, s->teacher_c, 1, &rng);
        else distill_embedding_init(&s->own[i], net, s->student_c, s->teacher_c, s->ksize, &rng);
        s->emb[i] = &s->own[i];
    }
    if (s->active && !on_device()) {
        size_t ws = tat_conv_workspace_floats(s->batch, s->student_c, s->teacher_c, s->h, s->w, s->ksize);
        for (i = 0; i < s->n_emb; ++i) tat_embedding_alloc_activations(s->emb[i], s->batch, s->h, s->w);
        s->workspace = tat_calloc(ws, sizeof(float));
    }
}

/* The term's stream_tile for the mode asked for (0: materialised). auto streams when the
 * materialised attention would pass the budget: on a device a share of its free memory, tiles
 * of 1024 or more (tat_gpu_term_stream_tile, which the GPU benchmark asks too); on the host
 * TAT_ATTENTION_BUDGET_BYTES for one matrix per block and one per thread. */
static int stream_tile(const tat_state *s, distill_attention_mode mode)
{
    if (mode == DISTILL_ATTENTION_MATERIALIZED) return 0;
#ifdef GPU
    if (on_device()) return tat_gpu_term_stream_tile(&s->geom, mode == DISTILL_ATTENTION_STREAMING);
#endif
    return mode == DISTILL_ATTENTION_STREAMING || tat_term_prefers_streaming(&s->geom) ? TAT_STREAM_TILE : 0;
}

/* The term's buffers, on the host or the device, once the geometry is known, for the
 * attention mode asked for. */
static void alloc_term(const network *net, tat_state *s, distill_attention_mode mode)
{
    s->geom.stream_tile = stream_tile(s, mode);
    if (!s->active) return;
#ifdef GPU
    if (on_device()) {
        tat_gpu_setup(net, s);
        return;
    }
#endif
    (void)net;
    tat_term_init(&s->term, &s->geom);
}

static void print_layer_line(const layer *l, const char *what)
{
    tat_state *s = state_of(l);
    fprintf(stderr, "%-14s student %d: %d x %d x %d, teacher %d: %d ch; %s; attention %s; %zu params  %5.3f BFLOPs%s\n",
            distill_layer_type_name(l->type), s->from, s->w, s->h, s->student_c, s->teacher_layer,
            s->teacher_c, what, s->geom.stream_tile ? "streaming" : "materialized", tat_params(l),
            tat_flops(l) / 1e9,
            s->active ? "" : "  (inactive: no teacher)");
}

/* A layer of type c->type passing its input through, and its state. */
static tat_state *new_layer(const distill_cfg *c, float loss_weight, layer *l)
{
    tat_state *s = tat_calloc(1, sizeof(*s));
    *l = distill_make_passthrough(c, c->type == TAT_DISTILL ? &distill_tat_ops : &distill_anchor_ops, s);
    s->index = c->index;
    s->batch = c->net->batch;
    s->loss_weight = loss_weight;
    return s;
}

layer make_tat_distill_layer(network *net, int index, const distill_tat_options *o)
{
    distill_cfg c = {0, net, index, TAT_DISTILL};
    layer l;
    tat_state *s = new_layer(&c, o->loss_weight, &l);
    const char *err;
    char what[128];
    set_own_embeddings(&c, s, &o->emb);
    /* a grid that fails even with one group is the grid's fault, else the groups' */
    err = tat_term_geom_patch(&s->geom, s->batch, s->teacher_c, s->h, s->w, o->grid_h, o->grid_w, 1);
    if (err) distill_cfg_fail(&c, "grid", "%s (grid %d,%d, map %d x %d)", err, o->grid_h, o->grid_w, s->w, s->h);
    err = tat_term_geom_patch(&s->geom, s->batch, s->teacher_c, s->h, s->w, o->grid_h, o->grid_w, o->groups);
    if (err)
        distill_cfg_fail(&c, "groups", "%s (grid %d,%d = %d patches, groups %d)", err, o->grid_h,
                         o->grid_w, o->grid_h * o->grid_w, o->groups);
    alloc_term(net, s, o->attention);
    snprintf(what, sizeof(what), "grid %d,%d groups %d, q/v %dx%d, key %s, bn %s", o->grid_h,
             o->grid_w, o->groups, s->ksize, s->ksize, s->key_learned ? "learned" : "identity",
             s->bn_per_image ? "image" : "batch");
    print_layer_line(&l, what);
    return l;
}

/* A layer using the embeddings of the earlier [tat_distill] `shared`: same maps and settings;
 * the fields given here must agree with it. */
static void set_shared_embeddings(const distill_cfg *c, tat_state *s, tat_state *shared, int ei,
                                  const distill_embedding_options *e)
{
    s->from = shared->from;
    s->teacher_layer = shared->teacher_layer;
    s->h = shared->h, s->w = shared->w;
    s->student_c = shared->student_c, s->teacher_c = shared->teacher_c;
    s->ksize = shared->ksize, s->key_learned = shared->key_learned;
    s->bn_per_image = shared->bn_per_image;
    s->active = shared->active;
    s->shared = shared;
    s->n_emb = shared->n_emb;
    memcpy(s->emb, shared->emb, sizeof(s->emb));
    if (e->from != DISTILL_UNSET && distill_student_layer(c, e->from) != shared->from)
        distill_cfg_fail(c, "from", "differs from the shared layer %d's (%d)", ei, shared->from);
    if (e->teacher_channels != DISTILL_UNSET && e->teacher_channels != shared->teacher_c)
        distill_cfg_fail(c, "teacher_channels", "differs from the shared layer %d's (%d)", ei, shared->teacher_c);
    if (e->teacher_layer != DISTILL_UNSET && c->net->teacher) {
        int tl = e->teacher_layer < 0 ? e->teacher_layer + c->net->teacher->n : e->teacher_layer;
        if (tl != shared->teacher_layer)
            distill_cfg_fail(c, "teacher_layer", "differs from the shared layer %d's (%d)", ei, shared->teacher_layer);
    }
}

layer make_anchor_distill_layer(network *net, int index, const distill_anchor_options *o)
{
    distill_cfg c = {0, net, index, ANCHOR_DISTILL};
    layer l;
    tat_state *s = new_layer(&c, o->loss_weight, &l);
    const char *err;
    char what[128];
    if (o->embeddings != DISTILL_UNSET) {
        int ei = o->embeddings < 0 ? index + o->embeddings : o->embeddings;
        if (ei < 0 || ei >= index || net->layers[ei].type != TAT_DISTILL)
            distill_cfg_fail(&c, "embeddings", "%d is not an earlier [tat_distill] layer", o->embeddings);
        set_shared_embeddings(&c, s, state_of(&net->layers[ei]), ei, &o->emb);
    } else {
        set_own_embeddings(&c, s, &o->emb);
    }
    err = tat_term_geom_anchor(&s->geom, s->batch, s->teacher_c, s->h, s->w, o->anchor_h, o->anchor_w);
    if (err)
        distill_cfg_fail(&c, "anchors", "%s (anchors %d,%d, map %d x %d)", err, o->anchor_h, o->anchor_w,
                         s->w, s->h);
    alloc_term(net, s, o->attention);
    snprintf(what, sizeof(what), "anchors %d,%d (%d positions), %s", o->anchor_h, o->anchor_w,
             s->geom.N, s->shared ? "shared embeddings" : "own embeddings");
    print_layer_line(&l, what);
    return l;
}

/* ---- forward / backward / update ------------------------------------------------------- */

/* The weighted loss per image from the sum of squared errors; a non-finite loss stops the
   run before this step's update and before any save. */
static void set_loss(const layer *l, const network *net, tat_state *s, double sse)
{
    s->loss = (float)(s->loss_weight * sse / ((double)tat_term_elements_per_image(&s->geom) * s->batch));
    distill_stop_if_not_finite(net, distill_layer_type_name(l->type), s->index, s->loss);
}

/* Darknet's delta is the negative gradient of the loss summed over the batch: each image's
   term is loss_weight * MSE, hence the negative per-image weight. */
static float delta_weight(const tat_state *s)
{
    return -s->loss_weight / (float)tat_term_elements_per_image(&s->geom);
}

void forward_tat_distill_layer(const layer l, network net)
{
    tat_state *s = state_of(&l);
    const float *student, *teacher;
    double sse;
    int i;
    s->loss = 0;
    if (!distill_training(s->active, &net)) return;
    student = net.layers[s->from].output;
    teacher = net.teacher->layers[s->teacher_layer].output;
    for (i = 0; s->owner && i < s->n_emb; ++i)
        tat_embedding_forward(s->emb[i], embedded_map(i, student, teacher), s->workspace, s->batch,
                              s->h, s->w, s->bn_per_image);
    sse = tat_term_forward(&s->term, s->emb[EMB_Q]->out, key_map(s, teacher), s->emb[EMB_V]->out, teacher);
    set_loss(&l, &net, s, sse);
}

void backward_tat_distill_layer(const layer l, network net)
{
    tat_state *s = state_of(&l);
    if (!distill_training(s->active, &net)) return;
    tat_term_backward(&s->term, s->emb[EMB_Q]->out_grad, s->emb[EMB_K] ? s->emb[EMB_K]->out_grad : 0,
                      s->emb[EMB_V]->out_grad, delta_weight(s));
    if (s->owner) {
        /* layers sharing these embeddings come later, so their backward already ran */
        const float *student = net.layers[s->from].output;
        const float *teacher = net.teacher->layers[s->teacher_layer].output;
        float *d_student = net.layers[s->from].delta;
        int i;
        /* the teacher map gets no gradient */
        for (i = 0; i < s->n_emb; ++i)
            tat_embedding_backward(s->emb[i], i == EMB_K ? 0 : d_student,
                                   embedded_map(i, student, teacher), s->workspace, s->batch, s->h,
                                   s->w, s->bn_per_image);
    }
}

void update_tat_distill_layer(const layer l, update_args a)
{
    tat_state *s = state_of(&l);
    float learning_rate = a.learning_rate * l.learning_rate_scale;
    int i;
    /* without a teacher nothing was learned: do not let decay shrink the embeddings */
    if (!s->owner || !s->active) return;
    for (i = 0; i < s->n_emb; ++i) distill_embedding_update(s->emb[i], &distill_blas_cpu, a, learning_rate);
}

#ifdef GPU
/* On a device everything per batch stays there: the embeddings' parameters, gradients and
   activations, the blocks and attention matrices (all sized once, here), the student's and
   the teacher's maps (the teacher runs on the same device), the student's delta. Only the
   loss comes back, one double per layer and batch, copied without waiting in the forward and
   read once the backward is queued. The host copies of the parameters are
   brought up to date for saving (tat_gpu_params). */
struct tat_gpu_state {
    tat_gpu_embedding emb[EMB_MAX];      /* owner only: the device twins of s->emb */
    tat_gpu_embedding *stack[EMB_STACK]; /* owner only: the query and the value, one stack */
    tat_gpu_term term;
    float *workspace;                    /* im2col of the whole batch (3x3 embeddings) */
};

static void tat_gpu_setup(const network *net, tat_state *s)
{
    struct tat_gpu_state *g;
    distill_gpu_alloc_context(net, s->geom.kind == TAT_TERM_ANCHORS ? ANCHOR_DISTILL : TAT_DISTILL, s->index);
    g = tat_calloc(1, sizeof(*g));
    if (s->owner) {
        /* one workspace for the query/value convs and the learned key's (teacher channels, 1x1) */
        size_t ws = tat_gpu_conv_workspace_floats(s->batch, s->student_c, s->h, s->w, s->ksize);
        size_t ws_key = s->emb[EMB_K] ? tat_gpu_conv_workspace_floats(s->batch, s->teacher_c, s->h, s->w, 1) : 0;
        /* query and value embed the same map: one stack, one product and one im2col */
        const tat_embedding *host[EMB_STACK];
        int i;
        if (ws_key > ws) ws = ws_key;
        for (i = 0; i < EMB_STACK; ++i) g->stack[i] = &g->emb[i], host[i] = s->emb[i];
        tat_gpu_embeddings_init(g->stack, host, EMB_STACK, s->batch, s->h, s->w);
        if (s->emb[EMB_K]) tat_gpu_embedding_init(&g->emb[EMB_K], s->emb[EMB_K], s->batch, s->h, s->w);
        g->workspace = tat_gpu_alloc_floats(ws);
    }
    tat_gpu_term_init(&g->term, &s->geom);
    s->gpu = g;
}

static void tat_gpu_free_state(tat_state *s)
{
    struct tat_gpu_state *g = s->gpu;
    if (!g) return;
    if (s->owner) {
        tat_gpu_embeddings_free(g->stack, EMB_STACK);
        if (s->emb[EMB_K]) tat_gpu_embedding_free(&g->emb[EMB_K]);
        tat_gpu_free(g->workspace);
    }
    tat_gpu_term_free(&g->term);
    free(g);
    s->gpu = 0;
}

/* Parameters device -> host (to_host 1, before saving) or host -> device (after loading). */
static void tat_gpu_params(tat_state *s, int to_host)
{
    struct tat_gpu_state *g = s->gpu;
    int i;
    if (!g || !s->owner) return;
    for (i = 0; i < s->n_emb; ++i) {
        if (to_host) tat_gpu_embedding_pull(&g->emb[i], s->emb[i]);
        else tat_gpu_embedding_push(&g->emb[i], s->emb[i]);
    }
}

/* The embeddings in use: the layer's own or those of the [tat_distill] it shares. */
static struct tat_gpu_state *embeddings_gpu(tat_state *s)
{
    return s->owner ? s->gpu : s->shared->gpu;
}

void forward_tat_distill_layer_gpu(const layer l, network net)
{
    tat_state *s = state_of(&l);
    struct tat_gpu_state *g = s->gpu, *e;
    const float *student, *teacher;
    s->loss = 0; /* set by the backward, when the loss has arrived */
    if (!distill_training(s->active, &net) || !g) return;
    e = embeddings_gpu(s);
    student = net.layers[s->from].output_gpu;
    teacher = net.teacher->layers[s->teacher_layer].output_gpu;
    if (s->owner) {
        tat_gpu_embeddings_forward(e->stack, EMB_STACK, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->emb[EMB_K])
            tat_gpu_embedding_forward(&e->emb[EMB_K], teacher, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
    tat_gpu_term_forward(&g->term, e->emb[EMB_Q].out, s->emb[EMB_K] ? e->emb[EMB_K].out : teacher,
                         e->emb[EMB_V].out, teacher);
}

void backward_tat_distill_layer_gpu(const layer l, network net)
{
    tat_state *s = state_of(&l);
    struct tat_gpu_state *g = s->gpu, *e;
    if (!distill_training(s->active, &net) || !g) return;
    e = embeddings_gpu(s);
    tat_gpu_term_backward(&g->term, e->emb[EMB_Q].out_grad, s->emb[EMB_K] ? e->emb[EMB_K].out_grad : 0,
                          e->emb[EMB_V].out_grad, delta_weight(s));
    if (s->owner) {
        const float *student = net.layers[s->from].output_gpu;
        const float *teacher = net.teacher->layers[s->teacher_layer].output_gpu;
        float *d_student = net.layers[s->from].delta_gpu;
        tat_gpu_embeddings_backward(e->stack, EMB_STACK, d_student, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->emb[EMB_K])
            tat_gpu_embedding_backward(&e->emb[EMB_K], 0, teacher, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
    /* queued: now wait for the forward's loss (long arrived) and stop before the update if
       it is not finite */
    set_loss(&l, &net, s, tat_gpu_loss_wait(&g->term.loss));
}

void update_tat_distill_layer_gpu(const layer l, update_args a)
{
    tat_state *s = state_of(&l);
    float learning_rate = a.learning_rate * l.learning_rate_scale;
    int i;
    if (!s->owner || !s->active || !s->gpu) return;
    for (i = 0; i < s->n_emb; ++i) distill_embedding_update(&s->gpu->emb[i], &distill_blas_gpu, a, learning_rate);
}

static void sync_tat_distill_layer(network **nets, int n, int j)
{
    tat_state *s0 = state_of(&nets[0]->layers[j]);
    tat_embedding **rep;
    int *dev, i, e;
    if (!s0->owner || !s0->gpu) return; /* nothing learned here */
    rep = tat_calloc(n, sizeof(*rep));
    dev = tat_calloc(n, sizeof(*dev));
    for (i = 0; i < n; ++i) dev[i] = nets[i]->gpu_index;
    for (e = 0; e < s0->n_emb; ++e) {
        for (i = 0; i < n; ++i) rep[i] = &state_of(&nets[i]->layers[j])->gpu->emb[e];
        distill_average_embeddings(rep, dev, n);
    }
    free(rep);
    free(dev);
}
#endif


/* ---- weights, accounting, free --------------------------------------------------------- */

static void tat_weights_io(layer l, FILE *fp, int save)
{
    tat_state *s = state_of(&l);
    int i;
    if (!s->owner) return;
#ifdef GPU
    if (save) tat_gpu_params(s, 1);
#endif
    /* a short read leaves end-of-file set (the weights loader names the file and the layer):
       nothing more is read */
    for (i = 0; i < s->n_emb && distill_embedding_io(s->emb[i], fp, save); ++i) {}
#ifdef GPU
    if (!save) tat_gpu_params(s, 0);
#endif
}

static void save_tat_weights(layer l, FILE *fp) { tat_weights_io(l, fp, 1); }
static void load_tat_weights(layer l, FILE *fp) { tat_weights_io(l, fp, 0); }

static float tat_loss(const layer *l) { return state_of(l)->loss; }

/* The owner's embeddings, where they are trained: on the device when the layer runs there. */
static void tat_tensors(const layer *l, int grads, tat_tensor_list *host, tat_tensor_list *device)
{
    tat_state *s = state_of(l);
    int i;
    if (!s->owner) return;
#ifdef GPU
    if (s->gpu) {
        for (i = 0; i < s->n_emb; ++i) distill_embedding_tensors(&s->gpu->emb[i], grads, device);
        return;
    }
#endif
    (void)device;
    for (i = 0; i < s->n_emb; ++i) distill_embedding_tensors(s->emb[i], grads, host);
}

static size_t tat_params(const layer *l)
{
    tat_state *s = state_of(l);
    size_t n = 0;
    int i;
    for (i = 0; s->owner && i < s->n_emb; ++i) n += tat_embedding_num_params(s->emb[i]);
    return n;
}

static double tat_flops(const layer *l)
{
    tat_state *s = state_of(l);
    double f = tat_term_flops_per_image(&s->geom);
    int i;
    for (i = 0; s->owner && i < s->n_emb; ++i) f += tat_embedding_flops_per_image(s->emb[i], s->h, s->w);
    return f;
}

/* ---- attention maps (inspection) ------------------------------------------------------- */

void distill_tat_map_size(const layer *l, int *h, int *w)
{
    *h = state_of(l)->h;
    *w = state_of(l)->w;
}

const char *distill_tat_attention_map(const layer *l, network *net, int y, int x, float *map)
{
    tat_state *s = state_of(l);
    const float *student, *teacher;
    float *workspace;
    int i;
    if (!s->active || !net->teacher) return "no teacher attached";
#ifdef GPU
    if (embeddings_gpu(s)) {
        /* the forwards left the maps on the device (network_predict copies back only the
           last layer), the parameters may have moved there, and the host activations of
           the embeddings were dropped at setup */
        layer from = net->layers[s->from], tf = net->teacher->layers[s->teacher_layer];
        cuda_pull_array(from.output_gpu, from.output, from.outputs * from.batch);
        cuda_pull_array(tf.output_gpu, tf.output, tf.outputs * tf.batch);
        tat_gpu_params(s->owner ? s : s->shared, 1);
        for (i = 0; i < s->n_emb; ++i)
            if (i != EMB_V && !s->emb[i]->out) tat_embedding_alloc_activations(s->emb[i], s->batch, s->h, s->w);
    }
#endif
    student = net->layers[s->from].output;
    teacher = net->teacher->layers[s->teacher_layer].output;
    /* the query and the key, not the value; a layer sharing embeddings has no workspace of its
       own */
    workspace = tat_calloc(tat_conv_workspace_floats(s->batch, s->student_c, s->teacher_c, s->h, s->w, s->ksize), sizeof(float));
    for (i = 0; i < s->n_emb; ++i)
        if (i != EMB_V)
            tat_embedding_forward(s->emb[i], embedded_map(i, student, teacher), workspace, s->batch,
                                  s->h, s->w, s->bn_per_image);
    free(workspace);
    return tat_term_attention_map(&s->geom, s->emb[EMB_Q]->out, key_map(s, teacher), y, x, map);
}

static void free_tat_distill_layer(layer l)
{
    tat_state *s = state_of(&l);
    int i;
    if (!s) return;
#ifdef GPU
    tat_gpu_free_state(s);
#endif
    for (i = 0; s->owner && i < s->n_emb; ++i) tat_embedding_free(&s->own[i]);
    tat_term_free(&s->term);
    free(s->workspace);
    free(s);
}

/* [tat_distill] and [anchor_distill] share everything but their parsers. */
#ifdef GPU
#define TAT_GPU_OPS                                                                               \
    .forward_gpu = forward_tat_distill_layer_gpu, .backward_gpu = backward_tat_distill_layer_gpu, \
    .update_gpu = update_tat_distill_layer_gpu, .sync = sync_tat_distill_layer,
#else
#define TAT_GPU_OPS
#endif
#define TAT_OPS(t, parser)                                                                        \
    {.type = t, .parse = parser, .forward = forward_tat_distill_layer,                            \
     .backward = backward_tat_distill_layer, .update = update_tat_distill_layer, TAT_GPU_OPS      \
     .save_weights = save_tat_weights, .load_weights = load_tat_weights,                          \
     .free_layer = free_tat_distill_layer, .loss = tat_loss, .params = tat_params,                \
     .flops = tat_flops, .tensors = tat_tensors}
const distill_type_ops distill_tat_ops = TAT_OPS(TAT_DISTILL, parse_tat_distill);
const distill_type_ops distill_anchor_ops = TAT_OPS(ANCHOR_DISTILL, parse_anchor_distill);
