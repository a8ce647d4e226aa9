#include "distill_common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "blas.h"
#include "cuda.h"
#include "option_list.h"
#ifdef GPU
#include "tat_gpu.h"
#endif

/* ---- type names ------------------------------------------------------------------------- */

#define DISTILL_TYPE_NAME(type, section) {type, section},
static const struct {
    LAYER_TYPE type;
    const char *name;
} type_names[] = {DISTILL_LAYER_TYPES(DISTILL_TYPE_NAME)};
#undef DISTILL_TYPE_NAME

#define N_TYPES ((int)(sizeof(type_names) / sizeof(type_names[0])))

static int type_index(LAYER_TYPE t)
{
    int i;
    for (i = 0; i < N_TYPES; ++i)
        if (type_names[i].type == t) return i;
    return -1;
}

const char *distill_layer_type_name(LAYER_TYPE t)
{
    int i = type_index(t);
    return i < 0 ? "?" : type_names[i].name;
}

int distill_is_layer_type(LAYER_TYPE t) { return type_index(t) >= 0; }

LAYER_TYPE distill_layer_type_of_section(const char *section)
{
    size_t len = strlen(section);
    int i;
    if (len < 2 || section[0] != '[' || section[len - 1] != ']') return BLANK;
    for (i = 0; i < N_TYPES; ++i)
        if (strlen(type_names[i].name) == len - 2 && !strncmp(section + 1, type_names[i].name, len - 2))
            return type_names[i].type;
    return BLANK;
}

/* ---- cfg fields ------------------------------------------------------------------------- */

void distill_cfg_fail(const distill_cfg *c, const char *field, const char *fmt, ...)
{
    char where[1024];
    va_list ap;
    /* Darknet has printed this layer's index without a newline: the message completes that
       row of the layer table (the parse-errors-on-their-row patch) */
    snprintf(where, sizeof where, "%s: [%s] (layer %d) %s: ", c->net->cfgfile ? c->net->cfgfile : "cfg",
             distill_layer_type_name(c->type), c->index, field);
    va_start(ap, fmt);
    tat_vfail(where, fmt, ap);
}

/* Darknet's own per-layer options, read by the parser after the layer's own. */
static const char *generic_fields[] = {"truth", "onlyforward", "stopbackward", "dontsave",
                                       "dontload", "numload", "dontloadscales", "learning_rate",
                                       "smooth", 0};

void distill_refuse_repeated_fields(const list *options, const char *cfgfile, const char *section)
{
    node *n, *m;
    for (n = options->front; n; n = n->next)
        for (m = n->next; m; m = m->next) {
            const kvp *a = (const kvp *)n->val, *b = (const kvp *)m->val;
            if (strcmp(a->key, b->key)) continue;
            tat_fail("%s: %s %s: given twice (%s=%s, then %s=%s): give it once", cfgfile ? cfgfile : "cfg",
                     section, a->key, a->key, a->val ? a->val : "", b->key, b->val ? b->val : "");
        }
}

void distill_cfg_check_fields(const distill_cfg *c, const char **known)
{
    node *n;
    char section[128];
    snprintf(section, sizeof section, "[%s] (layer %d)", distill_layer_type_name(c->type), c->index);
    distill_refuse_repeated_fields(c->options, c->net->cfgfile, section);
    for (n = c->options->front; n; n = n->next) {
        kvp *p = (kvp *)n->val;
        const char **k;
        int ok = 0;
        for (k = known; *k && !ok; ++k) ok = !strcmp(*k, p->key);
        for (k = generic_fields; *k && !ok; ++k) ok = !strcmp(*k, p->key);
        ok |= !strcmp(p->key, "tf32");
        if (!ok) distill_cfg_fail(c, p->key, "unknown field");
    }
    distill_cfg_read_tf32(c);
}

void distill_cfg_read_tf32(const distill_cfg *c)
{
    int on = distill_cfg_int(c, "tf32", 0, 0);
    if (on != 0 && on != 1) distill_cfg_fail(c, "tf32", "%d: must be 0 or 1", on);
#ifdef GPU
    if (on) tat_gpu_set_tf32(1);
#endif
}

