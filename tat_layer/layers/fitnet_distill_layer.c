#include "fitnet_distill_layer.h"

#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "distill_common.h"
#include "tat.h"
#ifdef GPU
#include "tat_gpu.h"
#endif

typedef struct {
    int index;                 /* this layer's index, for messages                      */
    int from, teacher_layer;   /* absolute indices in the student and the teacher        */
    int batch, h, w, student_c, teacher_c, bn_per_image;
    int active;                /* a teacher is attached: the buffers are allocated       */
    float loss_weight;
    float loss;                /* weighted loss of the last forward, per image            */
    tat_embedding projection;  /* 1x1 conv (no bias) + BN: student_c -> teacher_c         */
    float *diff;               /* projection - teacher, batch x teacher_c x h x w (host)  */
    struct fitnet_gpu *gpu;    /* device state (GPU builds on a device, active)          */
} fitnet_state;

#ifdef GPU
/* On a device everything per batch stays there (the projection's parameters, gradients and
   activations, the difference, the student's and teacher's maps and the student's delta);
   only the loss comes back. The host projection is brought up to date for saving. */
struct fitnet_gpu {
    tat_gpu_embedding projection;
    float *diff, *workspace;  /* workspace: the backward's batch-wide im2col (a permutation) */
    double *partials;         /* TAT_SUM_BLOCKS partial sums of squares                    */
    tat_gpu_loss loss;
};
static void fitnet_gpu_setup(const network *net, fitnet_state *s);
static void fitnet_gpu_params(fitnet_state *s, int to_host);
#endif

static fitnet_state *state_of(const layer *l) { return (fitnet_state *)l->plugin_state; }

static size_t fitnet_params(const layer *l);
static double fitnet_flops(const layer *l);

static layer parse_fitnet_distill(list *options, network *net, int index)
{
    static const char *known[] = {"from", "teacher_layer", "teacher_channels", "bn", "loss_weight", 0};
    distill_cfg c = {options, net, index, FITNET_DISTILL};
    distill_fitnet_options o;
    distill_cfg_check_fields(&c, known);
    o.from = distill_cfg_int(&c, "from", -1, 0);
    o.teacher_layer = distill_cfg_int(&c, "teacher_layer", 0, 1);
    o.teacher_channels = distill_cfg_int(&c, "teacher_channels", 0, 1);
    if (o.teacher_channels < 1) distill_cfg_fail(&c, "teacher_channels", "must be at least 1");
    o.bn_per_image = distill_cfg_choice(&c, "bn", "batch", "image");
    o.loss_weight = distill_cfg_loss_weight(&c);
    return make_fitnet_distill_layer(net, index, &o);
}

layer make_fitnet_distill_layer(network *net, int index, const distill_fitnet_options *o)
{
    distill_cfg c = {0, net, index, FITNET_DISTILL};
    fitnet_state *s = tat_calloc(1, sizeof(*s));
    layer l = distill_make_passthrough(&c, &distill_fitnet_ops, s);
    tat_rng rng = distill_init_rng();
    s->index = index;
    s->batch = net->batch;
    s->teacher_c = o->teacher_channels;
    s->bn_per_image = o->bn_per_image;
    s->loss_weight = o->loss_weight;
    s->from = distill_student_layer(&c, o->from);
    s->teacher_layer = o->teacher_layer;
    s->h = net->layers[s->from].out_h;
    s->w = net->layers[s->from].out_w;
    s->student_c = net->layers[s->from].out_c;
    /* the projection exists with or without a teacher: the weights file has one layout */
    distill_embedding_init(&s->projection, net, s->student_c, s->teacher_c, 1, &rng);
    if (net->teacher) {
        s->teacher_layer = distill_teacher_layer(&c, o->teacher_layer);
        distill_check_teacher_map(&c, s->teacher_layer, s->teacher_c, s->from);
        s->active = 1;
#ifdef GPU
        if (gpu_index >= 0) fitnet_gpu_setup(net, s);
#endif
        if (!s->gpu) {
            tat_embedding_alloc_activations(&s->projection, s->batch, s->h, s->w);
            s->diff = tat_calloc((size_t)s->batch * s->teacher_c * s->h * s->w, sizeof(float));
        }
    }
    fprintf(stderr, "%-14s student %d: %d x %d x %d, teacher %d: %d ch; 1x1 conv + BN, bn %s, weight %g; %zu params  %5.3f BFLOPs%s\n",
            distill_layer_type_name(FITNET_DISTILL), s->from, s->w, s->h, s->student_c,
            s->teacher_layer, s->teacher_c, s->bn_per_image ? "image" : "batch", s->loss_weight,
            fitnet_params(&l), fitnet_flops(&l) / 1e9,
            s->active ? "" : "  (inactive: no teacher)");
    return l;
}

