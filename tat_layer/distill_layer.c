#include "distill_layer.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "cuda.h"
#include "distill_plugin.h"
#include "option_list.h"
#include "tat.h"
#ifdef GPU
#include "tat_gpu.h"
#endif

typedef struct distill_state {
    int owner;                 /* holds the embeddings it uses                          */
    int from, teacher_layer;   /* absolute indices in the student and the teacher        */
    int batch, h, w, student_c, teacher_c;
    int ksize, key_learned, bn_per_image;
    float loss_weight;
    tat_embedding query, value, key;   /* owned embeddings (owner only)                 */
    tat_embedding *q, *v, *k;          /* the embeddings in use; k NULL: identity key    */
    int active;                        /* a teacher is attached: the term is allocated   */
    tat_term term;
    float *workspace;                  /* conv im2col scratch (owner only)               */
    float loss;                        /* weighted loss of the last forward, per image    */
    int index;                         /* this layer's index, for messages                */
    struct distill_state *shared;      /* the owner of the embeddings when not owner      */
    struct distill_gpu *gpu;           /* device state (GPU builds on a device, active)   */
} distill_state;

#ifdef GPU
static void distill_gpu_setup(const network *net, distill_state *s);
static void distill_gpu_params(distill_state *s, int to_host);
static void distill_gpu_free(distill_state *s);
#endif

int distill_finite(float x)
{
    /* by the bits: Darknet builds with -Ofast, under which isfinite() may fold to 1 */
    unsigned int u;
    memcpy(&u, &x, sizeof(u));
    return (u & 0x7f800000u) != 0x7f800000u;
}

static distill_state *state_of(const layer *l) { return (distill_state *)l->plugin_state; }

/* ---- parsing --------------------------------------------------------------------------- */

static const char *section_name(LAYER_TYPE t)
{
    return distill_layer_type_name(t);
}

void cfg_fail(network *net, int index, LAYER_TYPE t, const char *field, const char *fmt, ...)
{
    va_list ap;
    /* Darknet has printed this layer's index without a newline: start a line of our own */
    fprintf(stderr, "\n%s: [%s] (layer %d) %s: ", net->cfgfile ? net->cfgfile : "cfg",
            section_name(t), index, field);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    exit(1);
}

/* Darknet's own per-layer options, read by the parser after the layer's own. */
static const char *generic_fields[] = {"truth", "onlyforward", "stopbackward", "dontsave",
                                       "dontload", "numload", "dontloadscales", "learning_rate",
                                       "smooth", 0};

void check_fields(list *options, network *net, int index, LAYER_TYPE t, const char **known)
{
    node *n;
    for (n = options->front; n; n = n->next) {
        kvp *p = (kvp *)n->val;
        const char **k;
        int ok = 0;
        for (k = known; *k && !ok; ++k) ok = !strcmp(*k, p->key);
        for (k = generic_fields; *k && !ok; ++k) ok = !strcmp(*k, p->key);
        if (!ok) cfg_fail(net, index, t, p->key, "unknown field");
    }
}

static int parse_int_text(const char *s, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') ++end;
    if (errno || end == s || *end || v < -1000000000L || v > 1000000000L) return 0;
    *out = (int)v;
    return 1;
}

int int_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                     int def, int required)
{
    char *s = option_find(options, (char *)field);
    int v;
    if (!s) {
        if (required) cfg_fail(net, index, t, field, "missing (required)");
        return def;
    }
    if (!parse_int_text(s, &v)) cfg_fail(net, index, t, field, "'%s' is not an integer", s);
    return v;
}

float float_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                         float def)
{
    char *s = option_find(options, (char *)field), *end;
    float v;
    if (!s) return def;
    v = strtof(s, &end);
    while (*end == ' ' || *end == '\t') ++end;
    if (end == s || *end) cfg_fail(net, index, t, field, "'%s' is not a number", s);
    return v;
}

/* "rows,cols" */
static void pair_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                       int def, int *a, int *b)
{
    char *s = option_find(options, (char *)field), *comma;
    char first[64];
    *a = *b = def;
    if (!s) return;
    comma = strchr(s, ',');
    if (!comma || (size_t)(comma - s) >= sizeof(first))
        cfg_fail(net, index, t, field, "'%s' is not rows,cols", s);
    memcpy(first, s, comma - s);
    first[comma - s] = 0;
    if (!parse_int_text(first, a) || !parse_int_text(comma + 1, b))
        cfg_fail(net, index, t, field, "'%s' is not rows,cols", s);
}

int choice_field(list *options, network *net, int index, LAYER_TYPE t, const char *field,
                        const char *zero, const char *one)
{
    char *s = option_find(options, (char *)field);
    if (!s || !strcmp(s, zero)) return 0;
    if (!strcmp(s, one)) return 1;
    cfg_fail(net, index, t, field, "'%s' must be %s or %s", s, zero, one);
    return 0;
}

