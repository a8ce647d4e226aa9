/* Darknet's convolutional BatchNorm on the CPU follows one rule, (x - mean) / sqrt(var + 1e-5)
 * (PyTorch's, with eps 1e-5), in its forward and its backward (the BatchNorm epsilon patch):
 *   - inference (rolling statistics): the output equals that formula computed here in double;
 *   - training (batch statistics): Darknet's backward is the gradient of Darknet's forward,
 *     checked by central finite differences on maps whose variance (~1e-7) is far below eps,
 *     where a forward dividing by sqrt(var) + 1e-6 is a different function (the check fails on
 *     the unpatched forward by orders of magnitude more than its tolerance). */
/* the shared header's network helpers are not all used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "layer_test_helpers.h"

/* one 3x3 convolution with BatchNorm and a linear activation: 4 images of 6x5x2 -> 6x5x3 */
static const char *bn_cfg =
    "[net]\nbatch=4\nwidth=6\nheight=5\nchannels=2\n"
    "[convolutional]\nbatch_normalize=1\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=linear\n";

/* input scale: conv outputs of variance ~1e-7, i.e. eps-dominated */
#define INPUT_SCALE 1e-3f

static void inference_formula(network *net)
{
    layer *l = &net->layers[0];
    float *raw, *out;
    double worst = 0, scale = 1e-3;
    int i, b, f, n = l->outputs * net->batch, spatial = l->out_w * l->out_h;
    for (i = 0; i < l->n; ++i) {
        l->rolling_mean[i] = 1e-4f * urand();
        l->rolling_variance[i] = 1e-6f * (1.5f + urand()); /* below eps on purpose */
        l->scales[i] = 1 + .5f * urand();
        l->biases[i] = .1f * urand();
    }
    /* the convolution alone: BatchNorm off (Darknet then adds the biases: zeroed meanwhile) */
    l->batch_normalize = 0;
    net->train = 0;
    {
        float *saved_biases = copy_array(l->biases, l->n);
        memset(l->biases, 0, l->n * sizeof(float));
        forward_network(net);
        raw = copy_array(l->output, n);
        memcpy(l->biases, saved_biases, l->n * sizeof(float));
        free(saved_biases);
    }
    l->batch_normalize = 1;
    forward_network(net);
    out = l->output;
    for (b = 0; b < net->batch; ++b)
        for (f = 0; f < l->n; ++f)
            for (i = 0; i < spatial; ++i) {
                int k = (b * l->n + f) * spatial + i;
                double want = (raw[k] - (double)l->rolling_mean[f]) /
                                  sqrt((double)l->rolling_variance[f] + 1e-5) * l->scales[f] +
                              l->biases[f];
                double d = fabs(out[k] - want);
                if (d > worst) worst = d;
                if (fabs(want) > scale) scale = fabs(want);
            }
    check(worst / scale < 1e-5, "batchnorm_inference_is_sqrt_var_plus_eps",
          "relative error %g (tolerance %g)", worst / scale, 1e-5);
    free(raw);
}

static void training_gradient(network *net)
{
    layer *l = &net->layers[0];
    int n = l->outputs * net->batch;
    float *r = rand_array(n, 1);
    weighted_output(net, r);
    /* Darknet's delta is the negative gradient: delta = r makes weight_updates = dL/dW */
    memcpy(l->delta, r, n * sizeof(float));
    memset(l->weight_updates, 0, l->nweights * sizeof(float));
    net->index = 0;
    net->delta = 0;
    l->backward(*l, *net);
    /* weights ~0.3, a linear map with L summed in double: a step of 3e-2 x rms is still exact
       to O(step^2) and keeps the float noise far below the tolerance */
    output_weights = r;
    check_fd("batchnorm_training_backward_matches_forward", l->weights, l->nweights,
             l->weight_updates, weighted_output_of, net, 0, 3e-2, 3, 2e-3);
    free(r);
}

int main(void)
{
    network *net;
    int i;
    if (!make_scratch_dir()) return 1;
    srand(3);
    net = parse_network_cfg(write_cfg("bn.cfg", bn_cfg));
    for (i = 0; i < net->inputs * net->batch; ++i) net->input[i] = INPUT_SCALE * urand();
    inference_formula(net);
    training_gradient(net);
    free_network(net);
    return finish_layer_test();
}
