#include "yolo_distill_layer.h"

#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "network.h"
#include "yolo_kd.h"

typedef struct {
    int index;                /* this layer's index, for messages                     */
    int from, teacher_layer;  /* absolute indices in the student and the teacher       */
    int batch, anchors, classes, cells;
    int active;               /* a teacher is attached: the buffers are allocated      */
    float loss_weight;
    float loss;               /* weighted loss of the last forward, per image           */
    float *student, *grad;    /* host copies on a device (batch x outputs)             */
    float *grad_gpu;
} yolo_kd_state;

static yolo_kd_state *state_of(const layer *l) { return (yolo_kd_state *)l->plugin_state; }

static layer parse_yolo_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "loss_weight", 0};
    distill_cfg c = {options, net, index, YOLO_DISTILL};
    distill_yolo_options o;
    distill_cfg_check_fields(&c, known);
    o.from = distill_cfg_int(&c, "from", -1, 0);
    o.teacher_layer = distill_cfg_int(&c, "teacher_layer", 0, 1);
    o.loss_weight = distill_cfg_loss_weight(&c);
    return make_yolo_distill_layer(net, index, &o);
}

layer make_yolo_distill_layer(network *net, int index, const distill_yolo_options *o)
{
    distill_cfg c = {0, net, index, YOLO_DISTILL};
    yolo_kd_state *s = tat_calloc(1, sizeof(*s));
    layer l = distill_make_passthrough(&c, &distill_yolo_ops, s);
    layer *sf;
    s->index = index;
    s->batch = net->batch;
    s->loss_weight = o->loss_weight;
    s->from = distill_student_layer(&c, o->from);
    s->teacher_layer = o->teacher_layer;
    sf = &net->layers[s->from];
    /* a [yolo] output holds probabilities; the gradient is taken on the logits before it */
    if (sf->type == YOLO)
        distill_cfg_fail(&c, "from", "layer %d is a [yolo]: give the convolution before it and put this section between the two", s->from);
    if (net->teacher) {
        layer *tf;
        s->teacher_layer = distill_teacher_layer(&c, o->teacher_layer);
        tf = &net->teacher->layers[s->teacher_layer];
        if (tf->type != YOLO)
            distill_cfg_fail(&c, "teacher_layer", "teacher layer %d (%s) is [%s]: give the teacher's [yolo] of the same stride",
                             s->teacher_layer, net->teacher->cfgfile, get_layer_string(tf->type));
        if (tf->w != sf->out_w || tf->h != sf->out_h)
            distill_cfg_fail(&c, "teacher_layer",
                             "teacher [yolo] %d (%s) is a %d x %d map but student layer %d is %d x %d: distil the [yolo] of the same stride",
                             s->teacher_layer, net->teacher->cfgfile, tf->w, tf->h, s->from, sf->out_w, sf->out_h);
        if (sf->out_c != tf->n * (tf->classes + 5))
            distill_cfg_fail(&c, "teacher_layer",
                             "teacher [yolo] %d (%s) has %d anchors x (5 + %d classes) = %d channels but student layer %d has %d: the same mask count and classes are needed",
                             s->teacher_layer, net->teacher->cfgfile, tf->n, tf->classes,
                             tf->n * (tf->classes + 5), s->from, sf->out_c);
        s->anchors = tf->n;
        s->classes = tf->classes;
        s->cells = tf->w * tf->h;
        s->active = 1;
#ifdef GPU
        if (gpu_index >= 0) {
            size_t n = (size_t)s->batch * sf->outputs;
            distill_gpu_alloc_context(net, YOLO_DISTILL, index);
            s->student = tat_calloc(n, sizeof(float));
            s->grad = tat_calloc(n, sizeof(float));
            s->grad_gpu = cuda_make_array(s->grad, n);
        }
#endif
    }
    fprintf(stderr, "%-14s student %d, teacher [yolo] %d: %d anchors, %d classes, %d cells; weight %g; 0 params  0.000 BFLOPs%s\n",
            distill_layer_type_name(YOLO_DISTILL), s->from, s->teacher_layer, s->anchors, s->classes,
            s->cells, s->loss_weight, s->active ? "" : "  (inactive: no teacher)");
    return l;
}