/* A student layer index: negative counts back from this layer. */
int student_index(network *net, int index, LAYER_TYPE t, int v)
{
    int abs_index = v < 0 ? index + v : v;
    if (abs_index < 0 || abs_index >= index)
        cfg_fail(net, index, t, "from", "%d is not an earlier layer (this is layer %d)", v, index);
    return abs_index;
}

/* Common part of both layer types: pass-through geometry, student/teacher checks. */
static layer make_passthrough(network *net, int index, LAYER_TYPE t, distill_state *s)
{
    layer l = {0};
    layer prev;
    if (index == 0) cfg_fail(net, index, t, "section", "cannot be the first layer: it passes its input through");
    prev = net->layers[index - 1];
    l.type = t;
    l.batch = net->batch;
    l.h = l.out_h = prev.out_h;
    l.w = l.out_w = prev.out_w;
    l.c = l.out_c = prev.out_c;
    l.inputs = l.outputs = prev.outputs;
    l.output = prev.output;
    l.delta = prev.delta;
    l.forward = forward_distill_layer;
    l.backward = backward_distill_layer;
    l.update = update_distill_layer;
#ifdef GPU
    l.output_gpu = prev.output_gpu;
    l.delta_gpu = prev.delta_gpu;
    l.forward_gpu = forward_distill_layer_gpu;
    l.backward_gpu = backward_distill_layer_gpu;
    l.update_gpu = update_distill_layer_gpu;
#endif
    l.plugin_state = s;
    s->index = index;
    s->batch = net->batch;
    s->h = net->layers[s->from].out_h;
    s->w = net->layers[s->from].out_w;
    s->student_c = net->layers[s->from].out_c;
    if (s->teacher_c < 1) cfg_fail(net, index, t, "teacher_channels", "must be at least 1");
    if (net->teacher) {
        network *teacher = net->teacher;
        int tl = s->teacher_layer < 0 ? teacher->n + s->teacher_layer : s->teacher_layer;
        layer tf;
        if (tl < 0 || tl >= teacher->n)
            cfg_fail(net, index, t, "teacher_layer", "%d is out of range: the teacher %s has %d layers",
                     s->teacher_layer, teacher->cfgfile, teacher->n);
        s->teacher_layer = tl;
        tf = teacher->layers[tl];
        if (tf.out_c != s->teacher_c)
            cfg_fail(net, index, t, "teacher_channels", "%d, but teacher layer %d (%s) has %d channels",
                     s->teacher_c, tl, teacher->cfgfile, tf.out_c);
        if (tf.out_h != s->h || tf.out_w != s->w)
            cfg_fail(net, index, t, "teacher_layer",
                     "teacher layer %d is %d x %d but student layer %d is %d x %d: the maps must have the same size",
                     tl, tf.out_w, tf.out_h, s->from, s->w, s->h);
        s->active = 1;
    }
    return l;
}

static void init_owned_embeddings(distill_state *s)
{
    s->owner = 1;
    tat_embedding_init(&s->query, s->student_c, s->teacher_c, s->ksize);
    tat_embedding_init(&s->value, s->student_c, s->teacher_c, s->ksize);
    s->q = &s->query;
    s->v = &s->value;
    s->k = 0;
    if (s->key_learned) {
        tat_embedding_init(&s->key, s->teacher_c, s->teacher_c, 1);
        s->k = &s->key;
    }
    if (s->active) {
        size_t ws = tat_conv_workspace_floats(s->student_c, s->h, s->w, s->ksize);
        tat_embedding_alloc_activations(s->q, s->batch, s->h, s->w);
        tat_embedding_alloc_activations(s->v, s->batch, s->h, s->w);
        if (s->k) tat_embedding_alloc_activations(s->k, s->batch, s->h, s->w);
        s->workspace = calloc(ws ? ws : 1, sizeof(float));
    }
}

static void read_embedding_options(list *options, network *net, int index, LAYER_TYPE t,
                                   distill_state *s)
{
    s->ksize = int_field(options, net, index, t, "size", 1, 0);
    if (s->ksize != 1 && s->ksize != 3) cfg_fail(net, index, t, "size", "%d: must be 1 or 3", s->ksize);
    s->key_learned = choice_field(options, net, index, t, "key", "identity", "learned");
    s->bn_per_image = choice_field(options, net, index, t, "bn", "batch", "image");
}

static void print_layer_line(const layer *l, const char *what)
{
    distill_state *s = state_of(l);
    fprintf(stderr, "%-14s student %d: %d x %d x %d, teacher %d: %d ch; %s; %zu params  %5.3f BFLOPs%s\n",
            section_name(l->type), s->from, s->w, s->h, s->student_c, s->teacher_layer, s->teacher_c,
            what, distill_layer_params(l), distill_layer_flops(l) / 1e9,
            s->active ? "" : "  (inactive: no teacher)");
}

