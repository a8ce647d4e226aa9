/* Unlabelled images in the distill loops' batches (train/unlabeled.h): the share of each
 * mini-batch, which rows hold them, their all-zero truth whatever their paths say, and the
 * task loss ([softmax]) leaving such rows out of the loss and the gradient while the labelled
 * rows keep Darknet's own values. Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "darknet.h"
#include "softmax_layer.h"
#include "test_helpers.h"
#include "unlabeled.h"

enum { SIDE = 8, CLASSES = 3, BATCH = 8, LOAD = 16 };
static char dir[256];
static char *labels[CLASSES] = {"cat0", "cat1", "cat2"};

/* a SIDE x SIDE image of one gray value at dir/<name>.png; returns its path */
static char *gray_png(const char *name, float value)
{
    char base[512], *path = malloc(520);
    image im = make_image(SIDE, SIDE, 3);
    int i;
    for (i = 0; i < SIDE * SIDE * 3; ++i) im.data[i] = value;
    snprintf(base, sizeof(base), "%s/%s", dir, name);
    save_image_options(im, base, PNG, 0);
    free_image(im);
    snprintf(path, 520, "%s.png", base);
    return path;
}

static load_args classifier_args(char **paths, int m)
{
    load_args a = {0};
    a.type = CLASSIFICATION_DATA;
    a.paths = paths;
    a.m = m;
    a.n = LOAD;
    a.labels = labels;
    a.classes = CLASSES;
    a.min = a.max = a.size = SIDE;
    a.aspect = a.saturation = a.exposure = 1; /* as load_thread sets them */
    return a;
}

static int ones_in(const float *y, int n)
{
    int i, c = 0;
    for (i = 0; i < n; ++i) c += y[i] == 1;
    return c;
}

static int zero_row(const float *y, int n)
{
    int i;
    for (i = 0; i < n; ++i)
        if (y[i] != 0) return 0;
    return 1;
}

static void test_count(void)
{
    char why[128];
    int a = train_unlabeled_count(128, .5f), b = train_unlabeled_count(16, .25f),
        c = train_unlabeled_count(10, .33f), d = train_unlabeled_count(7, 1), e = train_unlabeled_count(8, .01f);
    snprintf(why, sizeof(why), "128 x .5 -> %d, 16 x .25 -> %d, 10 x .33 -> %d, 7 x 1 -> %d, 8 x .01 -> %d", a, b, c, d, e);
    report(a == 64 && b == 4 && c == 3 && d == 7 && e == 0, "unlabeled_count_rounds", "%s", why);
}

static void test_batches(void)
{
    char *labelled[CLASSES], *unl_a[2], *unl_b[2];
    train_unlabeled ua = {0}, ub = {0};
    int load, start, i, k = train_unlabeled_count(BATCH, .25f);
    int share_ok = 1, labelled_ok = 1, pixels_ok = 1, same = 1;
    char why[256] = "";
    for (i = 0; i < CLASSES; ++i) {
        char name[64];
        snprintf(name, sizeof(name), "lab_%s", labels[i]);
        labelled[i] = gray_png(name, .1f + .1f * i);
    }
    /* the same two images under paths naming other labels, or none */
    unl_a[0] = gray_png("unl_cat1_a", .8f);
    unl_a[1] = gray_png("unl_cat2_b", .9f);
    unl_b[0] = gray_png("unl_cat0_a", .8f);
    unl_b[1] = gray_png("unl_b", .9f);
    ua.paths = unl_a;
    ub.paths = unl_b;
    ua.m = ub.m = 2;
    ua.fraction = ub.fraction = .25f;
    ua.list = ub.list = "list";
    for (load = 0; load < 3; ++load) {
        data d, e;
        srand(11 + load);
        d = train_load_with_unlabeled(classifier_args(labelled, CLASSES), BATCH, &ua, 0, 0);
        srand(11 + load);
        e = train_load_with_unlabeled(classifier_args(labelled, CLASSES), BATCH, &ub, 0, 0);
        if (d.X.rows != LOAD || d.y.cols != CLASSES) share_ok = 0;
        for (start = 0; start < LOAD; start += BATCH) {
            int zeros = 0;
            for (i = start; i < start + BATCH; ++i) {
                int unl = i >= start + BATCH - k;
                float v = d.X.vals[i][0];
                zeros += zero_row(d.y.vals[i], CLASSES);
                if (!unl && ones_in(d.y.vals[i], CLASSES) != 1) labelled_ok = 0;
                /* the unlabelled rows are the list's images (.8, .9), the others the labelled (.1-.3) */
                if (unl != (v > .7f)) {
                    pixels_ok = 0;
                    snprintf(why, sizeof(why), "load %d row %d: pixel %.3f", load, i, v);
                }
            }
            if (zeros != k) share_ok = 0;
        }
        for (i = 0; i < LOAD; ++i)
            if (memcmp(d.X.vals[i], e.X.vals[i], d.X.cols * sizeof(float)) ||
                memcmp(d.y.vals[i], e.y.vals[i], d.y.cols * sizeof(float)))
                same = 0;
        free_data(d);
        free_data(e);
    }
    report(share_ok, "unlabeled_share_each_minibatch", "want %d all-zero truth rows in every mini-batch of %d", k, BATCH);
    report(labelled_ok, "unlabeled_labelled_rows_keep_labels", "a labelled row lacks its one-hot truth");
    report(pixels_ok, "unlabeled_rows_from_the_list", "%s", why);
    report(same, "unlabeled_paths_labels_change_nothing", "paths naming other labels gave other rows");
    for (i = 0; i < CLASSES; ++i) free(labelled[i]);
    for (i = 0; i < 2; ++i) free(unl_a[i]), free(unl_b[i]);
}