int distill_cfg_has(const distill_cfg *c, const char *field)
{
    return option_find(c->options, (char *)field) != 0;
}

#define CFG_INT_LIMIT 1000000000 /* beyond any layer index, channel count or grid */

/* 1: an integer; 0: not an integer; -1: an integer beyond +-CFG_INT_LIMIT. */
static int parse_int_text(const char *s, int *out)
{
    char *end;
    long v;
    errno = 0;
    v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t') ++end;
    if (end == s || *end) return 0;
    if (errno || v < -CFG_INT_LIMIT || v > CFG_INT_LIMIT) return -1;
    *out = (int)v;
    return 1;
}

static void int_or_fail(const distill_cfg *c, const char *field, const char *text, int *out)
{
    int parsed = parse_int_text(text, out);
    if (parsed == 0) distill_cfg_fail(c, field, "'%s' is not an integer", text);
    if (parsed < 0) distill_cfg_fail(c, field, "%s is out of range (-%d..%d)", text, CFG_INT_LIMIT, CFG_INT_LIMIT);
}

int distill_cfg_int(const distill_cfg *c, const char *field, int def, int required)
{
    char *s = option_find(c->options, (char *)field);
    int v;
    if (!s) {
        if (required) distill_cfg_fail(c, field, "missing (required)");
        return def;
    }
    int_or_fail(c, field, s, &v);
    return v;
}

float distill_cfg_float(const distill_cfg *c, const char *field, float def)
{
    char *s = option_find(c->options, (char *)field), *end;
    float v;
    if (!s) return def;
    v = strtof(s, &end);
    while (*end == ' ' || *end == '\t') ++end;
    if (end == s || *end) distill_cfg_fail(c, field, "'%s' is not a number", s);
    return v;
}

void distill_cfg_pair(const distill_cfg *c, const char *field, int def, int *a, int *b)
{
    char *s = option_find(c->options, (char *)field), *comma;
    char first[64];
    *a = *b = def;
    if (!s) return;
    comma = strchr(s, ',');
    if (!comma || (size_t)(comma - s) >= sizeof(first)) distill_cfg_fail(c, field, "'%s' is not rows,cols", s);
    memcpy(first, s, comma - s);
    first[comma - s] = 0;
    if (!parse_int_text(first, a) || !parse_int_text(comma + 1, b))
        distill_cfg_fail(c, field, "'%s' is not rows,cols", s);
    int_or_fail(c, field, first, a);
    int_or_fail(c, field, comma + 1, b);
}

int distill_cfg_choice(const distill_cfg *c, const char *field, const char *zero, const char *one)
{
    char *s = option_find(c->options, (char *)field);
    if (!s || !strcmp(s, zero)) return 0;
    if (!strcmp(s, one)) return 1;
    distill_cfg_fail(c, field, "'%s' must be %s or %s", s, zero, one);
}

float distill_cfg_loss_weight(const distill_cfg *c)
{
    float w = distill_cfg_float(c, "loss_weight", 1);
    if (!distill_finite(w) || w < 0) distill_cfg_fail(c, "loss_weight", "%g: must be a finite number >= 0", w);
    return w;
}

/* ---- checks made when a layer is built ------------------------------------------------- */

int distill_student_layer(const distill_cfg *c, int v)
{
    int abs_index = v < 0 ? c->index + v : v;
    int next;
    if (abs_index < 0 || abs_index >= c->index)
        distill_cfg_fail(c, "from", "%d is not an earlier layer (this is layer %d)", v, c->index);
    /* [dropout] works in place on the output and the delta of the layer before it (passing
       through the pass-through sections): distilling that layer would read the dropped-out map
       and the dropout's backward would mask the distillation gradient */
    for (next = abs_index + 1; next < c->index && distill_is_layer_type(c->net->layers[next].type); ++next) {}
    if (next < c->index && c->net->layers[next].type == DROPOUT)
        distill_cfg_fail(c, "from",
                         "layer %d is followed by [dropout] (layer %d), which works in place on its output and gradient: distill layer %d (the dropout's output) or a layer that is not followed by one",
                         abs_index, next, next);
    return abs_index;
}