layer parse_tat_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "size", "key",
                                  "grid", "groups", "bn", "loss_weight", 0};
    LAYER_TYPE t = TAT_DISTILL;
    distill_state *s = calloc(1, sizeof(*s));
    layer l;
    const char *err;
    int grid_h, grid_w, groups;
    char what[128];
    check_fields(options, net, index, t, known);
    s->from = student_index(net, index, t, int_field(options, net, index, t, "from", -1, 0));
    s->teacher_layer = int_field(options, net, index, t, "teacher_layer", 0, 1);
    s->teacher_c = int_field(options, net, index, t, "teacher_channels", 0, 1);
    read_embedding_options(options, net, index, t, s);
    pair_field(options, net, index, t, "grid", 1, &grid_h, &grid_w);
    groups = int_field(options, net, index, t, "groups", 1, 0);
    s->loss_weight = float_field(options, net, index, t, "loss_weight", 1);
    if (!distill_finite(s->loss_weight) || s->loss_weight < 0)
        cfg_fail(net, index, t, "loss_weight", "%g: must be a finite number >= 0", s->loss_weight);
    l = make_passthrough(net, index, t, s);
    /* a grid that fails even with one group is the grid's fault, else the groups' */
    err = tat_patch_geometry_error(s->h, s->w, grid_h, grid_w, 1);
    if (err) cfg_fail(net, index, t, "grid", "%s (grid %d,%d, map %d x %d)", err, grid_h, grid_w, s->w, s->h);
    err = tat_patch_geometry_error(s->h, s->w, grid_h, grid_w, groups);
    if (err) cfg_fail(net, index, t, "groups", "%s (grid %d,%d = %d patches, groups %d)", err, grid_h, grid_w, grid_h * grid_w, groups);
    init_owned_embeddings(s);
    if (s->active) tat_term_init_patch(&s->term, s->batch, s->teacher_c, s->h, s->w, grid_h, grid_w, groups);
    else {
        /* shape only, for the FLOPs line: no buffers without a teacher */
        s->term.batch = 1;
        s->term.n_blocks = groups;
        s->term.N = (s->h / grid_h) * (s->w / grid_w);
        s->term.d = grid_h * grid_w / groups * s->teacher_c;
    }
#ifdef GPU
    distill_gpu_setup(net, s);
#endif
    snprintf(what, sizeof(what), "grid %d,%d groups %d, q/v %dx%d, key %s, bn %s", grid_h, grid_w,
             groups, s->ksize, s->ksize, s->key_learned ? "learned" : "identity",
             s->bn_per_image ? "image" : "batch");
    print_layer_line(&l, what);
    return l;
}