static size_t elements_per_image(const fitnet_state *s)
{
    return (size_t)s->teacher_c * s->h * s->w;
}

void forward_fitnet_distill_layer(const layer l, network net)
{
    fitnet_state *s = state_of(&l);
    size_t n = elements_per_image(s) * s->batch;
    double sse;
    s->loss = 0;
    if (!distill_training(s->active, &net)) return;
    /* a 1x1 conv needs no im2col workspace */
    tat_embedding_forward(&s->projection, net.layers[s->from].output, NULL, s->batch, s->h, s->w,
                          s->bn_per_image);
    sse = tat_sse_forward(s->diff, s->projection.out, net.teacher->layers[s->teacher_layer].output, n);
    s->loss = (float)(s->loss_weight * sse / (double)n);
    distill_stop_if_not_finite(&net, distill_layer_type_name(l.type), s->index, s->loss);
}

/* Darknet's delta is the negative gradient of the loss summed over the batch (its update
   divides by the batch): each image's term is loss_weight * MSE, hence the negative per-image
   weight. */
void backward_fitnet_distill_layer(const layer l, network net)
{
    fitnet_state *s = state_of(&l);
    size_t per_image = elements_per_image(s);
    if (!distill_training(s->active, &net)) return;
    tat_sse_backward(s->projection.out_grad, s->diff, per_image * s->batch,
                     -s->loss_weight / (float)per_image);
    tat_embedding_backward(&s->projection, net.layers[s->from].delta, net.layers[s->from].output,
                           NULL, s->batch, s->h, s->w, s->bn_per_image);
}

void update_fitnet_distill_layer(const layer l, update_args a)
{
    fitnet_state *s = state_of(&l);
    /* without a teacher nothing was learned: do not let decay shrink the projection */
    if (!s->active) return;
    distill_embedding_update(&s->projection, &distill_blas_cpu, a, a.learning_rate * l.learning_rate_scale);
}

#ifdef GPU
static void fitnet_gpu_setup(const network *net, fitnet_state *s)
{
    struct fitnet_gpu *g = tat_calloc(1, sizeof(*g));
    size_t n = (size_t)s->batch * s->teacher_c * s->h * s->w;
    distill_gpu_alloc_context(net, FITNET_DISTILL, s->index);
    tat_gpu_embedding_init(&g->projection, &s->projection, s->batch, s->h, s->w);
    g->diff = tat_gpu_alloc_floats(n);
    g->workspace = tat_gpu_alloc_floats(tat_gpu_conv_workspace_floats(s->batch, s->student_c, s->h, s->w, 1));
    g->partials = tat_gpu_alloc_doubles(TAT_SUM_BLOCKS);
    tat_gpu_loss_init(&g->loss);
    s->gpu = g;
}

static void fitnet_gpu_free(fitnet_state *s)
{
    struct fitnet_gpu *g = s->gpu;
    if (!g) return;
    tat_gpu_embedding_free(&g->projection);
    tat_gpu_free(g->diff);
    tat_gpu_free(g->workspace);
    tat_gpu_free(g->partials);
    tat_gpu_loss_free(&g->loss);
    free(g);
    s->gpu = 0;
}

/* Parameters device -> host (to_host 1, before saving) or host -> device (after loading). */
static void fitnet_gpu_params(fitnet_state *s, int to_host)
{
    if (!s->gpu) return;
    if (to_host) tat_gpu_embedding_pull(&s->gpu->projection, &s->projection);
    else tat_gpu_embedding_push(&s->gpu->projection, &s->projection);
}

void forward_fitnet_distill_layer_gpu(const layer l, network net)
{
    fitnet_state *s = state_of(&l);
    s->loss = 0; /* set by the backward, when the loss has arrived */
    if (!distill_training(s->active, &net) || !s->gpu) return;
    tat_gpu_fitnet_forward(&s->gpu->projection, net.layers[s->from].output_gpu,
                           net.teacher->layers[s->teacher_layer].output_gpu, s->gpu->diff,
                           s->gpu->partials, &s->gpu->loss, s->batch, s->h, s->w, s->bn_per_image);
}

