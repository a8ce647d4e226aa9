/* Fashion-MNIST step timing with Darknet's library (the shipped cfgs, random input batches of
 * the cfg's batch size).
 *
 *   bench_fashion step <cfg-dir> <steps>   seconds per step: student alone (forward, backward,
 *                                          update), teacher forward alone, full distill step
 *   bench_fashion train <cfg-dir> <steps>  training images/s of the teacher cfg and of the
 *                                          distill step, and this process's peak RSS
 *   bench_fashion net <cfg> <steps> <batch> one cfg (e.g. cfg/imagenet-resnet34-teacher.cfg) at
 *                                          that batch: seconds per training step and per forward
 * Output lines are read by bench/report.sh:
 *   fashion <student_s> <teacher_fwd_s> <distill_s>
 *   train <teacher_img_per_s> <distill_img_per_s> <peak_rss_MiB>
 *   net <train_step_s> <forward_s> <peak_rss_MiB>
 */
#include "blas_core.h"
#include "darknet.h"
#include "plugin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static network *pending_teacher;
static void attach_pending(network *net)
{
    if (pending_teacher) net->teacher = pending_teacher, pending_teacher = 0;
}

static network *load(const char *dir, const char *name, network *teacher)
{
    char path[4096];
    network *net;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    pending_teacher = teacher;
    train_parse_network_hook = teacher ? attach_pending : 0;
    net = parse_network_cfg(path);
    train_parse_network_hook = 0;
    /* Darknet starts the rolling variances at 0: an untrained teacher in inference mode would
     * then scale each BatchNorm by 1/sqrt(eps) and overflow; 1 is what a trained one holds */
    for (int i = 0; i < net->n; ++i)
        if (net->layers[i].rolling_variance)
            for (int j = 0; j < net->layers[i].out_c; ++j) net->layers[i].rolling_variance[j] = 1;
    /* random images with random labels diverge at the cfg's rate (and the distill layers stop
     * on an infinite loss); the step costs the same at any rate */
    net->learning_rate = 1e-4f;
    return net;
}

/* A random batch with one-hot labels. */
static void fill_batch(network *net)
{
    int i, n = net->batch * net->inputs, classes = net->truths;
    for (i = 0; i < n; ++i) net->input[i] = rand() / (float)RAND_MAX;
    memset(net->truth, 0, (size_t)net->batch * classes * sizeof(float));
    for (i = 0; i < net->batch; ++i) net->truth[i * classes + rand() % classes] = 1;
}

/* Seconds per call of one training step (forward, backward, update), best of `steps` after
 * one warm-up step. */
static double time_train(network *net, int steps)
{
    double best = 1e30;
    int s;
    for (s = 0; s <= steps; ++s) {
        fill_batch(net);
        double t0 = now();
        train_network_datum(net);
        double dt = now() - t0;
        if (s && dt < best) best = dt;
    }
    return best;
}

static double time_predict(network *net, int steps)
{
    double best = 1e30;
    int s;
    for (s = 0; s <= steps; ++s) {
        fill_batch(net);
        double t0 = now();
        network_predict(net, net->input);
        double dt = now() - t0;
        if (s && dt < best) best = dt;
    }
    return best;
}

/* Mean images/s over `steps` training steps (after one warm-up step). */
static double train_rate(network *net, int steps)
{
    int s;
    fill_batch(net);
    train_network_datum(net);
    double t0 = now();
    for (s = 0; s < steps; ++s) {
        fill_batch(net);
        train_network_datum(net);
    }
    return (double)steps * net->batch / (now() - t0);
}

int main(int argc, char **argv)
{
    train_plugin_hooks(&darknet_plugin);
    tat_blas_select(argv); /* the kernels darknet itself would run */
    if (argc == 5 && !strcmp(argv[1], "net")) {
        network *net = load(".", argv[2], NULL);
        int steps = atoi(argv[3]);
        struct rusage ru;
        srand(1);
        set_batch_network(net, atoi(argv[4]));
        double t = time_train(net, steps), f = time_predict(net, steps);
        getrusage(RUSAGE_SELF, &ru);
        printf("net %.4f %.4f %.1f\n", t, f, ru.ru_maxrss / 1024.0);
        return 0;
    }
    if (argc != 4 || (strcmp(argv[1], "step") && strcmp(argv[1], "train"))) {
        fprintf(stderr, "usage: %s step|train <cfg-dir> <steps>, or %s net <cfg> <steps> <batch>\n", argv[0], argv[0]);
        return 2;
    }
    const char *dir = argv[2];
    int steps = atoi(argv[3]);
    srand(1);
    if (!strcmp(argv[1], "step")) {
        network *student = load(dir, "fashion-student.cfg", NULL);
        network *teacher = load(dir, "fashion-teacher.cfg", NULL);
        network *distill = load(dir, "fashion-student-tat.cfg", load(dir, "fashion-teacher.cfg", NULL));
        double s = time_train(student, steps), t = time_predict(teacher, steps);
        double d = time_train(distill, steps);
        printf("fashion %.5f %.5f %.5f\n", s, t, d);
    } else {
        network *teacher = load(dir, "fashion-teacher.cfg", NULL);
        network *distill = load(dir, "fashion-student-tat.cfg", load(dir, "fashion-teacher.cfg", NULL));
        double rt = train_rate(teacher, steps), rd = train_rate(distill, steps);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("train %.1f %.1f %.1f\n", rt, rd, ru.ru_maxrss / 1024.0);
    }
    return 0;
}
