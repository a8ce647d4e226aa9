/* The distillation layers inside real Darknet networks: gradients through Darknet's backward
 * (finite differences), the 1x1 convolution fix, pass-through invariance, weights round trip,
 * layers built from option structs equal to the parsed ones.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "darknet.h"
#include "convolutional_layer.h"
#include "tat_distill_layer.h"
#include "distill_plugin.h"
#include "layer_test_helpers.h"

static const char *teacher_cfg =
    "[net]\nbatch=3\nwidth=7\nheight=5\nchannels=3\n"
    "[convolutional]\nfilters=5\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=6\nsize=1\nstride=1\npad=0\nactivation=linear\n";

/* Layer 1 is distilled; layer 2 is a 1x1 convolution reading layer 1, whose backward used to
   overwrite layer 1's delta (and with it the distillation gradient). The gradient reaches
   layer 0's weights through layer 1's 3x3 backward (im2col workspace + col2im). */
static const char *student_head =
    "[net]\nbatch=3\nwidth=7\nheight=5\nchannels=3\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=3\nsize=1\nstride=1\npad=0\nactivation=linear\n";

/* A 1x1 convolution's backward must add into net.delta, not overwrite it. */
static void conv1x1_accumulates(void)
{
    layer l = make_convolutional_layer(2, 3, 4, 5, 6, 1, 1, 1, 0, LINEAR, 0, 0, 0, 0);
    network net = {0};
    float *input = calloc(l.inputs * l.batch, sizeof(float));
    float *delta = calloc(l.inputs * l.batch, sizeof(float));
    double worst = 0;
    int i, b, c, p, o;
    for (i = 0; i < l.inputs * l.batch; ++i) {
        input[i] = urand();
        delta[i] = 1;
    }
    for (i = 0; i < l.outputs * l.batch; ++i) l.delta[i] = urand();
    for (i = 0; i < l.outputs * l.batch; ++i) l.output[i] = 0;
    net.input = input;
    net.delta = delta;
    net.workspace = calloc(l.workspace_size / sizeof(float) + 1, sizeof(float));
    backward_convolutional_layer(l, net);
    /* expected: 1 + sum_o W[o][c] * delta_out[b][o][p] */
    for (b = 0; b < l.batch; ++b)
        for (c = 0; c < l.c; ++c)
            for (p = 0; p < l.h * l.w; ++p) {
                double want = 1;
                for (o = 0; o < l.n; ++o)
                    want += l.weights[o * l.c + c] * l.delta[(b * l.n + o) * l.out_h * l.out_w + p];
                double got = delta[(b * l.c + c) * l.h * l.w + p];
                if (fabs(got - want) > worst) worst = fabs(got - want);
            }
    check(worst < 1e-5, "conv1x1_backward_accumulates_into_delta", "max |delta - (prior + W^T dy)| %g (tolerance %g)", worst, 1e-5);
    free(input);
    free(delta);
    free(net.workspace);
    free_layer(l);
}

static const char *distill_a =
    "[tat_distill]\nfrom=1\nteacher_layer=0\nteacher_channels=5\nsize=3\nkey=learned\n"
    "grid=2,3\ngroups=3\nbn=image\nloss_weight=0.7\n"
    "[anchor_distill]\nembeddings=-1\nanchors=2,3\nloss_weight=0.4\n";
static const char *distill_b =
    "[tat_distill]\nfrom=-2\nteacher_layer=-1\nteacher_channels=6\nsize=1\nkey=identity\n"
    "grid=1,1\nbn=batch\nloss_weight=1.3\n"
    "[anchor_distill]\nfrom=1\nteacher_layer=1\nteacher_channels=6\nsize=3\nkey=learned\nbn=image\n"
    "anchors=2,2\nloss_weight=0.5\n";

/* The same sections with the attention streamed (one tile here: the tiling itself is
   tests/test_tat_math.c's) */
static const char *distill_a_streaming =
    "[tat_distill]\nfrom=1\nteacher_layer=0\nteacher_channels=5\nsize=3\nkey=learned\n"
    "grid=2,3\ngroups=3\nbn=image\nattention=streaming\nloss_weight=0.7\n"
    "[anchor_distill]\nembeddings=-1\nanchors=2,3\nattention=streaming\nloss_weight=0.4\n";
