#include "input_normalization.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill_common.h"
#include "option_list.h"

static void norm_fail(const network *net, const char *field, const char *why)
{
    fprintf(stderr, "%s: [net] %s: %s\n", net->cfgfile ? net->cfgfile : "cfg", field, why);
    exit(1);
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
    v = distill_calloc(net->c, sizeof(float));
    for (i = 0; i < net->c; ++i) {
        v[i] = strtof(p, &end);
        if (end == p || (positive && !(v[i] > 0))) norm_fail(net, field, why);
        for (p = end; *p == ' '; ++p) {}
        if (i < net->c - 1 && *p++ != ',') norm_fail(net, field, why);
    }
    if (*p) norm_fail(net, field, why);
    return v;
}

void read_input_normalization(list *options, network *net)
{
    net->input_mean = read_channels(options, net, "input_mean", 0);
    net->input_std = read_channels(options, net, "input_std", 1);
    if (!net->input_mean != !net->input_std)
        norm_fail(net, net->input_mean ? "input_std" : "input_mean",
                  "input_mean and input_std go together");
}

float *normalized_network_input(network *net)
{
    int b, c, i, hw;
    if (!net->input_mean) return net->input;
    hw = net->inputs / net->c;
    for (b = 0; b < net->batch; ++b)
        for (c = 0; c < net->c; ++c) {
            const float *x = net->input + ((size_t)b * net->c + c) * hw;
            float *y = net->input_normalized + ((size_t)b * net->c + c) * hw;
            float mean = net->input_mean[c], inv = 1.f / net->input_std[c];
            for (i = 0; i < hw; ++i) y[i] = (x[i] - mean) * inv;
        }
    return net->input_normalized;
}
