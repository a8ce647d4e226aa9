#include "input_normalization.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill_common.h"
#include "option_list.h"

static void norm_fail(const network *net, const char *field, const char *why)
{
    tat_fail("%s: [net] %s: %s", net->cfgfile ? net->cfgfile : "cfg", field, why);
}

static float *read_channels(list *options, network *net, const char *field, int positive)
{
    char *p = option_find(options, (char *)field), *end, why[160];
    float *v;
    int i;
    if (!p) return 0;
    snprintf(why, sizeof why, "needs %d comma-separated numbers, one per input channel%s", net->c,
             positive ? ", each > 0" : "");
    if (net->c < 1) norm_fail(net, field, "needs channels= first");
    v = tat_calloc(net->c, sizeof(float));
    for (i = 0; i < net->c; ++i) {
        v[i] = strtof(p, &end);
        if (end == p || (positive && !(v[i] > 0))) norm_fail(net, field, why);
        for (p = end; *p == ' '; ++p) {}
        if (i < net->c - 1 && *p++ != ',') norm_fail(net, field, why);
    }
    if (*p) norm_fail(net, field, why);
    return v;
}

/* network.plugin_state of a network with input_mean/input_std */
typedef struct {
    float *mean, *std;
    float *normalized; /* the copy layer 0 reads, inputs x batch floats */
} input_normalization;

void train_read_input_normalization(list *options, network *net)
{
    float *mean = read_channels(options, net, "input_mean", 0);
    float *std = read_channels(options, net, "input_std", 1);
    input_normalization *n;
    if (!mean != !std)
        norm_fail(net, mean ? "input_std" : "input_mean", "input_mean and input_std go together");
    if (!mean) return;
    n = tat_calloc(1, sizeof(*n));
    n->mean = mean;
    n->std = std;
    net->plugin_state = n;
}

int train_has_input_normalization(const network *net) { return net->plugin_state != 0; }

float *train_network_input(network *net, int fresh)
{
    input_normalization *n = net->plugin_state;
    int b, c, i, hw;
    if (!n) return net->input;
    /* sized on first use: the batch is final once the network is parsed and may only shrink */
    if (!n->normalized) n->normalized = tat_calloc((size_t)net->inputs * net->batch, sizeof(float));
    if (!fresh) return n->normalized;
    hw = net->inputs / net->c;
    for (b = 0; b < net->batch; ++b)
        for (c = 0; c < net->c; ++c) {
            const float *x = net->input + ((size_t)b * net->c + c) * hw;
            float *y = n->normalized + ((size_t)b * net->c + c) * hw;
            float mean = n->mean[c], inv = 1.f / n->std[c];
            for (i = 0; i < hw; ++i) y[i] = (x[i] - mean) * inv;
        }
    return n->normalized;
}

void train_free_input_normalization(network *net)
{
    input_normalization *n = net->plugin_state;
    if (!n) return;
    free(n->mean);
    free(n->std);
    free(n->normalized);
    free(n);
    net->plugin_state = 0;
}
