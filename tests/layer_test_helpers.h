#ifndef LAYER_TEST_HELPERS_H
#define LAYER_TEST_HELPERS_H
/* Shared by the tests that run distillation layers inside real Darknet networks (one .c file
 * each, so everything here is static): PASS/FAIL lines, cfg files in a scratch directory, a
 * student parsed with a given teacher attached, and Darknet's distillation loss. */
#include <stdio.h>
#include <stdlib.h>

#include "darknet.h"
#include "distill_plugin.h"

static int failures;
static char dir[256];

static void check(int ok, const char *name, const char *fmt, double a, double b)
{
    if (ok) {
        printf("PASS %s\n", name);
    } else {
        printf("FAIL %s: ", name);
        printf(fmt, a, b);
        printf("\n");
        ++failures;
    }
}

static char *write_cfg(const char *name, const char *text)
{
    static char paths[16][512];
    static int n;
    char *p = paths[n++ % 16];
    FILE *fp;
    snprintf(p, 512, "%s/%s", dir, name);
    fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static float urand(void) { return 2.f * rand() / (float)RAND_MAX - 1.f; }

/* parse_network_hook used here: attach a prepared teacher to the next student parsed */
static network *pending_teacher;
static void attach_pending(network *net)
{
    if (pending_teacher) {
        net->teacher = pending_teacher;
        pending_teacher = 0;
    }
}

static network *parse_with_teacher(char *cfg, network *teacher)
{
    network *net;
    pending_teacher = teacher;
    parse_network_hook = attach_pending;
    net = parse_network_cfg(cfg);
    parse_network_hook = 0;
    return net;
}

/* Darknet's loss as the layers define it: per-image losses summed over the batch. */
static double distill_loss(network *net)
{
    double sum = 0;
    int i;
    network_predict(net->teacher, net->input);
    net->train = 1;
    forward_network(net);
    for (i = 0; i < net->n; ++i)
        if (is_distill_layer(&net->layers[i])) sum += distill_layer_loss(&net->layers[i]) * net->batch;
    return sum;
}

static void fill_input(network *net, unsigned seed)
{
    int i;
    srand(seed);
    for (i = 0; i < net->inputs * net->batch; ++i) net->input[i] = urand();
}

#endif
