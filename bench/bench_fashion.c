/* Fashion-MNIST training speed with Darknet's library (the shipped cfgs, random input batches
 * of the cfg's batch size), with the BLAS gemm or Darknet's stock one (the step costs of the
 * demo's networks against PyTorch are bench/bench_distill.c's):
 *
 *   bench_fashion train <cfg-dir> <steps>  training images/s of the teacher cfg and of the
 *                                          distill step, and this process's peak RSS
 * Output line, read by bench/run.sh:
 *   train <teacher_img_per_s> <distill_img_per_s> <peak_rss_MiB>
 */
#include "blas_core.h"
#include "darknet.h"
#include "plugin.h"
#include "teacher_inference.h"

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

/* the frozen teacher as the distill commands load it */
static network *load_teacher(const char *dir)
{
    network *teacher = load(dir, "fashion-teacher.cfg", NULL);
    train_teacher_for_inference(teacher);
    return teacher;
}

/* A random batch with one-hot labels. */
static void fill_batch(network *net)
{
    int i, n = net->batch * net->inputs, classes = net->truths;
    for (i = 0; i < n; ++i) net->input[i] = rand() / (float)RAND_MAX;
    memset(net->truth, 0, (size_t)net->batch * classes * sizeof(float));
    for (i = 0; i < net->batch; ++i) net->truth[i * classes + rand() % classes] = 1;
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
    if (argc != 4 || strcmp(argv[1], "train")) {
        fprintf(stderr, "usage: %s train <cfg-dir> <steps>\n", argv[0]);
        return 2;
    }
    const char *dir = argv[2];
    int steps = atoi(argv[3]);
    srand(1);
    {
        network *teacher = load(dir, "fashion-teacher.cfg", NULL);
        network *distill = load(dir, "fashion-student-tat.cfg", load_teacher(dir));
        double rt = train_rate(teacher, steps), rd = train_rate(distill, steps);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        printf("train %.1f %.1f %.1f\n", rt, rd, ru.ru_maxrss / 1024.0);
    }
    return 0;
}
