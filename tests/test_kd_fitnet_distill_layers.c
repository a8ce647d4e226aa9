/* [kd_distill] and [fitnet_distill] inside real Darknet networks: gradients through Darknet's
 * backward (finite differences), the reported KD loss against an independent KL, pass-through
 * invariance, weights round trip of the FitNet projection, layers built from option structs
 * equal to the parsed ones.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "darknet.h"
#include "distill_plugin.h"
#include "fitnet_distill_layer.h"
#include "kd_distill_layer.h"
#include "layer_test_helpers.h"

/* teacher: 0 conv 7x5x5 | 1 conv 1x1 7x5x6 | 2 avgpool (6 logits) | 3 softmax */
static const char *teacher_cfg =
    "[net]\nbatch=3\nwidth=7\nheight=5\nchannels=3\n"
    "[convolutional]\nfilters=5\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=6\nsize=1\nstride=1\npad=0\nactivation=linear\n"
    "[avgpool]\n[softmax]\n";

/* student: 0 conv 7x5x3 | 1 conv 7x5x4 | 2 conv 1x1 7x5x6 (reads layer 1) | then the tail.
   The gradient reaches layer 0's weights through layer 1's 3x3 backward. */
static const char *student_head =
    "[net]\nbatch=3\nwidth=7\nheight=5\nchannels=3\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    "[convolutional]\nfilters=6\nsize=1\nstride=1\npad=0\nactivation=linear\n";

static const char *kd_t4 =
    "[avgpool]\n[kd_distill]\nfrom=-1\nteacher_layer=-2\ntemperature=4\nloss_weight=0.8\n";
static const char *fitnet_image =
    "[fitnet_distill]\nfrom=1\nteacher_layer=0\nteacher_channels=5\nbn=image\nloss_weight=1.3\n";
static const char *fitnet_batch_kd_t1 =
    "[fitnet_distill]\nfrom=-2\nteacher_layer=1\nteacher_channels=6\nbn=batch\nloss_weight=2\n"
    "[avgpool]\n[kd_distill]\nfrom=-1\nteacher_layer=2\ntemperature=1\nloss_weight=1.5\n";

/* The KD term reports loss_weight * T^2 * mean over images of KL(p_t || p_s), computed here
   independently in double from the student's and the teacher's logits. */
static void kd_reported_loss(void)
{
    char cfg_text[4096];
    network *teacher, *net;
    const float T = 3, w = 0.6f;
    double want = 0;
    float got;
    int b, j, n = 6;
    snprintf(cfg_text, sizeof(cfg_text), "%s[avgpool]\n[kd_distill]\nteacher_layer=2\ntemperature=3\nloss_weight=0.6\n[softmax]\n",
             student_head);
    srand(2);
    teacher = parse_network_cfg(write_cfg("teacher.cfg", teacher_cfg));
    net = parse_with_teacher(write_cfg("student.cfg", cfg_text), teacher);
    fill_input(net, 9);
    /* larger logits than the random init gives, so that the KL is not tiny */
    for (j = 0; j < net->layers[2].nweights; ++j) net->layers[2].weights[j] *= 5;
    distill_loss(net);
    got = distill_layer_loss(&net->layers[4]);
    for (b = 0; b < net->batch; ++b) {
        const float *s = net->layers[3].output + b * n, *t = teacher->layers[2].output + b * n;
        double zs = 0, zt = 0, ms = -1e30, mt = -1e30;
        for (j = 0; j < n; ++j) ms = fmax(ms, s[j] / T), mt = fmax(mt, t[j] / T);
        for (j = 0; j < n; ++j) zs += exp(s[j] / T - ms), zt += exp(t[j] / T - mt);
        for (j = 0; j < n; ++j) {
            double lt = t[j] / T - mt - log(zt), ls = s[j] / T - ms - log(zs);
            want += exp(lt) * (lt - ls);
        }
    }
    want *= w * T * T / net->batch;
    check(fabs(got - want) <= 1e-5 * fabs(want) && want > 1e-3, "kd_reported_loss_is_weighted_kl",
          "reported %.9g, independent %.9g", got, want);
    free_network(net);
}

static long file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) ? -1 : (long)st.st_size;
}

/* Train a few steps (so the projection moves), save, load into a fresh network: the same
   losses, and the same bytes when saved again. The file holds exactly the projection's
   parameters on top of the plain student's (BN biases, scales: 6 + 6; 1x1 conv: 6 x 4). */
