#include "distill_plugin.h"

#include <string.h>

#include "fitnet_distill_layer.h"
#include "kd_distill_layer.h"
#include "network.h"
#include "tat_distill_layer.h"
#include "yolo_distill_layer.h"

static const distill_type_ops *const type_ops[] = {&distill_tat_ops, &distill_anchor_ops,
                                                    &distill_kd_ops, &distill_fitnet_ops,
                                                    &distill_yolo_ops};

#define N_OPS ((int)(sizeof(type_ops) / sizeof(type_ops[0])))
#define COUNT_TYPE(type, section) +1
_Static_assert(N_OPS == 0 DISTILL_LAYER_TYPES(COUNT_TYPE),
               "every type in distill_layer_types.h needs its table in type_ops");
#undef COUNT_TYPE

static const distill_type_ops *ops_of(LAYER_TYPE t)
{
    int i;
    for (i = 0; i < N_OPS; ++i)
        if (type_ops[i]->type == t) return type_ops[i];
    return 0;
}

int distill_is_layer(const layer *l) { return distill_is_layer_type(l->type); }

const char *distill_layer_name(LAYER_TYPE t) { return distill_is_layer_type(t) ? distill_layer_type_name(t) : 0; }

layer distill_parse_section(LAYER_TYPE t, list *options, network *net, int index)
{
    distill_cfg c = {options, net, index, t};
    int j = index - 1;
    /* Darknet clears each layer's delta right before that layer's forward; ours alias the
       previous layer's, so after a loss layer (whose forward has just written its gradient
       there, e.g. [softmax]) that gradient would be lost. Pass-through layers in between
       alias the same buffer. */
    while (j >= 0 && distill_is_layer(&net->layers[j])) --j;
    if (j >= 0 && net->layers[j].cost)
        distill_cfg_fail(&c, "section",
                         "comes after layer %d ([%s]), a loss layer whose gradient it would erase: put it before that layer",
                         j, get_layer_string(net->layers[j].type));
    /* the classifier loop would call resize_network on them, which stops with Darknet's
       "Cannot resize this type of layer" after the first 40 iterations */
    if (net->random)
        distill_cfg_fail(&c, "section",
                         "random=1 in [net] is not supported with the distillation sections (Darknet cannot resize them or the teacher): remove random=1");
    return ops_of(t)->parse(options, net, index);
}

void distill_save_section_weights(layer l, FILE *fp)
{
    const distill_type_ops *o = ops_of(l.type);
    if (o->save_weights) o->save_weights(l, fp);
}

void distill_load_section_weights(layer l, FILE *fp)
{
    const distill_type_ops *o = ops_of(l.type);
    if (o->load_weights) o->load_weights(l, fp);
}

void distill_free_section(layer l) { ops_of(l.type)->free_layer(l); }

#ifdef GPU
void distill_sync_section(network **nets, int n, int j)
{
    const distill_type_ops *o = ops_of(nets[0]->layers[j].type);
    if (o->sync) o->sync(nets, n, j);
}
#endif

float distill_layer_loss(const layer *l) { return ops_of(l->type)->loss(l); }

size_t distill_layer_params(const layer *l)
{
    const distill_type_ops *o = ops_of(l->type);
    return o->params ? o->params(l) : 0;
}

void distill_layer_tensors(const layer *l, int grads, tat_tensor_list *host, tat_tensor_list *device)
{
    const distill_type_ops *o = ops_of(l->type);
    if (o->tensors) o->tensors(l, grads, host, device);
}

double distill_layer_flops(const layer *l)
{
    const distill_type_ops *o = ops_of(l->type);
    return o->flops ? o->flops(l) : 0;
}

/* Floats a layer's record holds in a weights file, as load_weights_upto reads them; -1 for a
   type whose record this does not know (recurrent and local layers): then no plan is made. */
static long record_floats(const layer *l)
{
    long bn = l->batch_normalize && !l->dontloadscales ? 3 : 0, n = l->numload ? l->numload : l->n;
    if (l->dontload) return 0;
    if (distill_is_layer(l)) return (long)distill_layer_params(l);
    switch (l->type) {
    case CONVOLUTIONAL: return n + bn * n + (long)l->c / l->groups * n * l->size * l->size;
    case DECONVOLUTIONAL: return l->n + bn * l->n + (long)l->nweights;
    case CONNECTED: return l->outputs + bn * l->outputs + (long)l->outputs * l->inputs;
    case BATCHNORM: return 3L * l->c;
    case RNN: case GRU: case LSTM: case CRNN: case LOCAL: return -1;
    default: return 0;
    }
}

static int skipped_last_load;

int distill_weights_skipped_sections(void) { return skipped_last_load; }

int distill_skip_weights(network *net, const char *filename, int start, int cutoff, long bytes)
{
    long full = 0, plain = 0, fits_plain = 0;
    int i, end = net->n < cutoff ? net->n : cutoff, n_distill = 0, last_loaded = -1;
    char skipped[512] = "";
    skipped_last_load = 0;
    for (i = start; i < end; ++i) {
        long f = record_floats(&net->layers[i]);
        if (f < 0) return 0;
        full += 4 * f;
        if (distill_is_layer(&net->layers[i])) {
            if (f) ++n_distill;
            continue;
        }
        plain += 4 * f;
        if (f && plain == bytes) fits_plain = 1, last_loaded = i;
    }
    if (!n_distill || bytes == full || !fits_plain) return 0;
    for (i = start; i < end; ++i) {
        layer *l = &net->layers[i];
        size_t used = strlen(skipped);
        if (distill_is_layer(l) && record_floats(l) && used < sizeof(skipped) - 64)
            snprintf(skipped + used, sizeof(skipped) - used, "%s%s (layer %d)", used ? ", " : "",
                     distill_layer_type_name(l->type), i);
    }
    fprintf(stderr, "\n%s: weights of the network without its distillation sections (layers %d-%d); %s start%s from scratch\n",
            filename, start, last_loaded, skipped, n_distill == 1 ? "s" : "");
    skipped_last_load = 1;
    return 1;
}