static void set_loss(const layer *l, const network *net, yolo_kd_state *s, double sum)
{
    s->loss = (float)(s->loss_weight * sum / s->batch);
    distill_stop_if_not_finite(net, distill_layer_type_name(l->type), s->index, s->loss);
}

void forward_yolo_distill_layer(const layer l, network net)
{
    yolo_kd_state *s = state_of(&l);
    s->loss = 0;
    if (!distill_training(s->active, &net)) return;
    set_loss(&l, &net, s,
             tat_yolo_kd_loss(net.layers[s->from].output, net.teacher->layers[s->teacher_layer].output,
                              s->batch, s->anchors, s->classes, s->cells));
}

/* Darknet's delta is the negative gradient of the loss summed over the batch (its update
   divides by the batch): each image's term has weight loss_weight, hence -loss_weight. */
void backward_yolo_distill_layer(const layer l, network net)
{
    yolo_kd_state *s = state_of(&l);
    if (!distill_training(s->active, &net)) return;
    tat_yolo_kd_backward(net.layers[s->from].delta, net.layers[s->from].output,
                         net.teacher->layers[s->teacher_layer].output, s->batch, s->anchors,
                         s->classes, s->cells, -s->loss_weight);
}

#ifdef GPU
/* On a device: the map is small (the [yolo] input), so the term runs on the host; the
   teacher's [yolo] leaves its probabilities on the host in inference already. */
void forward_yolo_distill_layer_gpu(const layer l, network net)
{
    yolo_kd_state *s = state_of(&l);
    layer *sf = &net.layers[s->from];
    s->loss = 0;
    if (!distill_training(s->active, &net) || !s->student) return;
    cuda_pull_array(sf->output_gpu, s->student, (size_t)s->batch * sf->outputs);
    set_loss(&l, &net, s,
             tat_yolo_kd_loss(s->student, net.teacher->layers[s->teacher_layer].output, s->batch,
                              s->anchors, s->classes, s->cells));
}

void backward_yolo_distill_layer_gpu(const layer l, network net)
{
    yolo_kd_state *s = state_of(&l);
    layer *sf = &net.layers[s->from];
    size_t n = (size_t)s->batch * sf->outputs;
    if (!distill_training(s->active, &net) || !s->student) return;
    memset(s->grad, 0, n * sizeof(float));
    tat_yolo_kd_backward(s->grad, s->student, net.teacher->layers[s->teacher_layer].output, s->batch,
                         s->anchors, s->classes, s->cells, -s->loss_weight);
    cuda_push_array(s->grad_gpu, s->grad, n);
    axpy_gpu(n, 1, s->grad_gpu, 1, sf->delta_gpu, 1);
}
#endif

static float yolo_kd_loss(const layer *l) { return state_of(l)->loss; }

static void free_yolo_distill_layer(layer l)
{
    yolo_kd_state *s = state_of(&l);
    if (!s) return;
#ifdef GPU
    if (s->grad_gpu) cuda_free(s->grad_gpu);
#endif
    free(s->student);
    free(s->grad);
    free(s);
}

/* nothing to learn: no update, no weights */
const distill_type_ops distill_yolo_ops = {
    .type = YOLO_DISTILL,
    .parse = parse_yolo_distill,
    .forward = forward_yolo_distill_layer,
    .backward = backward_yolo_distill_layer,
#ifdef GPU
    .forward_gpu = forward_yolo_distill_layer_gpu,
    .backward_gpu = backward_yolo_distill_layer_gpu,
#endif
    .free_layer = free_yolo_distill_layer,
    .loss = yolo_kd_loss,
};