static void weights_round_trip(void)
{
    char cfg_text[4096], *student, *tcfg = write_cfg("teacher.cfg", teacher_cfg);
    char *tw = write_cfg("teacher.weights", ""), *w1 = write_cfg("s1.weights", ""), *w2 = write_cfg("s2.weights", "");
    char *wplain = write_cfg("plain2.weights", "");
    network *a;
    float *before;
    int i, moved = 0, fitnet = 3;
    snprintf(cfg_text, sizeof(cfg_text), "%s%s%s", student_head, fitnet_batch_kd_t1, "[softmax]\n");
    student = write_cfg("student.cfg", cfg_text);
    a = trainable_student(student, tcfg, tw);
    save_weights(a, w1);
    before = calloc(36, sizeof(float));
    {
        /* the layers after the projection have no weights: it is the file's last 36 floats */
        FILE *fp = fopen(w1, "rb");
        long off = file_size(w1) - 36 * (long)sizeof(float);
        fseek(fp, off, SEEK_SET);
        moved = fread(before, sizeof(float), 36, fp) == 36;
        fclose(fp);
    }
    train_steps(a, 3);
    save_weights(a, w1);
    {
        FILE *fp = fopen(w1, "rb");
        float after[36];
        fseek(fp, file_size(w1) - 36 * (long)sizeof(float), SEEK_SET);
        moved = moved && fread(after, sizeof(float), 36, fp) == 36 && memcmp(after, before, sizeof(after));
        fclose(fp);
    }
    check(moved && a->layers[fitnet].type == FITNET_DISTILL, "fitnet_projection_learns", "%g %g", 0, 0);
    for (i = 0; i < a->n; ++i) a->layers[i].dontsave = distill_is_layer(&a->layers[i]);
    save_weights(a, wplain);
    for (i = 0; i < a->n; ++i) a->layers[i].dontsave = 0;
    check(file_size(w1) - file_size(wplain) == (6 + 6 + 24) * (long)sizeof(float),
          "fitnet_weights_hold_the_projection", "file holds %g bytes more than the plain student's, want %g",
          (double)(file_size(w1) - file_size(wplain)), (double)((6 + 6 + 24) * sizeof(float)));
    check_weights_round_trip("fitnet_", a, student, tcfg, tw, w1, w2);
    free(before);
    free_network(a);
}

static layer make_kd(network *net, int index)
{
    static const distill_kd_options o = {.from = -1, .teacher_layer = 2, .temperature = 2.5f,
                                         .loss_weight = 0.9f};
    return make_kd_distill_layer(net, index, &o);
}

static layer make_fitnet(network *net, int index)
{
    static const distill_fitnet_options o = {.from = 1, .teacher_layer = -4, .teacher_channels = 5,
                                             .bn_per_image = 1, .loss_weight = 1.3f};
    return make_fitnet_distill_layer(net, index, &o);
}

int main(void)
{
    if (!make_scratch_dir()) return 1;
    fd_check("student_conv_weights_kd_T4_on_avgpool_logits", teacher_cfg, student_head, kd_t4);
    fd_check("student_conv_weights_fitnet_per_image_bn", teacher_cfg, student_head, fitnet_image);
    fd_check("student_conv_weights_fitnet_batch_bn_and_kd_T1", teacher_cfg, student_head, fitnet_batch_kd_t1);
    kd_reported_loss();
    {
        char with_cfg[4096], without_cfg[4096];
        snprintf(with_cfg, sizeof(with_cfg), "%s%s%s", student_head, fitnet_batch_kd_t1, "[softmax]\n");
        snprintf(without_cfg, sizeof(without_cfg), "%s%s", student_head, "[avgpool]\n[softmax]\n");
        passthrough_invariance("baseline_", with_cfg, without_cfg);
    }
    weights_round_trip();
    {
        char head_pool[4096];
        snprintf(head_pool, sizeof(head_pool), "%s[avgpool]\n", student_head);
        make_equals_parse("kd_distill", teacher_cfg, head_pool,
                          "[kd_distill]\nfrom=-1\nteacher_layer=2\ntemperature=2.5\nloss_weight=0.9\n", make_kd);
    }
    make_equals_parse("fitnet_distill", teacher_cfg, student_head,
                      "[fitnet_distill]\nfrom=1\nteacher_layer=-4\nteacher_channels=5\nbn=image\nloss_weight=1.3\n",
                      make_fitnet);
    return finish_layer_test();
}