void backward_fitnet_distill_layer_gpu(const layer l, network net)
{
    fitnet_state *s = state_of(&l);
    size_t n = elements_per_image(s) * s->batch;
    if (!distill_training(s->active, &net) || !s->gpu) return;
    tat_gpu_fitnet_backward(&s->gpu->projection, net.layers[s->from].delta_gpu,
                            net.layers[s->from].output_gpu, s->gpu->diff, s->gpu->workspace,
                            -s->loss_weight / (float)elements_per_image(s), s->batch, s->h, s->w,
                            s->bn_per_image);
    /* queued: the forward's loss has long arrived; a non-finite one stops before the update */
    s->loss = (float)(s->loss_weight * tat_gpu_loss_wait(&s->gpu->loss) / (double)n);
    distill_stop_if_not_finite(&net, distill_layer_type_name(l.type), s->index, s->loss);
}

void update_fitnet_distill_layer_gpu(const layer l, update_args a)
{
    fitnet_state *s = state_of(&l);
    if (!s->active || !s->gpu) return;
    distill_embedding_update(&s->gpu->projection, &distill_blas_gpu, a, a.learning_rate * l.learning_rate_scale);
}

/* The projection of every replica becomes their mean (on the devices). */
static void sync_fitnet_distill_layer(network **nets, int n, int j)
{
    tat_embedding **rep = tat_calloc(n, sizeof(*rep));
    int *dev = tat_calloc(n, sizeof(*dev)), i;
    for (i = 0; i < n; ++i) {
        fitnet_state *s = state_of(&nets[i]->layers[j]);
        rep[i] = s->gpu ? &s->gpu->projection : 0;
        dev[i] = nets[i]->gpu_index;
    }
    if (rep[0]) distill_average_embeddings(rep, dev, n);
    free(rep);
    free(dev);
}
#endif

static void save_fitnet_weights(layer l, FILE *fp)
{
#ifdef GPU
    fitnet_gpu_params(state_of(&l), 1);
#endif
    distill_embedding_io(&state_of(&l)->projection, fp, 1);
}

/* a short read leaves end-of-file set: the weights loader names the file and the layer */
static void load_fitnet_weights(layer l, FILE *fp)
{
    distill_embedding_io(&state_of(&l)->projection, fp, 0);
#ifdef GPU
    fitnet_gpu_params(state_of(&l), 0);
#endif
}

static float fitnet_loss(const layer *l) { return state_of(l)->loss; }

/* The projection where it is trained: on the device when the layer runs there. */
static void fitnet_tensors(const layer *l, int grads, tat_tensor_list *host, tat_tensor_list *device)
{
    fitnet_state *s = state_of(l);
#ifdef GPU
    if (s->gpu) {
        distill_embedding_tensors(&s->gpu->projection, grads, device);
        return;
    }
#endif
    (void)device;
    distill_embedding_tensors(&s->projection, grads, host);
}

static size_t fitnet_params(const layer *l) { return tat_embedding_num_params(&state_of(l)->projection); }

static double fitnet_flops(const layer *l)
{
    fitnet_state *s = state_of(l);
    return tat_embedding_flops_per_image(&s->projection, s->h, s->w);
}

static void free_fitnet_distill_layer(layer l)
{
    fitnet_state *s = state_of(&l);
    if (!s) return;
#ifdef GPU
    fitnet_gpu_free(s);
#endif
    tat_embedding_free(&s->projection);
    free(s->diff);
    free(s);
}

const distill_type_ops distill_fitnet_ops = {
    .type = FITNET_DISTILL,
    .parse = parse_fitnet_distill,
    .forward = forward_fitnet_distill_layer,
    .backward = backward_fitnet_distill_layer,
    .update = update_fitnet_distill_layer,
#ifdef GPU
    .forward_gpu = forward_fitnet_distill_layer_gpu,
    .backward_gpu = backward_fitnet_distill_layer_gpu,
    .update_gpu = update_fitnet_distill_layer_gpu,
    .sync = sync_fitnet_distill_layer,
#endif
    .save_weights = save_fitnet_weights,
    .load_weights = load_fitnet_weights,
    .free_layer = free_fitnet_distill_layer,
    .loss = fitnet_loss,
    .params = fitnet_params,
    .flops = fitnet_flops,
    .tensors = fitnet_tensors,
};
