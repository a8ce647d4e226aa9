/* The frozen teacher as an inference network (train/teacher_inference.h): BatchNorm folded into
 * the weights and biases, the backward buffers freed. Against the same teacher unfolded, on odd
 * map sizes (11x9 input, batch 3), a strided 3x3, a grouped 3x3, a [shortcut], a strided 1x1,
 * a [connected] with and one without BatchNorm:
 *   - every layer's output after network_predict agrees within FOLD_TOLERANCE of that layer's
 *     largest |output| (folding only reorders float roundings: w * s summed, not the sum * s);
 *   - a student's TaT and KD losses against either teacher agree within the same tolerance;
 *   - no delta, no weight/bias/scale gradient, no BatchNorm copy is left, batch_normalize is off;
 *   - save_weights of the folded teacher writes no folded layer (the file keeps the header and
 *     the one [connected] without BatchNorm only). */
#include "layer_test_helpers.h"
#include "teacher_inference.h"

#include <sys/stat.h>

#define FOLD_TOLERANCE 1e-5

static const char *teacher_cfg =
    "[net]\nbatch=3\nwidth=11\nheight=9\nchannels=4\n"
    /* 0: 3x3 stride 2 -> 6x5x6 */
    "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    /* 1: grouped 3x3 -> 6x5x4 */
    "[convolutional]\nbatch_normalize=1\nfilters=4\ngroups=2\nsize=3\nstride=1\npad=1\nactivation=relu\n"
    /* 2 */
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=linear\n"
    /* 3: the residual sum */
    "[shortcut]\nfrom=-2\nactivation=relu\n"
    /* 4: strided 1x1 -> 3x3x8 */
    "[convolutional]\nbatch_normalize=1\nfilters=8\nsize=1\nstride=2\npad=0\nactivation=leaky\n"
    /* 5 */
    "[avgpool]\n"
    /* 6, 7: logits */
    "[connected]\nbatch_normalize=1\noutput=7\nactivation=logistic\n"
    "[connected]\noutput=5\nactivation=linear\n"
    "[softmax]\n";

static const char *student_cfg =
    "[net]\nbatch=3\nwidth=11\nheight=9\nchannels=4\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=2\npad=1\nactivation=leaky\n"
    "[tat_distill]\nfrom=-1\nteacher_layer=3\nteacher_channels=4\nsize=3\nkey=identity\ngrid=1,1\n"
    "groups=1\nbn=batch\nloss_weight=1\n"
    "[avgpool]\n"
    "[connected]\noutput=5\nactivation=linear\n"
    "[kd_distill]\nfrom=-1\nteacher_layer=7\ntemperature=4\nloss_weight=1\n"
    "[softmax]\n";

/* trained-looking BatchNorm statistics, so the fold has something to fold */
static void randomize_batchnorm(network *net)
{
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        int outputs = l->type == CONVOLUTIONAL ? l->n : l->outputs;
        if (!l->batch_normalize) continue;
        for (int f = 0; f < outputs; ++f) {
            float u = urand();
            l->rolling_mean[f] = .5f * urand();
            l->rolling_variance[f] = .05f + u * u;
            l->scales[f] = 1 + .5f * urand();
            l->biases[f] = .2f * urand();
        }
    }
}

static double max_abs(const float *x, int n)
{
    double m = 0;
    for (int i = 0; i < n; ++i)
        if (fabs(x[i]) > m) m = fabs(x[i]);
    return m;
}

static double worst_layer_error(network *a, network *b, int *where)
{
    double worst = 0;
    for (int i = 0; i < a->n; ++i) {
        int n = a->layers[i].outputs * a->batch;
        double scale = max_abs(a->layers[i].output, n), d = 0;
        for (int k = 0; k < n; ++k) {
            double e = fabs((double)a->layers[i].output[k] - b->layers[i].output[k]);
            if (e > d) d = e;
        }
        d /= scale > 1e-30 ? scale : 1;
        if (d > worst) worst = d, *where = i;
    }
    return worst;
}

static int leftovers(network *net)
{
    int left = 0;
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        left += !!l->delta + !!l->weight_updates + !!l->bias_updates + !!l->scale_updates;
        left += !!l->x + !!l->x_norm + !!l->mean_delta + !!l->variance_delta + l->batch_normalize;
    }
    return left;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) ? -1 : (long)st.st_size;
}

int main(void)
{
    char *tcfg, wpath[600], folded_path[600];
    network *plain, *folded, *s_plain, *s_folded;
    int where = -1;
    double err, lp, lf;
    test_info_lines = 1; /* the measured errors, passed or not */
    if (!make_scratch_dir()) return 1;
    tcfg = write_cfg("teacher.cfg", teacher_cfg);
    snprintf(wpath, sizeof(wpath), "%s/teacher.weights", dir);
    snprintf(folded_path, sizeof(folded_path), "%s/folded.weights", dir);

    srand(7);
    plain = parse_network_cfg(tcfg);
    randomize_batchnorm(plain);
    save_weights(plain, wpath);
    folded = parse_network_cfg(tcfg);
    load_weights(folded, wpath);
    train_teacher_for_inference(folded);

    fill_input(plain, 11);
    memcpy(folded->input, plain->input, (size_t)plain->inputs * plain->batch * sizeof(float));
    network_predict(plain, plain->input);
    network_predict(folded, folded->input);
    err = worst_layer_error(plain, folded, &where);
    check(err <= FOLD_TOLERANCE, "folded_teacher_outputs_match",
          "worst relative error %g (at layer %.0f)", err, (double)where);

    check(leftovers(folded) == 0, "folded_teacher_has_no_backward_buffers",
          "%.0f backward buffers or BatchNorm flags left (%.0f expected)", (double)leftovers(folded), 0);

    save_weights(folded, folded_path);
    /* header: major, minor, revision (int32) and seen (size_t); then layer 7's 5 biases and
       5 x 7 weights */
    check(file_size(folded_path) == 20 + 4 * (5 + 35), "folded_layers_never_saved",
          "the folded teacher's weights file has %.0f bytes (%.0f expected)",
          (double)file_size(folded_path), 20 + 4 * (5 + 35));

    srand(3);
    s_plain = parse_with_teacher(write_cfg("student.cfg", student_cfg), plain);
    srand(3);
    s_folded = parse_with_teacher(write_cfg("student.cfg", student_cfg), folded);
    fill_input(s_plain, 5);
    memcpy(s_folded->input, s_plain->input, (size_t)s_plain->inputs * s_plain->batch * sizeof(float));
    lp = distill_loss(s_plain);
    lf = distill_loss(s_folded);
    check(fabs(lp - lf) <= FOLD_TOLERANCE * fabs(lp) && lp > 0, "distill_losses_match_folded_teacher",
          "TaT + KD loss %.9g against the unfolded teacher's %.9g", lf, lp);

    s_plain->teacher = s_folded->teacher = 0;
    free_network(s_plain);
    free_network(s_folded);
    free_network(plain);
    free_network(folded);
    return finish_layer_test();
}
