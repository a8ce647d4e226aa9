#include "distill_plugin.h"

#include "fitnet_distill_layer.h"
#include "kd_distill_layer.h"
#include "network.h"
#include "tat_distill_layer.h"

static const distill_type_ops *const type_ops[] = {&tat_distill_ops, &anchor_distill_ops,
                                                    &kd_distill_ops, &fitnet_distill_ops};

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

int is_distill_layer(const layer *l) { return is_distill_layer_type(l->type); }

layer parse_distill_section(LAYER_TYPE t, list *options, network *net, int index)
{
    distill_cfg c = {options, net, index, t};
    int j = index - 1;
    /* Darknet clears each layer's delta right before that layer's forward; ours alias the
       previous layer's, so after a loss layer (whose forward has just written its gradient
       there, e.g. [softmax]) that gradient would be lost. Pass-through layers in between
       alias the same buffer. */
    while (j >= 0 && is_distill_layer(&net->layers[j])) --j;
    if (j >= 0 && net->layers[j].cost)
        distill_cfg_fail(&c, "section",
                         "comes after layer %d ([%s]), a loss layer whose gradient it would erase: put it before that layer",
                         j, get_layer_string(net->layers[j].type));
    return ops_of(t)->parse(options, net, index);
}

void save_distill_section_weights(layer l, FILE *fp)
{
    const distill_type_ops *o = ops_of(l.type);
    if (o->save_weights) o->save_weights(l, fp);
}

void load_distill_section_weights(layer l, FILE *fp)
{
    const distill_type_ops *o = ops_of(l.type);
    if (o->load_weights) o->load_weights(l, fp);
}

void free_distill_section(layer l) { ops_of(l.type)->free_layer(l); }

#ifdef GPU
void sync_distill_section(network **nets, int n, int j)
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

void distill_layer_tensors(const layer *l, int grads, dist_tensor_list *host, dist_tensor_list *device)
{
    const distill_type_ops *o = ops_of(l->type);
    if (o->tensors) o->tensors(l, grads, host, device);
}

double distill_layer_flops(const layer *l)
{
    const distill_type_ops *o = ops_of(l->type);
    return o->flops ? o->flops(l) : 0;
}
