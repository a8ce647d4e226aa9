#include "kd_distill_layer.h"

#include <stdlib.h>

#include "cuda.h"
#include "distill_common.h"
#include "tat.h"
#ifdef GPU
#include "tat_gpu.h"
#endif

typedef struct {
    int index;                /* this layer's index, for messages                    */
    int from, teacher_layer;  /* absolute indices in the student and the teacher      */
    int batch, classes;       /* logits per image                                      */
    int active;               /* a teacher is attached: the buffers are allocated     */
    float temperature, loss_weight;
    float loss;               /* weighted loss of the last forward, per image          */
    float *p_student, *p_teacher; /* batch x classes softmaxes at the temperature     */
    struct kd_gpu *gpu;       /* device state (GPU builds on a device, active)         */
} kd_state;

#ifdef GPU
/* On a device: the softmaxes and each row's KL stay there, only the loss comes back. */
struct kd_gpu {
    float *p_student, *p_teacher;
    double *kl_rows;
    tat_gpu_loss loss;
};
#endif

static kd_state *state_of(const layer *l) { return (kd_state *)l->plugin_state; }

static layer parse_kd_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "temperature", "loss_weight", 0};
    distill_cfg c = {options, net, index, KD_DISTILL};
    distill_kd_options o;
    distill_cfg_check_fields(&c, known);
    o.from = distill_cfg_int(&c, "from", -1, 0);
    o.teacher_layer = distill_cfg_int(&c, "teacher_layer", 0, 1);
    o.temperature = distill_cfg_float(&c, "temperature", 4);
    if (!distill_finite(o.temperature) || o.temperature <= 0)
        distill_cfg_fail(&c, "temperature", "%g: must be a finite number > 0", o.temperature);
    o.loss_weight = distill_cfg_loss_weight(&c);
    return make_kd_distill_layer(net, index, &o);
}

layer make_kd_distill_layer(network *net, int index, const distill_kd_options *o)
{
    distill_cfg c = {0, net, index, KD_DISTILL};
    kd_state *s = tat_calloc(1, sizeof(*s));
    layer l = distill_make_passthrough(&c, &distill_kd_ops, s);
    s->index = index;
    s->batch = net->batch;
    s->temperature = o->temperature;
    s->loss_weight = o->loss_weight;
    s->from = distill_student_layer(&c, o->from);
    s->teacher_layer = o->teacher_layer;
    /* the KL needs logits: a softmax output would be softmaxed twice */
    if (net->layers[s->from].type == SOFTMAX)
        distill_cfg_fail(&c, "from", "layer %d is a [softmax]: give the layer whose output are the logits (the one before it)", s->from);
    s->classes = net->layers[s->from].outputs;
    if (net->teacher) {
        layer *tf;
        s->teacher_layer = distill_teacher_layer(&c, o->teacher_layer);
        tf = &net->teacher->layers[s->teacher_layer];
        if (tf->type == SOFTMAX)
            distill_cfg_fail(&c, "teacher_layer", "teacher layer %d (%s) is a [softmax]: give the layer whose output are the logits (the one before it)",
                             s->teacher_layer, net->teacher->cfgfile);
        if (tf->outputs != s->classes)
            distill_cfg_fail(&c, "teacher_layer",
                             "teacher layer %d (%s) has %d logits per image but student layer %d has %d: they must have the same size",
                             s->teacher_layer, net->teacher->cfgfile, tf->outputs, s->from, s->classes);
        s->active = 1;
#ifdef GPU
        if (gpu_index >= 0) {
            size_t n = (size_t)s->batch * s->classes;
            distill_gpu_alloc_context(net, KD_DISTILL, index);
            s->gpu = tat_calloc(1, sizeof(*s->gpu));
            s->gpu->p_student = tat_gpu_alloc_floats(n);
            s->gpu->p_teacher = tat_gpu_alloc_floats(n);
            s->gpu->kl_rows = tat_gpu_alloc_doubles(s->batch);
            tat_gpu_loss_init(&s->gpu->loss);
        }
#endif
        if (!s->gpu) {
            s->p_student = tat_calloc((size_t)s->batch * s->classes, sizeof(float));
            s->p_teacher = tat_calloc((size_t)s->batch * s->classes, sizeof(float));
        }
    }
    fprintf(stderr, "%-14s student %d: %d logits, teacher %d; temperature %g, weight %g; 0 params  0.000 BFLOPs%s\n",
            distill_layer_type_name(KD_DISTILL), s->from, s->classes, s->teacher_layer, s->temperature,
            s->loss_weight, s->active ? "" : "  (inactive: no teacher)");
    return l;
}

