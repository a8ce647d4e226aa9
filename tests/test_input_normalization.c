/* [net] input_mean= / input_std= (train/input_normalization.c): layer 0 reads (x - mean[c]) / std[c].
 *   - forward: a network with the fields on x gives the outputs of the same network without
 *     them on x normalised here;
 *   - the caller's input buffer is left as it was (a teacher and its student share it);
 *   - backward: layer 0's weight gradient is the gradient of that forward (central finite
 *     differences of L = sum(r * output), summed in double). */
/* the shared header's network helpers are not all used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "layer_test_helpers.h"

#define NET_HEAD "[net]\nbatch=2\nwidth=5\nheight=4\nchannels=3\n"
/* linear: no activation kink for the finite differences to straddle */
#define CONV "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"
static const float mean[3] = {0.485f, 0.456f, 0.406f}, stdev[3] = {0.229f, 0.224f, 0.225f};

int main(void)
{
    network *with, *without;
    layer *l;
    float *x, *xn, *r;
    int i, n, hw;
    if (!make_scratch_dir()) return 1;
    srand(9);
    with = parse_network_cfg(write_cfg("with.cfg", NET_HEAD "input_mean=0.485,0.456,0.406\n"
                                                  "input_std=0.229,0.224,0.225\n" CONV));
    without = parse_network_cfg(write_cfg("without.cfg", NET_HEAD CONV));
    l = &with->layers[0];
    memcpy(without->layers[0].weights, l->weights, l->nweights * sizeof(float));
    memcpy(without->layers[0].biases, l->biases, l->n * sizeof(float));
    n = with->inputs * with->batch;
    hw = with->inputs / 3;
    x = test_alloc(n * sizeof(float));
    xn = test_alloc(n * sizeof(float));
    for (i = 0; i < n; ++i) {
        x[i] = (urand() + 1) / 2; /* RGB in [0,1] */
        xn[i] = (x[i] - mean[(i / hw) % 3]) / stdev[(i / hw) % 3];
    }
    {
        float *a, *b, *keep = copy_array(x, n);
        a = copy_array(network_predict(with, x), l->outputs * with->batch);
        b = network_predict(without, xn);
        check_close("normalized_input_forward", a, b, l->outputs * with->batch, 1e-5);
        report(!memcmp(keep, x, n * sizeof(float)), "normalized_input_leaves_caller_buffer",
               "network_predict changed the caller's input");
        free(a);
        free(keep);
    }
    /* backward through layer 0: delta = r makes weight_updates = dL/dW (Darknet keeps -grad) */
    memcpy(with->input, x, n * sizeof(float));
    r = rand_array(l->outputs * with->batch, 1);
    weighted_output(with, r);
    memcpy(l->delta, r, l->outputs * with->batch * sizeof(float));
    memset(l->weight_updates, 0, l->nweights * sizeof(float));
    backward_network(with);
    output_weights = r;
    check_fd("normalized_input_backward_matches_forward", l->weights, l->nweights, l->weight_updates,
             weighted_output_of, with, 0, 3e-2, 3, 2e-3);
    free(x);
    free(xn);
    free(r);
    free_network(with);
    free_network(without);
    return finish_layer_test();
}