int distill_teacher_layer(const distill_cfg *c, int v)
{
    network *teacher = c->net->teacher;
    int tl = v < 0 ? teacher->n + v : v;
    if (tl < 0 || tl >= teacher->n)
        distill_cfg_fail(c, "teacher_layer", "%d is out of range: the teacher %s has %d layers", v,
                         teacher->cfgfile, teacher->n);
    return tl;
}

void distill_check_teacher_map(const distill_cfg *c, int tl, int teacher_c, int from)
{
    const layer *tf = &c->net->teacher->layers[tl], *sf = &c->net->layers[from];
    if (tf->out_c != teacher_c)
        distill_cfg_fail(c, "teacher_channels", "%d, but teacher layer %d (%s) has %d channels",
                         teacher_c, tl, c->net->teacher->cfgfile, tf->out_c);
    if (tf->out_h != sf->out_h || tf->out_w != sf->out_w)
        distill_cfg_fail(c, "teacher_layer",
                         "teacher layer %d is %d x %d but student layer %d is %d x %d: the maps must have the same size",
                         tl, tf->out_w, tf->out_h, from, sf->out_w, sf->out_h);
}

layer distill_make_passthrough(const distill_cfg *c, const distill_type_ops *f, void *state)
{
    layer l = {0};
    layer prev;
    if (c->index == 0) distill_cfg_fail(c, "section", "cannot be the first layer: it passes its input through");
    prev = c->net->layers[c->index - 1];
    l.type = c->type;
    l.batch = c->net->batch;
    l.h = l.out_h = prev.out_h;
    l.w = l.out_w = prev.out_w;
    l.c = l.out_c = prev.out_c;
    l.inputs = l.outputs = prev.outputs;
    l.output = prev.output;
    l.delta = prev.delta;
    l.forward = f->forward;
    l.backward = f->backward;
    l.update = f->update;
#ifdef GPU
    l.output_gpu = prev.output_gpu;
    l.delta_gpu = prev.delta_gpu;
    l.forward_gpu = f->forward_gpu;
    l.backward_gpu = f->backward_gpu;
    l.update_gpu = f->update_gpu;
#endif
    l.plugin_state = state;
    return l;
}

#ifdef GPU
void distill_gpu_alloc_context(const network *net, LAYER_TYPE type, int index)
{
    char context[512];
    snprintf(context, sizeof(context), "%s: [%s] (layer %d)", net->cfgfile ? net->cfgfile : "cfg",
             distill_layer_type_name(type), index);
    tat_gpu_set_alloc_context(context);
}

void distill_average_device_arrays(float **replica, const int *device, int nrep, int n)
{
    float *tmp = tat_calloc(n, sizeof(float)), *sum = tat_calloc(n, sizeof(float));
    int i;
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
    free(tmp);
    free(sum);
}

void distill_average_embeddings(tat_embedding **replica, const int *device, int nrep)
{
    float **arrays = tat_calloc(nrep, sizeof(*arrays));
    int nw = replica[0]->out_c * replica[0]->in_c * replica[0]->ksize * replica[0]->ksize, a, i;
    for (a = 0; a < 3; ++a) {
        for (i = 0; i < nrep; ++i)
            arrays[i] = a == 0 ? replica[i]->weights : a == 1 ? replica[i]->scales : replica[i]->biases;
        distill_average_device_arrays(arrays, device, nrep, a == 0 ? nw : replica[0]->out_c);
    }
    free(arrays);
}
#endif

/* ---- training --------------------------------------------------------------------------- */

int distill_training(int active, const network *net) { return active && net->train && net->teacher; }

int distill_finite(float x)
{
    /* by the bits: Darknet builds with -Ofast, under which isfinite() may fold to 1 */
    unsigned int u;
    memcpy(&u, &x, sizeof(u));
    return (u & 0x7f800000u) != 0x7f800000u;
}

