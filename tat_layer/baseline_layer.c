#include "baseline_layer.h"

#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "distill_layer.h"
#include "distill_plugin.h"
#include "tat.h"

typedef struct {
    int index;                         /* this layer's index, for messages                  */
    int from, teacher_layer;           /* absolute indices in the student and the teacher    */
    int batch;
    int active;                        /* a teacher is attached: the buffers are allocated   */
    float loss_weight;
    float loss;                        /* weighted loss of the last forward, per image        */
    /* [kd_distill] */
    int classes;                       /* logits per image                                    */
    float temperature;
    float *p_student, *p_teacher;      /* batch x classes softmaxes at the temperature        */
    /* [fitnet_distill] */
    int h, w, student_c, teacher_c, bn_per_image;
    tat_embedding projection;          /* 1x1 conv (no bias) + BN: student_c -> teacher_c     */
    float *diff;                       /* projection - teacher, batch x teacher_c x h x w     */
    float *workspace;                  /* conv scratch (none needed for 1x1; kept for form)   */
} baseline_state;

static baseline_state *state_of(const layer *l) { return (baseline_state *)l->plugin_state; }

/* ---- parsing --------------------------------------------------------------------------- */

static float weight_field(list *options, network *net, int index, LAYER_TYPE t)
{
    float w = float_field(options, net, index, t, "loss_weight", 1);
    if (!distill_finite(w) || w < 0) cfg_fail(net, index, t, "loss_weight", "%g: must be a finite number >= 0", w);
    return w;
}

/* Pass-through geometry (output and delta alias the previous layer's) and the teacher layer,
 * resolved to an absolute index. Returns that teacher layer, or NULL without a teacher. */
static layer *make_passthrough(network *net, int index, LAYER_TYPE t, baseline_state *s, layer *l)
{
    layer prev;
    memset(l, 0, sizeof(*l));
    if (index == 0) cfg_fail(net, index, t, "section", "cannot be the first layer: it passes its input through");
    prev = net->layers[index - 1];
    l->type = t;
    l->batch = net->batch;
    l->h = l->out_h = prev.out_h;
    l->w = l->out_w = prev.out_w;
    l->c = l->out_c = prev.out_c;
    l->inputs = l->outputs = prev.outputs;
    l->output = prev.output;
    l->delta = prev.delta;
    l->forward = forward_baseline_layer;
    l->backward = backward_baseline_layer;
    l->update = update_baseline_layer;
#ifdef GPU
    l->output_gpu = prev.output_gpu;
    l->delta_gpu = prev.delta_gpu;
    l->forward_gpu = forward_baseline_layer_gpu;
    l->backward_gpu = backward_baseline_layer_gpu;
    l->update_gpu = update_baseline_layer_gpu;
#endif
    l->plugin_state = s;
    s->index = index;
    s->batch = net->batch;
    if (net->teacher) {
        network *teacher = net->teacher;
        int tl = s->teacher_layer < 0 ? teacher->n + s->teacher_layer : s->teacher_layer;
        if (tl < 0 || tl >= teacher->n)
            cfg_fail(net, index, t, "teacher_layer", "%d is out of range: the teacher %s has %d layers",
                     s->teacher_layer, teacher->cfgfile, teacher->n);
        s->teacher_layer = tl;
        s->active = 1;
        return &teacher->layers[tl];
    }
    return 0;
}

static void print_layer_line(const layer *l, const char *shapes, const char *what)
{
    baseline_state *s = state_of(l);
    fprintf(stderr, "%-14s %s; %s; %zu params  %5.3f BFLOPs%s\n", distill_layer_type_name(l->type),
            shapes, what, baseline_layer_params(l), baseline_layer_flops(l) / 1e9,
            s->active ? "" : "  (inactive: no teacher)");
}

