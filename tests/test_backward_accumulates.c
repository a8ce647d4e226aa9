/* A distillation section whose `from` points further back than the previous layer: the
 * gradient it adds to that layer's delta must survive the backward of every layer in between
 * (the accumulate-delta patch: [activation], [batchnorm], [reorg] and [normalization] overwrote net.delta).
 * Finite differences of the distillation loss through Darknet's backward, w.r.t. the first
 * layer's weights, with each layer type between the distilled layer and the section; a second
 * section on the in-between layer's own output also sends gradient through its backward
 * (not for [normalization], whose backward is Darknet's approximation).
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <stdio.h>

#include "layer_test_helpers.h"

/* teacher layer 0 is 8 x 6 x 5, layer 1 (after the pool) 4 x 3 x 5 */
static const char *teacher_cfg =
    "[net]\nbatch=2\nwidth=8\nheight=6\nchannels=3\n"
    "[convolutional]\nfilters=5\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[maxpool]\nsize=2\nstride=2\n";

/* layer 1 is distilled by the first section (from=1) */
static const char *student_head =
    "[net]\nbatch=2\nwidth=8\nheight=6\nchannels=3\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n";

static const char *tat_on_layer1 =
    "[tat_distill]\nfrom=1\nteacher_layer=0\nteacher_channels=5\nsize=1\nkey=identity\n"
    "grid=1,1\nbn=batch\nloss_weight=1.5\n";

/* `between` (one or more layers after layer 1), the TaT section on layer 1, and a FitNet
   section on the last in-between layer (`own_section`, may be empty) */
static void check_between(const char *name, const char *between, const char *own_section)
{
    char tail[2048];
    snprintf(tail, sizeof(tail), "%s%s%s", between, tat_on_layer1, own_section);
    fd_check(name, teacher_cfg, student_head, tail);
}

int main(void)
{
    const char *fitnet_full = "[fitnet_distill]\nfrom=2\nteacher_layer=0\nteacher_channels=5\nloss_weight=0.8\n";
    if (!make_scratch_dir()) return 1;
    check_between("activation_between", "[activation]\nactivation=logistic\n", fitnet_full);
    check_between("batchnorm_between", "[batchnorm]\n", fitnet_full);
    check_between("reorg_between", "[reorg]\nstride=2\n",
                  "[fitnet_distill]\nfrom=2\nteacher_layer=1\nteacher_channels=5\nloss_weight=0.8\n");
    check_between("normalization_between", "[normalization]\n", "");
    /* [dropout] shares the buffers of the layer before it, so it may not directly follow the
       distilled layer (the sections refuse that, tests/test_wrong_results.sh); one layer
       further on it must pass both gradients, with one mask for every evaluation */
    forward_seed = 17;
    check_between("dropout_between", "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"
                                     "[dropout]\nprobability=.3\n",
                  "[fitnet_distill]\nfrom=3\nteacher_layer=0\nteacher_channels=5\nloss_weight=0.8\n");
    forward_seed = 0;
    return finish_layer_test();
}