/* loss_weight * T^2 * the mean over images of the KL; a non-finite one stops the run */
static void set_loss(const layer *l, const network *net, kd_state *s, double kl)
{
    s->loss = (float)(s->loss_weight * s->temperature * s->temperature * kl / s->batch);
    distill_stop_if_not_finite(net, distill_layer_type_name(l->type), s->index, s->loss);
}

void forward_kd_distill_layer(const layer l, network net)
{
    kd_state *s = state_of(&l);
    double kl;
    s->loss = 0;
    if (!distill_training(s->active, &net)) return;
    kl = tat_kd_forward(s->p_student, s->p_teacher, net.layers[s->from].output,
                        net.teacher->layers[s->teacher_layer].output, s->batch, s->classes,
                        s->temperature);
    set_loss(&l, &net, s, kl);
}

/* Darknet's delta is the negative gradient of the loss summed over the batch (its update
   divides by the batch): each image's term is loss_weight * KL * T^2, hence -loss_weight. */
void backward_kd_distill_layer(const layer l, network net)
{
    kd_state *s = state_of(&l);
    if (!distill_training(s->active, &net)) return;
    tat_kd_backward(net.layers[s->from].delta, s->p_student, s->p_teacher, s->batch, s->classes,
                    s->temperature, -s->loss_weight);
}

#ifdef GPU
void forward_kd_distill_layer_gpu(const layer l, network net)
{
    kd_state *s = state_of(&l);
    s->loss = 0; /* set by the backward, when the loss has arrived */
    if (!distill_training(s->active, &net) || !s->gpu) return;
    tat_gpu_kd_forward(s->gpu->p_student, s->gpu->p_teacher, s->gpu->kl_rows, &s->gpu->loss,
                       net.layers[s->from].output_gpu, net.teacher->layers[s->teacher_layer].output_gpu,
                       s->batch, s->classes, s->temperature);
}

void backward_kd_distill_layer_gpu(const layer l, network net)
{
    kd_state *s = state_of(&l);
    if (!distill_training(s->active, &net) || !s->gpu) return;
    tat_gpu_kd_backward(net.layers[s->from].delta_gpu, s->gpu->p_student, s->gpu->p_teacher,
                        s->batch, s->classes, s->temperature, -s->loss_weight);
    /* queued: the forward's loss has long arrived; a non-finite one stops before the update */
    set_loss(&l, &net, s, tat_gpu_loss_wait(&s->gpu->loss));
}
#endif

static float kd_loss(const layer *l) { return state_of(l)->loss; }

static void free_kd_distill_layer(layer l)
{
    kd_state *s = state_of(&l);
    if (!s) return;
#ifdef GPU
    if (s->gpu) {
        tat_gpu_free(s->gpu->p_student);
        tat_gpu_free(s->gpu->p_teacher);
        tat_gpu_free(s->gpu->kl_rows);
        tat_gpu_loss_free(&s->gpu->loss);
        free(s->gpu);
    }
#endif
    free(s->p_student);
    free(s->p_teacher);
    free(s);
}

/* nothing to learn: no update, no weights */
const distill_type_ops distill_kd_ops = {
    .type = KD_DISTILL,
    .parse = parse_kd_distill,
    .forward = forward_kd_distill_layer,
    .backward = backward_kd_distill_layer,
#ifdef GPU
    .forward_gpu = forward_kd_distill_layer_gpu,
    .backward_gpu = backward_kd_distill_layer_gpu,
#endif
    .free_layer = free_kd_distill_layer,
    .loss = kd_loss,
};