static const char *distill_b_streaming =
    "[tat_distill]\nfrom=-2\nteacher_layer=-1\nteacher_channels=6\nsize=1\nkey=identity\n"
    "grid=1,1\nbn=batch\nattention=streaming\nloss_weight=1.3\n"
    "[anchor_distill]\nfrom=1\nteacher_layer=1\nteacher_channels=6\nsize=3\nkey=learned\nbn=image\n"
    "anchors=2,2\nattention=streaming\nloss_weight=0.5\n";

/* Train a few steps (so the embeddings move), save, load into a fresh network: the same
   distillation losses, and the same bytes when saved again. */
static void weights_round_trip(void)
{
    char cfg_text[4096], *student, *tcfg = write_cfg("teacher.cfg", teacher_cfg);
    char *tw = write_cfg("teacher.weights", ""), *w1 = write_cfg("s1.weights", ""), *w2 = write_cfg("s2.weights", "");
    network *a;
    snprintf(cfg_text, sizeof(cfg_text), "%s%s", student_head, distill_a);
    student = write_cfg("student.cfg", cfg_text);
    a = trainable_student(student, tcfg, tw);
    train_steps(a, 3);
    save_weights(a, w1);
    check_weights_round_trip("", a, student, tcfg, tw, w1, w2);
    free_network(a);
}

static layer make_tat(network *net, int index)
{
    static const distill_tat_options o = {
        .emb = {.from = 1, .teacher_layer = 0, .teacher_channels = 5, .ksize = 3, .key_learned = 1,
                .bn_per_image = 1},
        .attention = DISTILL_ATTENTION_STREAMING, .grid_h = 2, .grid_w = 3, .groups = 3, .loss_weight = 0.7f};
    return make_tat_distill_layer(net, index, &o);
}

static layer make_anchor(network *net, int index)
{
    static const distill_anchor_options o = {
        .embeddings = DISTILL_UNSET,
        .emb = {.from = -2, .teacher_layer = -1, .teacher_channels = 6, .ksize = 1, .key_learned = 0,
                .bn_per_image = 0},
        .anchor_h = 2, .anchor_w = 2, .loss_weight = 0.5f};
    return make_anchor_distill_layer(net, index, &o);
}

int main(void)
{
    if (!make_scratch_dir()) return 1;
    conv1x1_accumulates();
    fd_check("student_conv_weights_groups_learned_key_k3_per_image_shared_anchors", teacher_cfg, student_head, distill_a);
    fd_check("student_conv_weights_full_identity_k1_batch_own_anchors_learned_key", teacher_cfg, student_head, distill_b);
    fd_check("streaming_student_conv_weights_groups_learned_key_k3_per_image_shared_anchors", teacher_cfg, student_head, distill_a_streaming);
    fd_check("streaming_student_conv_weights_full_identity_k1_batch_own_anchors_learned_key", teacher_cfg, student_head, distill_b_streaming);
    {
        const char *tail = "[convolutional]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
                           "[avgpool]\n[softmax]\n";
        char with_cfg[4096], without_cfg[4096];
        snprintf(with_cfg, sizeof(with_cfg), "%s%s%s", student_head, distill_b, tail);
        snprintf(without_cfg, sizeof(without_cfg), "%s%s", student_head, tail);
        passthrough_invariance("", with_cfg, without_cfg);
    }
    weights_round_trip();
    make_equals_parse("tat_distill", teacher_cfg, student_head,
                      "[tat_distill]\nfrom=1\nteacher_layer=0\nteacher_channels=5\nsize=3\nkey=learned\n"
                      "grid=2,3\ngroups=3\nbn=image\nattention=streaming\nloss_weight=0.7\n", make_tat);
    make_equals_parse("anchor_distill", teacher_cfg, student_head,
                      "[anchor_distill]\nfrom=-2\nteacher_layer=-1\nteacher_channels=6\nanchors=2,2\nloss_weight=0.5\n",
                      make_anchor);
    return finish_layer_test();
}
