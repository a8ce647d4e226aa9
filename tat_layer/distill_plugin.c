#include "distill_plugin.h"

#include <string.h>

#include "baseline_layer.h"
#include "distill_layer.h"
#include "network.h"

typedef struct {
    LAYER_TYPE type;
    layer (*parse)(list *options, network *net, int index);
    void (*save_weights)(layer l, FILE *fp);
    void (*load_weights)(layer l, FILE *fp);
    void (*free_layer)(layer l);
    float (*loss)(const layer *l);
    size_t (*params)(const layer *l);
    double (*flops)(const layer *l);
} distill_type_ops;

static const distill_type_ops type_ops[] = {
    {TAT_DISTILL, parse_tat_distill, save_distill_weights, load_distill_weights,
     free_distill_layer, tat_distill_layer_loss, tat_distill_layer_params, tat_distill_layer_flops},
    {ANCHOR_DISTILL, parse_anchor_distill, save_distill_weights, load_distill_weights,
     free_distill_layer, tat_distill_layer_loss, tat_distill_layer_params, tat_distill_layer_flops},
    {KD_DISTILL, parse_kd_distill, save_baseline_weights, load_baseline_weights,
     free_baseline_layer, baseline_layer_loss, baseline_layer_params, baseline_layer_flops},
    {FITNET_DISTILL, parse_fitnet_distill, save_baseline_weights, load_baseline_weights,
     free_baseline_layer, baseline_layer_loss, baseline_layer_params, baseline_layer_flops},
};

#define DISTILL_TYPE_NAME(type, section) {type, section},
static const struct {
    LAYER_TYPE type;
    const char *name;
} type_names[] = {DISTILL_LAYER_TYPES(DISTILL_TYPE_NAME)};
#undef DISTILL_TYPE_NAME

#define N_TYPES ((int)(sizeof(type_names) / sizeof(type_names[0])))
_Static_assert(sizeof(type_ops) / sizeof(type_ops[0]) == sizeof(type_names) / sizeof(type_names[0]),
               "every type in distill_layer_types.h needs its functions in type_ops");

static const distill_type_ops *ops_of(LAYER_TYPE t)
{
    int i;
    for (i = 0; i < N_TYPES; ++i)
        if (type_ops[i].type == t) return &type_ops[i];
    return 0;
}

int is_distill_layer_type(LAYER_TYPE t) { return ops_of(t) != 0; }

int is_distill_layer(const layer *l) { return is_distill_layer_type(l->type); }

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

const char *distill_layer_type_name(LAYER_TYPE t)
{
    int i;
    for (i = 0; i < N_TYPES; ++i)
        if (type_names[i].type == t) return type_names[i].name;
    return "?";
}

layer parse_distill_section(LAYER_TYPE t, list *options, network *net, int index)
{
    int j = index - 1;
    /* Darknet clears each layer's delta right before that layer's forward; ours alias the
       previous layer's, so after a loss layer (whose forward has just written its gradient
       there, e.g. [softmax]) that gradient would be lost. Pass-through layers in between
       alias the same buffer. */
    while (j >= 0 && is_distill_layer(&net->layers[j])) --j;
    if (j >= 0 && net->layers[j].cost)
        cfg_fail(net, index, t, "section",
                 "comes after layer %d ([%s]), a loss layer whose gradient it would erase: put it before that layer",
                 j, get_layer_string(net->layers[j].type));
    return ops_of(t)->parse(options, net, index);
}

void save_distill_section_weights(layer l, FILE *fp) { ops_of(l.type)->save_weights(l, fp); }
void load_distill_section_weights(layer l, FILE *fp) { ops_of(l.type)->load_weights(l, fp); }
void free_distill_section(layer l) { ops_of(l.type)->free_layer(l); }

float distill_layer_loss(const layer *l) { return ops_of(l->type)->loss(l); }
size_t distill_layer_params(const layer *l) { return ops_of(l->type)->params(l); }
double distill_layer_flops(const layer *l) { return ops_of(l->type)->flops(l); }

void distill_stop_if_not_finite(const network *net, const layer *l, int index, float loss)
{
    /* the step number is the one its progress line would have shown */
    size_t per_step = (size_t)net->batch * net->subdivisions;
    if (distill_finite(loss)) return;
    fprintf(stderr, "%s: [%s] (layer %d): loss is %s at iteration %zu; stopping, last backup kept\n",
            net->cfgfile ? net->cfgfile : "cfg", distill_layer_type_name(l->type), index,
            loss != loss ? "nan" : "inf", (*net->seen + per_step - 1) / per_step);
    exit(1);
}