layer parse_anchor_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "size", "key",
                                  "bn", "embeddings", "anchors", "loss_weight", 0};
    LAYER_TYPE t = ANCHOR_DISTILL;
    distill_state *s = calloc(1, sizeof(*s));
    distill_state *shared = 0;
    layer l;
    const char *err;
    int anchor_h, anchor_w;
    char what[128];
    check_fields(options, net, index, t, known);
    if (option_find(options, "embeddings")) {
        int e = int_field(options, net, index, t, "embeddings", 0, 1);
        int ei = e < 0 ? index + e : e;
        if (ei < 0 || ei >= index || net->layers[ei].type != TAT_DISTILL)
            cfg_fail(net, index, t, "embeddings", "%d is not an earlier [tat_distill] layer", e);
        shared = state_of(&net->layers[ei]);
        if (option_find(options, "size") || option_find(options, "key") || option_find(options, "bn"))
            cfg_fail(net, index, t, "embeddings", "size, key and bn come from the shared layer %d: remove them here", ei);
        *s = *shared; /* same student/teacher maps and embedding settings */
        s->owner = 0;
        s->shared = shared;
        s->gpu = 0;
        s->workspace = 0;
        memset(&s->query, 0, sizeof(s->query));
        memset(&s->value, 0, sizeof(s->value));
        memset(&s->key, 0, sizeof(s->key));
        memset(&s->term, 0, sizeof(s->term));
        if (option_find(options, "from") &&
            student_index(net, index, t, int_field(options, net, index, t, "from", -1, 0)) != shared->from)
            cfg_fail(net, index, t, "from", "differs from the shared layer %d's (%d)", ei, shared->from);
        if (option_find(options, "teacher_channels") &&
            int_field(options, net, index, t, "teacher_channels", 0, 1) != shared->teacher_c)
            cfg_fail(net, index, t, "teacher_channels", "differs from the shared layer %d's (%d)", ei, shared->teacher_c);
        if (option_find(options, "teacher_layer")) {
            int tl = int_field(options, net, index, t, "teacher_layer", 0, 1);
            if (net->teacher && tl < 0) tl += net->teacher->n;
            if (net->teacher && tl != shared->teacher_layer)
                cfg_fail(net, index, t, "teacher_layer", "differs from the shared layer %d's (%d)", ei, shared->teacher_layer);
        }
    } else {
        s->from = student_index(net, index, t, int_field(options, net, index, t, "from", -1, 0));
        s->teacher_layer = int_field(options, net, index, t, "teacher_layer", 0, 1);
        s->teacher_c = int_field(options, net, index, t, "teacher_channels", 0, 1);
        read_embedding_options(options, net, index, t, s);
    }
    pair_field(options, net, index, t, "anchors", 0, &anchor_h, &anchor_w);
    if (!option_find(options, "anchors")) cfg_fail(net, index, t, "anchors", "missing (required)");
    s->loss_weight = float_field(options, net, index, t, "loss_weight", 1);
    if (!distill_finite(s->loss_weight) || s->loss_weight < 0)
        cfg_fail(net, index, t, "loss_weight", "%g: must be a finite number >= 0", s->loss_weight);
    if (shared) {
        /* the shared layer already resolved and checked everything against the teacher */
        l = make_passthrough(net, index, t, s);
        s->teacher_layer = shared->teacher_layer;
        s->q = &shared->query;
        s->v = &shared->value;
        s->k = shared->key_learned ? &shared->key : 0;
    } else {
        l = make_passthrough(net, index, t, s);
        init_owned_embeddings(s);
    }
    err = tat_anchor_geometry_error(s->h, s->w, anchor_h, anchor_w);
    if (err) cfg_fail(net, index, t, "anchors", "%s (anchors %d,%d, map %d x %d)", err, anchor_h, anchor_w, s->w, s->h);
    if (s->active) tat_term_init_anchor(&s->term, s->batch, s->teacher_c, s->h, s->w, anchor_h, anchor_w);
    else {
        s->term.batch = 1;
        s->term.n_blocks = 1;
        s->term.N = (s->h / (s->h / anchor_h)) * (s->w / (s->w / anchor_w));
        s->term.d = s->teacher_c;
    }
#ifdef GPU
    distill_gpu_setup(net, s);
#endif
    snprintf(what, sizeof(what), "anchors %d,%d (%d positions), %s", anchor_h, anchor_w, s->term.N,
             shared ? "shared embeddings" : "own embeddings");
    print_layer_line(&l, what);
    return l;
}

/* ---- forward / backward / update ------------------------------------------------------- */

static int distilling(const distill_state *s, const network *net)
{
    return s->active && net->train && net->teacher;
}

/* The weighted loss per image from the sum of squared errors; a non-finite loss stops the
   run before this step's update and before any save: the backups on disk stay the last good
   ones. */
static void set_loss(const layer *l, const network *net, distill_state *s, double sse)
{
    s->loss = (float)(s->loss_weight * sse / ((double)tat_term_elements_per_image(&s->term) * s->batch));
    distill_stop_if_not_finite(net, l, s->index, s->loss);
}