layer parse_kd_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "temperature", "loss_weight", 0};
    LAYER_TYPE t = KD_DISTILL;
    baseline_state *s = calloc(1, sizeof(*s));
    layer l, *tf;
    char shapes[128], what[128];
    check_fields(options, net, index, t, known);
    s->from = student_index(net, index, t, int_field(options, net, index, t, "from", -1, 0));
    s->teacher_layer = int_field(options, net, index, t, "teacher_layer", 0, 1);
    s->temperature = float_field(options, net, index, t, "temperature", 4);
    if (!distill_finite(s->temperature) || s->temperature <= 0)
        cfg_fail(net, index, t, "temperature", "%g: must be a finite number > 0", s->temperature);
    s->loss_weight = weight_field(options, net, index, t);
    /* the KL needs logits: a softmax output would be softmaxed twice */
    if (net->layers[s->from].type == SOFTMAX)
        cfg_fail(net, index, t, "from", "layer %d is a [softmax]: give the layer whose output are the logits (the one before it)", s->from);
    s->classes = net->layers[s->from].outputs;
    tf = make_passthrough(net, index, t, s, &l);
    if (tf) {
        if (tf->type == SOFTMAX)
            cfg_fail(net, index, t, "teacher_layer", "teacher layer %d (%s) is a [softmax]: give the layer whose output are the logits (the one before it)",
                     s->teacher_layer, net->teacher->cfgfile);
        if (tf->outputs != s->classes)
            cfg_fail(net, index, t, "teacher_layer",
                     "teacher layer %d (%s) has %d logits per image but student layer %d has %d: they must have the same size",
                     s->teacher_layer, net->teacher->cfgfile, tf->outputs, s->from, s->classes);
        s->p_student = calloc((size_t)s->batch * s->classes, sizeof(float));
        s->p_teacher = calloc((size_t)s->batch * s->classes, sizeof(float));
    }
    snprintf(shapes, sizeof(shapes), "student %d: %d logits, teacher %d", s->from, s->classes, s->teacher_layer);
    snprintf(what, sizeof(what), "temperature %g, weight %g", s->temperature, s->loss_weight);
    print_layer_line(&l, shapes, what);
    return l;
}

layer parse_fitnet_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "bn", "loss_weight", 0};
    LAYER_TYPE t = FITNET_DISTILL;
    baseline_state *s = calloc(1, sizeof(*s));
    layer l, *tf;
    char shapes[128], what[128];
    check_fields(options, net, index, t, known);
    s->from = student_index(net, index, t, int_field(options, net, index, t, "from", -1, 0));
    s->teacher_layer = int_field(options, net, index, t, "teacher_layer", 0, 1);
    s->teacher_c = int_field(options, net, index, t, "teacher_channels", 0, 1);
    if (s->teacher_c < 1) cfg_fail(net, index, t, "teacher_channels", "must be at least 1");
    s->bn_per_image = choice_field(options, net, index, t, "bn", "batch", "image");
    s->loss_weight = weight_field(options, net, index, t);
    s->h = net->layers[s->from].out_h;
    s->w = net->layers[s->from].out_w;
    s->student_c = net->layers[s->from].out_c;
    tf = make_passthrough(net, index, t, s, &l);
    /* the projection exists with or without a teacher: the weights file has one layout */
    tat_embedding_init(&s->projection, s->student_c, s->teacher_c, 1);
    if (tf) {
        if (tf->out_c != s->teacher_c)
            cfg_fail(net, index, t, "teacher_channels", "%d, but teacher layer %d (%s) has %d channels",
                     s->teacher_c, s->teacher_layer, net->teacher->cfgfile, tf->out_c);
        if (tf->out_h != s->h || tf->out_w != s->w)
            cfg_fail(net, index, t, "teacher_layer",
                     "teacher layer %d is %d x %d but student layer %d is %d x %d: the maps must have the same size",
                     s->teacher_layer, tf->out_w, tf->out_h, s->from, s->w, s->h);
        tat_embedding_alloc_activations(&s->projection, s->batch, s->h, s->w);
        s->diff = calloc((size_t)s->batch * s->teacher_c * s->h * s->w, sizeof(float));
        s->workspace = calloc(tat_conv_workspace_floats(s->student_c, s->h, s->w, 1) + 1, sizeof(float));
    }
    snprintf(shapes, sizeof(shapes), "student %d: %d x %d x %d, teacher %d: %d ch", s->from, s->w,
             s->h, s->student_c, s->teacher_layer, s->teacher_c);
    snprintf(what, sizeof(what), "1x1 conv + BN, bn %s, weight %g", s->bn_per_image ? "image" : "batch",
             s->loss_weight);
    print_layer_line(&l, shapes, what);
    return l;
}

/* ---- forward / backward / update ------------------------------------------------------- */

static int distilling(const baseline_state *s, const network *net)
{
    return s->active && net->train && net->teacher;
}

static size_t fitnet_elements_per_image(const baseline_state *s)
{
    return (size_t)s->teacher_c * s->h * s->w;
}