/* softmax over rows of N, truth rows: 0 and 2 labelled, 1 and 3 without a label */
static void test_task_loss(void)
{
    enum { B = 4, N = CLASSES };
    float input[B * N], truth[B * N] = {0}, zeros[B * N] = {0}, delta_net[B * N] = {0};
    const int label[B] = {2, -1, 0, -1};
    layer plain = make_softmax_layer(B, N, 1), masked = make_softmax_layer(B, N, 1);
    network net = {0}, holder = {0};
    int i, b, unl_ok = 1, lab_ok = 1, plain_grad = 0, all_zero = 1;
    double want = 0;
    plain.temperature = masked.temperature = 1;
    srand(3);
    for (i = 0; i < B * N; ++i) input[i] = 4.f * rand() / RAND_MAX - 2.f;
    for (b = 0; b < B; ++b)
        if (label[b] >= 0) truth[b * N + label[b]] = 1;
    holder.n = 1;
    holder.layers = &masked;
    train_unlabeled_mask_task_loss(&holder);
    net.input = input;
    net.truth = truth;
    net.delta = delta_net;
    plain.forward(plain, net);
    masked.forward(masked, net);
    for (b = 0; b < B; ++b)
        for (i = 0; i < N; ++i) {
            float d = masked.delta[b * N + i], p = plain.delta[b * N + i];
            if (label[b] < 0) {
                if (d != 0) unl_ok = 0;
                if (p != 0) plain_grad = 1;
            } else if (d != p) {
                lab_ok = 0;
            }
        }
    for (b = 0; b < B; ++b)
        if (label[b] >= 0) want += -log(plain.output[b * N + label[b]]);
    report(unl_ok, "unlabeled_no_task_gradient", "a row without a label got a task delta");
    report(plain_grad, "unlabeled_control_plain_softmax_pulls", "Darknet's softmax gave the all-zero rows no delta: the check above could not fail");
    report(lab_ok, "unlabeled_labelled_rows_unchanged", "a labelled row's delta differs from Darknet's softmax");
    report(fabs(masked.cost[0] - want) < 1e-5 * fabs(want) && fabs(plain.cost[0] - masked.cost[0]) < 1e-6,
           "unlabeled_no_task_loss", "loss %f, want %f (the labelled rows' cross-entropy)", masked.cost[0], want);
    /* a mini-batch of unlabelled images only */
    net.truth = zeros;
    masked.forward(masked, net);
    for (i = 0; i < B * N; ++i)
        if (masked.delta[i] != 0) all_zero = 0;
    report(all_zero && masked.cost[0] == 0, "unlabeled_only_batch_zero_task_gradient", "loss %f, a nonzero delta: %s",
           masked.cost[0], all_zero ? "no" : "yes");
    free_layer(plain);
    free_layer(masked);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/test_unlabeled.XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_count();
    test_batches();
    test_task_loss();
    {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd)) {}
    }
    return test_exit_status();
}