void forward_distill_layer(const layer l, network net)
{
    distill_state *s = state_of(&l);
    const float *student, *teacher;
    double sse;
    s->loss = 0;
    if (!distilling(s, &net)) return;
    student = net.layers[s->from].output;
    teacher = net.teacher->layers[s->teacher_layer].output;
    if (s->owner) {
        tat_embedding_forward(s->q, student, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
        tat_embedding_forward(s->v, student, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->k) tat_embedding_forward(s->k, teacher, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
    sse = tat_term_forward(&s->term, s->q->out, s->k ? s->k->out : teacher, s->v->out, teacher);
    set_loss(&l, &net, s, sse);
}

void backward_distill_layer(const layer l, network net)
{
    distill_state *s = state_of(&l);
    /* Darknet's delta is the negative gradient of the loss summed over the batch: each
       image's term is loss_weight * MSE, hence the negative per-image weight */
    float w = -s->loss_weight / (float)tat_term_elements_per_image(&s->term);
    if (!distilling(s, &net)) return;
    tat_term_backward(&s->term, s->q->out_grad, s->k ? s->k->out_grad : 0, s->v->out_grad, w);
    if (s->owner) {
        /* layers sharing these embeddings come later, so their backward already ran */
        const float *student = net.layers[s->from].output;
        const float *teacher = net.teacher->layers[s->teacher_layer].output;
        float *d_student = net.layers[s->from].delta;
        tat_embedding_backward(s->q, d_student, student, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
        tat_embedding_backward(s->v, d_student, student, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->k) tat_embedding_backward(s->k, 0, teacher, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
}

void update_embedding(tat_embedding *e, update_args a, float learning_rate)
{
    int nw = e->out_c * e->in_c * e->ksize * e->ksize;
    /* as Darknet's convolution with batch_normalize: decay on the weights only */
    axpy_cpu(e->out_c, learning_rate / a.batch, e->bias_grads, 1, e->biases, 1);
    scal_cpu(e->out_c, a.momentum, e->bias_grads, 1);
    axpy_cpu(e->out_c, learning_rate / a.batch, e->scale_grads, 1, e->scales, 1);
    scal_cpu(e->out_c, a.momentum, e->scale_grads, 1);
    axpy_cpu(nw, -a.decay * a.batch, e->weights, 1, e->weight_grads, 1);
    axpy_cpu(nw, learning_rate / a.batch, e->weight_grads, 1, e->weights, 1);
    scal_cpu(nw, a.momentum, e->weight_grads, 1);
}

void update_distill_layer(const layer l, update_args a)
{
    distill_state *s = state_of(&l);
    float learning_rate = a.learning_rate * l.learning_rate_scale;
    /* without a teacher nothing was learned: do not let decay shrink the embeddings */
    if (!s->owner || !s->active) return;
    update_embedding(s->q, a, learning_rate);
    update_embedding(s->v, a, learning_rate);
    if (s->k) update_embedding(s->k, a, learning_rate);
}

#ifdef GPU
/* On a device everything per batch stays there: the embeddings' parameters, gradients and
   activations, the blocks and attention matrices (all sized once, here), the student's and
   the teacher's maps (the teacher runs on the same device), the student's delta. Only the
   loss comes back, one double per layer and batch. The host copies of the parameters are
   brought up to date for saving (distill_gpu_params). */
struct distill_gpu {
    tat_gpu_embedding query, value, key; /* owner only; key when learned */
    tat_gpu_term term;
    float *workspace;                    /* im2col of the whole batch (3x3 embeddings) */
};

static void drop_host_activations(tat_embedding *e)
{
    /* the device has its own; the host ones would only take memory */
    free(e->x_hat);
    free(e->out);
    free(e->out_grad);
    free(e->mean);
    free(e->inv_std);
    e->x_hat = e->out = e->out_grad = e->mean = e->inv_std = 0;
}

static void distill_gpu_setup(const network *net, distill_state *s)
{
    struct distill_gpu *g;
    tat_term geom;
    char context[512];
    if (gpu_index < 0 || !s->active) return;
    snprintf(context, sizeof(context), "%s: [%s] (layer %d)", net->cfgfile ? net->cfgfile : "cfg",
             section_name(s->term.kind == TAT_TERM_ANCHORS ? ANCHOR_DISTILL : TAT_DISTILL), s->index);
    tat_gpu_set_alloc_context(context);
    g = calloc(1, sizeof(*g));
    if (s->owner) {
        size_t ws = tat_gpu_conv_workspace_floats(s->batch, s->student_c, s->h, s->w, s->ksize);
        tat_gpu_embedding_init(&g->query, s->q, s->batch, s->h, s->w);
        tat_gpu_embedding_init(&g->value, s->v, s->batch, s->h, s->w);
        if (s->k) tat_gpu_embedding_init(&g->key, s->k, s->batch, s->h, s->w);
        g->workspace = cuda_make_array(0, ws ? ws : 1);
        drop_host_activations(s->q);
        drop_host_activations(s->v);
        if (s->k) drop_host_activations(s->k);
    }
    tat_gpu_term_init(&g->term, &s->term);
    /* keep the term's geometry (loss normalisation, FLOPs), drop its host buffers */
    geom = g->term.geom;
    tat_term_free(&s->term);
    s->term = geom;
    s->gpu = g;
    /* multi-GPU training averages the embeddings across replicas (patch 0031) */
    sync_layer_hook = distill_sync_layer;
}

static void distill_gpu_free(distill_state *s)
{
    struct distill_gpu *g = s->gpu;
    if (!g) return;
    if (s->owner) {
        tat_gpu_embedding_free(&g->query);
        tat_gpu_embedding_free(&g->value);
        if (s->k) tat_gpu_embedding_free(&g->key);
        cuda_free(g->workspace);
    }
    tat_gpu_term_free(&g->term);
    free(g);
    s->gpu = 0;
}

/* Parameters device -> host (to_host 1, before saving) or host -> device (after loading). */
static void distill_gpu_params(distill_state *s, int to_host)
{
    struct distill_gpu *g = s->gpu;
    if (!g || !s->owner) return;
    if (to_host) {
        tat_gpu_embedding_pull(&g->query, s->q);
        tat_gpu_embedding_pull(&g->value, s->v);
        if (s->k) tat_gpu_embedding_pull(&g->key, s->k);
    } else {
        tat_gpu_embedding_push(&g->query, s->q);
        tat_gpu_embedding_push(&g->value, s->v);
        if (s->k) tat_gpu_embedding_push(&g->key, s->k);
    }
}

/* The embeddings in use: the layer's own or those of the [tat_distill] it shares. */
static struct distill_gpu *embeddings_gpu(distill_state *s)
{
    return s->owner ? s->gpu : s->shared->gpu;
}

void forward_distill_layer_gpu(const layer l, network net)
{
    distill_state *s = state_of(&l);
    struct distill_gpu *g = s->gpu, *e;
    const float *student, *teacher;
    double sse;
    s->loss = 0;
    if (!distilling(s, &net) || !g) return;
    e = embeddings_gpu(s);
    student = net.layers[s->from].output_gpu;
    teacher = net.teacher->layers[s->teacher_layer].output_gpu;
    if (s->owner) {
        tat_gpu_embedding_forward(&e->query, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        tat_gpu_embedding_forward(&e->value, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->k) tat_gpu_embedding_forward(&e->key, teacher, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
    sse = tat_gpu_term_forward(&g->term, e->query.out, s->k ? e->key.out : teacher, e->value.out,
                               teacher);
    set_loss(&l, &net, s, sse);
}

void backward_distill_layer_gpu(const layer l, network net)
{
    distill_state *s = state_of(&l);
    struct distill_gpu *g = s->gpu, *e;
    /* as backward_distill_layer: the negative per-image weight */
    float w = -s->loss_weight / (float)tat_term_elements_per_image(&s->term);
    if (!distilling(s, &net) || !g) return;
    e = embeddings_gpu(s);
    tat_gpu_term_backward(&g->term, e->query.out_grad, s->k ? e->key.out_grad : 0,
                          e->value.out_grad, w);
    if (s->owner) {
        const float *student = net.layers[s->from].output_gpu;
        const float *teacher = net.teacher->layers[s->teacher_layer].output_gpu;
        float *d_student = net.layers[s->from].delta_gpu;
        tat_gpu_embedding_backward(&e->query, d_student, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        tat_gpu_embedding_backward(&e->value, d_student, student, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
        if (s->k) tat_gpu_embedding_backward(&e->key, 0, teacher, g->workspace, s->batch, s->h, s->w, s->bn_per_image);
    }
}

/* update_embedding's steps, in the same order, with Darknet's GPU blas */
static void update_embedding_gpu(tat_gpu_embedding *e, update_args a, float learning_rate)
{
    int nw = e->out_c * e->in_c * e->ksize * e->ksize;
    axpy_gpu(e->out_c, learning_rate / a.batch, e->bias_grads, 1, e->biases, 1);
    scal_gpu(e->out_c, a.momentum, e->bias_grads, 1);
    axpy_gpu(e->out_c, learning_rate / a.batch, e->scale_grads, 1, e->scales, 1);
    scal_gpu(e->out_c, a.momentum, e->scale_grads, 1);
    axpy_gpu(nw, -a.decay * a.batch, e->weights, 1, e->weight_grads, 1);
    axpy_gpu(nw, learning_rate / a.batch, e->weight_grads, 1, e->weights, 1);
    scal_gpu(nw, a.momentum, e->weight_grads, 1);
}

void update_distill_layer_gpu(const layer l, update_args a)
{
    distill_state *s = state_of(&l);
    float learning_rate = a.learning_rate * l.learning_rate_scale;
    if (!s->owner || !s->active || !s->gpu) return;
    update_embedding_gpu(&s->gpu->query, a, learning_rate);
    update_embedding_gpu(&s->gpu->value, a, learning_rate);
    if (s->k) update_embedding_gpu(&s->gpu->key, a, learning_rate);
}

/* One parameter array averaged over the replicas, through the host (as Darknet's
   sync_layer does for its own layers); tmp and sum hold n floats. */
static void average_array(float **replica, const int *device, int nrep, int n, float *tmp,
                          float *sum)
{
    int i;
    memset(sum, 0, n * sizeof(float));
    for (i = 0; i < nrep; ++i) {
        cuda_set_device(device[i]);
        cuda_pull_array(replica[i], tmp, n);
        axpy_cpu(n, 1, tmp, 1, sum, 1);
    }
    scal_cpu(n, 1.f / nrep, sum, 1);
    for (i = 0; i < nrep; ++i) {
        cuda_set_device(device[i]);
        cuda_push_array(replica[i], sum, n);
    }
}

int distill_sync_layer(network **nets, int n, int j)
{
    distill_state *s0;
    float **rep;
    int *dev, i, e;
    /* only the TaT types hold a distill_state; the baselines' state is another struct */
    if (nets[0]->layers[j].type != TAT_DISTILL && nets[0]->layers[j].type != ANCHOR_DISTILL) return 0;
    s0 = state_of(&nets[0]->layers[j]);
    if (!s0->owner || !s0->gpu) return 1; /* nothing learned here */
    rep = calloc(n, sizeof(*rep));
    dev = calloc(n, sizeof(*dev));
    for (i = 0; i < n; ++i) dev[i] = nets[i]->gpu_index;
    for (e = 0; e < (s0->k ? 3 : 2); ++e) {
        tat_gpu_embedding *g0 = e == 0 ? &s0->gpu->query : e == 1 ? &s0->gpu->value : &s0->gpu->key;
        int nw = g0->out_c * g0->in_c * g0->ksize * g0->ksize, a;
        float *tmp = calloc(nw, sizeof(float)), *sum = calloc(nw, sizeof(float));
        for (a = 0; a < 3; ++a) {
            for (i = 0; i < n; ++i) {
                distill_state *si = state_of(&nets[i]->layers[j]);
                tat_gpu_embedding *gi = e == 0 ? &si->gpu->query : e == 1 ? &si->gpu->value : &si->gpu->key;
                rep[i] = a == 0 ? gi->weights : a == 1 ? gi->scales : gi->biases;
            }
            average_array(rep, dev, n, a == 0 ? nw : g0->out_c, tmp, sum);
        }
        free(tmp);
        free(sum);
    }
    free(rep);
    free(dev);
    return 1;
}
#endif

/* ---- weights, accounting, free --------------------------------------------------------- */

void embedding_io(tat_embedding *e, FILE *fp, int save)
{
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize;
    if (save) {
        fwrite(e->biases, sizeof(float), e->out_c, fp);
        fwrite(e->scales, sizeof(float), e->out_c, fp);
        fwrite(e->weights, sizeof(float), nw, fp);
    } else {
        /* short reads are caught by load_weights_upto's end-of-file check */
        fread(e->biases, sizeof(float), e->out_c, fp);
        fread(e->scales, sizeof(float), e->out_c, fp);
        fread(e->weights, sizeof(float), nw, fp);
    }
}

static void distill_weights_io(layer l, FILE *fp, int save)
{
    distill_state *s = state_of(&l);
    if (!s->owner) return;
#ifdef GPU
    if (save) distill_gpu_params(s, 1);
#endif
    embedding_io(s->q, fp, save);
    embedding_io(s->v, fp, save);
    if (s->k) embedding_io(s->k, fp, save);
#ifdef GPU
    if (!save) distill_gpu_params(s, 0);
#endif
}

void save_distill_weights(layer l, FILE *fp) { distill_weights_io(l, fp, 1); }
void load_distill_weights(layer l, FILE *fp) { distill_weights_io(l, fp, 0); }

float tat_distill_layer_loss(const layer *l) { return state_of(l)->loss; }

size_t tat_distill_layer_params(const layer *l)
{
    distill_state *s = state_of(l);
    if (!s->owner) return 0;
    return tat_embedding_num_params(s->q) + tat_embedding_num_params(s->v) +
           (s->k ? tat_embedding_num_params(s->k) : 0);
}

double tat_distill_layer_flops(const layer *l)
{
    distill_state *s = state_of(l);
    double hw = (double)s->h * s->w, f = tat_term_flops_per_image(&s->term);
    if (s->owner) {
        f += 2 * 2.0 * s->teacher_c * s->student_c * s->ksize * s->ksize * hw;
        if (s->k) f += 2.0 * s->teacher_c * s->teacher_c * hw;
    }
    return f;
}

/* ---- attention maps (inspection) ------------------------------------------------------- */

void distill_layer_map_size(const layer *l, int *h, int *w)
{
    *h = state_of(l)->h;
    *w = state_of(l)->w;
}

/* Row `row` of one block's softmax(Q^T K): weights[N]. Blocks are channel-major (d x N). */
static void attention_row(float *weights, const float *Q, const float *K, int N, int d, int row)
{
    int i, c;
    float max = -1e30f;
    double sum = 0;
    for (i = 0; i < N; ++i) {
        double dot = 0;
        for (c = 0; c < d; ++c) dot += (double)Q[c * N + row] * K[c * N + i];
        weights[i] = (float)dot;
        if (weights[i] > max) max = weights[i];
    }
    for (i = 0; i < N; ++i) sum += weights[i] = expf(weights[i] - max);
    for (i = 0; i < N; ++i) weights[i] = (float)(weights[i] / sum);
}

const char *distill_layer_attention(const layer *l, network *net, int y, int x, float *map)
{
    distill_state *s = state_of(l);
    const tat_term *t = &s->term;
    const float *student, *teacher, *q, *k;
    size_t plane = (size_t)s->h * s->w, image = plane * s->teacher_c;
    float *weights, *workspace;
    int i;
    if (!s->active || !net->teacher) return "no teacher attached";
    if (y < 0 || y >= s->h || x < 0 || x >= s->w) return "the position is outside the map";
#ifdef GPU
    if (embeddings_gpu(s)) {
        /* the forwards left the maps on the device (network_predict copies back only the
           last layer), the parameters may have moved there, and the host activations of
           the embeddings were dropped at setup */
        layer from = net->layers[s->from], tf = net->teacher->layers[s->teacher_layer];
        cuda_pull_array(from.output_gpu, from.output, from.outputs * from.batch);
        cuda_pull_array(tf.output_gpu, tf.output, tf.outputs * tf.batch);
        distill_gpu_params(s->owner ? s : s->shared, 1);
        if (!s->q->out) tat_embedding_alloc_activations(s->q, s->batch, s->h, s->w);
        if (s->k && !s->k->out) tat_embedding_alloc_activations(s->k, s->batch, s->h, s->w);
    }
#endif
    student = net->layers[s->from].output;
    teacher = net->teacher->layers[s->teacher_layer].output;
    /* a layer sharing embeddings has no workspace of its own */
    workspace = calloc(tat_conv_workspace_floats(s->student_c, s->h, s->w, s->ksize) + 1, sizeof(float));
    tat_embedding_forward(s->q, student, workspace, s->batch, s->h, s->w, s->bn_per_image);
    q = s->q->out;
    k = teacher;
    if (s->k) {
        tat_embedding_forward(s->k, teacher, workspace, s->batch, s->h, s->w, s->bn_per_image);
        k = s->k->out;
    }
    free(workspace);
    memset(map, 0, plane * sizeof(float));
    weights = calloc(t->N, sizeof(float));
    if (l->type == TAT_DISTILL) {
        int ph = s->h / t->grid_h, pw = s->w / t->grid_w;
        int per_group = t->grid_h * t->grid_w / t->groups;
        int pi = y / ph, pj = x / pw, group, p;
        float *qb, *kb;
        if (pi >= t->grid_h || pj >= t->grid_w) {
            free(weights);
            return "the position is in the rows/columns the patch grid leaves out";
        }
        group = (pi * t->grid_w + pj) / per_group;
        qb = malloc(image * sizeof(float));
        kb = malloc(image * sizeof(float));
        tat_patch_gather(qb, q, 1, s->teacher_c, s->h, s->w, t->grid_h, t->grid_w, t->groups);
        tat_patch_gather(kb, k, 1, s->teacher_c, s->h, s->w, t->grid_h, t->grid_w, t->groups);
        attention_row(weights, qb + (size_t)group * t->d * t->N, kb + (size_t)group * t->d * t->N,
                      t->N, t->d, (y % ph) * pw + x % pw);
        for (p = group * per_group; p < (group + 1) * per_group; ++p)
            for (i = 0; i < t->N; ++i)
                map[(p / t->grid_w * ph + i / pw) * s->w + p % t->grid_w * pw + i % pw] = weights[i];
        free(qb);
        free(kb);
    } else {
        int ah = s->h / t->pool_h, aw = s->w / t->pool_w, yy, xx;
        float *qa = malloc((size_t)t->N * s->teacher_c * sizeof(float));
        float *ka = malloc((size_t)t->N * s->teacher_c * sizeof(float));
        if (y / t->pool_h >= ah || x / t->pool_w >= aw) {
            free(weights);
            free(qa);
            free(ka);
            return "the position is in the rows/columns the anchor pooling leaves out";
        }
        tat_avgpool_forward(qa, q, 1, s->teacher_c, s->h, s->w, t->pool_h, t->pool_w);
        tat_avgpool_forward(ka, k, 1, s->teacher_c, s->h, s->w, t->pool_h, t->pool_w);
        attention_row(weights, qa, ka, t->N, s->teacher_c, y / t->pool_h * aw + x / t->pool_w);
        for (yy = 0; yy < ah * t->pool_h; ++yy)
            for (xx = 0; xx < aw * t->pool_w; ++xx)
                map[yy * s->w + xx] = weights[yy / t->pool_h * aw + xx / t->pool_w];
        free(qa);
        free(ka);
    }
    free(weights);
    return 0;
}

void free_distill_layer(layer l)
{
    distill_state *s = state_of(&l);
    if (!s) return;
#ifdef GPU
    distill_gpu_free(s);
#endif
    if (s->owner) {
        tat_embedding_free(&s->query);
        tat_embedding_free(&s->value);
        if (s->key_learned) tat_embedding_free(&s->key);
    }
    if (s->active) tat_term_free(&s->term);
    free(s->workspace);
    free(s);
}