void forward_baseline_layer(const layer l, network net)
{
    baseline_state *s = state_of(&l);
    const float *student, *teacher;
    s->loss = 0;
    if (!distilling(s, &net)) return;
    student = net.layers[s->from].output;
    teacher = net.teacher->layers[s->teacher_layer].output;
    if (l.type == KD_DISTILL) {
        double kl = tat_kd_forward(s->p_student, s->p_teacher, student, teacher, s->batch,
                                   s->classes, s->temperature);
        s->loss = (float)(s->loss_weight * s->temperature * s->temperature * kl / s->batch);
    } else {
        size_t n = fitnet_elements_per_image(s) * s->batch;
        double sse;
        tat_embedding_forward(&s->projection, student, s->workspace, s->batch, s->h, s->w, s->bn_per_image);
        sse = tat_sse_forward(s->diff, s->projection.out, teacher, n);
        s->loss = (float)(s->loss_weight * sse / (double)n);
    }
    distill_stop_if_not_finite(&net, &l, s->index, s->loss);
}

/* Darknet's delta is the negative gradient of the loss summed over the batch (its update
   divides by the batch): each image's term is loss_weight * (its KL * T^2, or its MSE), hence
   the negative per-image weights below. */
void backward_baseline_layer(const layer l, network net)
{
    baseline_state *s = state_of(&l);
    float *d_student;
    if (!distilling(s, &net)) return;
    d_student = net.layers[s->from].delta;
    if (l.type == KD_DISTILL) {
        tat_kd_backward(d_student, s->p_student, s->p_teacher, s->batch, s->classes, s->temperature,
                        -s->loss_weight);
    } else {
        size_t per_image = fitnet_elements_per_image(s);
        tat_sse_backward(s->projection.out_grad, s->diff, per_image * s->batch,
                         -s->loss_weight / (float)per_image);
        tat_embedding_backward(&s->projection, d_student, net.layers[s->from].output, s->workspace,
                               s->batch, s->h, s->w, s->bn_per_image);
    }
}

void update_baseline_layer(const layer l, update_args a)
{
    baseline_state *s = state_of(&l);
    /* without a teacher nothing was learned: do not let decay shrink the projection */
    if (l.type != FITNET_DISTILL || !s->active) return;
    update_embedding(&s->projection, a, a.learning_rate * l.learning_rate_scale);
}

#ifdef GPU
/* Host path, as the TaT layers' was: the parameters live on the host, the student and teacher
   maps and the student's delta are copied across each step (small for these two methods). */
void forward_baseline_layer_gpu(const layer l, network net)
{
    baseline_state *s = state_of(&l);
    layer from, tf;
    if (!distilling(s, &net)) {
        s->loss = 0;
        return;
    }
    from = net.layers[s->from];
    tf = net.teacher->layers[s->teacher_layer];
    cuda_pull_array(from.output_gpu, from.output, from.outputs * from.batch);
    cuda_pull_array(tf.output_gpu, tf.output, tf.outputs * tf.batch);
    forward_baseline_layer(l, net);
}

void backward_baseline_layer_gpu(const layer l, network net)
{
    baseline_state *s = state_of(&l);
    layer from;
    if (!distilling(s, &net)) return;
    from = net.layers[s->from];
    cuda_pull_array(from.delta_gpu, from.delta, from.outputs * from.batch);
    backward_baseline_layer(l, net);
    cuda_push_array(from.delta_gpu, from.delta, from.outputs * from.batch);
}

void update_baseline_layer_gpu(const layer l, update_args a)
{
    update_baseline_layer(l, a);
}
#endif

/* ---- weights, accounting, free --------------------------------------------------------- */

void save_baseline_weights(layer l, FILE *fp)
{
    if (l.type == FITNET_DISTILL) embedding_io(&state_of(&l)->projection, fp, 1);
}

void load_baseline_weights(layer l, FILE *fp)
{
    if (l.type == FITNET_DISTILL) embedding_io(&state_of(&l)->projection, fp, 0);
}

float baseline_layer_loss(const layer *l) { return state_of(l)->loss; }

size_t baseline_layer_params(const layer *l)
{
    return l->type == FITNET_DISTILL ? tat_embedding_num_params(&state_of(l)->projection) : 0;
}

double baseline_layer_flops(const layer *l)
{
    baseline_state *s = state_of(l);
    /* the projection's multiply-adds; KD's two softmaxes over the logits are negligible */
    return l->type == FITNET_DISTILL ? 2.0 * s->teacher_c * s->student_c * s->h * s->w : 0;
}

void free_baseline_layer(layer l)
{
    baseline_state *s = state_of(&l);
    if (!s) return;
    if (l.type == FITNET_DISTILL) tat_embedding_free(&s->projection);
    free(s->diff);
    free(s->workspace);
    free(s->p_student);
    free(s->p_teacher);
    free(s);
}