void distill_stop_if_not_finite(const network *net, const char *section, int index, float loss)
{
    /* the step number is the one its progress line shows (seen may be mid-step here) */
    size_t per_step = (size_t)net->batch * net->subdivisions;
    if (distill_finite(loss)) return;
    tat_fail("%s: [%s] (layer %d): loss is %s at iteration %zu; stopping, last backup kept",
            net->cfgfile ? net->cfgfile : "cfg", section, index, loss != loss ? "nan" : "inf",
            (*net->seen + per_step - 1) / per_step);
}

/* Adam on threads: Darknet's rule, its results (backend_passes.c) */
const distill_blas distill_blas_cpu = {.axpy = axpy_cpu, .scal = scal_cpu, .adam = backend_adam_update};
#ifdef GPU
/* the Adam step as one fused kernel per array (Darknet's adam_update_gpu launches 9-10) */
const distill_blas distill_blas_gpu = {.axpy = axpy_gpu, .scal = scal_gpu, .adam = tat_gpu_adam_update};
#endif

tat_rng distill_init_rng(void) { return tat_rng_from_rand(); }

void distill_embedding_init(tat_embedding *e, const network *net, int in_c, int out_c, int ksize,
                            tat_rng *rng)
{
    tat_embedding_init(e, in_c, out_c, ksize, rng);
    /* as Darknet's layers: the moments exist when [net] asks for Adam (adam=1 or adamw=1) */
    if (net->adam) tat_embedding_alloc_moments(e);
}

void distill_embedding_update(const tat_embedding *e, const distill_blas *b, update_args a,
                              float learning_rate)
{
    int nw = e->out_c * e->in_c * e->ksize * e->ksize;
    if (a.adam) {
        float *params[3] = {e->weights, e->scales, e->biases};
        float *grads[3] = {e->weight_grads, e->scale_grads, e->bias_grads};
        size_t counts[3] = {(size_t)nw, (size_t)e->out_c, (size_t)e->out_c}, at = 0;
        int i;
        /* the network was made for Adam: distill_embedding_init gave the embedding moments */
        TAT_ASSERT(e->adam_m && e->adam_v);
        /* as Darknet's layers under Adam: every array, decay included */
        for (i = 0; i < 3; at += counts[i++])
            b->adam(params[i], grads[i], e->adam_m + at, e->adam_v + at, a.B1, a.B2, a.eps, a.decay,
                    learning_rate, (int)counts[i], a.batch, a.t, a.decoupled_decay);
        return;
    }
    /* as Darknet's convolution with batch_normalize: decay on the weights only */
    b->axpy(e->out_c, learning_rate / a.batch, e->bias_grads, 1, e->biases, 1);
    b->scal(e->out_c, a.momentum, e->bias_grads, 1);
    b->axpy(e->out_c, learning_rate / a.batch, e->scale_grads, 1, e->scales, 1);
    b->scal(e->out_c, a.momentum, e->scale_grads, 1);
    b->axpy(nw, -a.decay * a.batch, e->weights, 1, e->weight_grads, 1);
    b->axpy(nw, learning_rate / a.batch, e->weight_grads, 1, e->weights, 1);
    b->scal(nw, a.momentum, e->weight_grads, 1);
}

void distill_embedding_tensors(const tat_embedding *e, int grads, tat_tensor_list *to)
{
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize;
    tat_tensor_list_add(to, grads ? e->weight_grads : e->weights, nw);
    tat_tensor_list_add(to, grads ? e->scale_grads : e->scales, e->out_c);
    tat_tensor_list_add(to, grads ? e->bias_grads : e->biases, e->out_c);
}

int distill_embedding_io(tat_embedding *e, FILE *fp, int save)
{
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize;
    float *arrays[3] = {e->biases, e->scales, e->weights};
    size_t counts[3] = {(size_t)e->out_c, (size_t)e->out_c, nw};
    int i;
    for (i = 0; i < 3; ++i) {
        size_t done = save ? fwrite(arrays[i], sizeof(float), counts[i], fp)
                           : fread(arrays[i], sizeof(float), counts[i], fp);
        if (done != counts[i]) return 0;
    }
    return 1;
}
