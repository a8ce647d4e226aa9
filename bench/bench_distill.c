/* One distillation setting's step costs through Darknet's library, one measurement per process
 * (so that each peak RSS is the row's own):
 *
 *   bench_distill step    <student.cfg> <teacher.cfg> <teacher.weights|-> <student.weights|-> <batch> <steps>
 *       the whole step: teacher forward (network_predict, the teacher as an inference network),
 *       student forward + distillation layers + backward + update (train_network_datum)
 *   bench_distill student <student.cfg> - - <student.weights|-> <batch> <steps>
 *       the student's step alone (a cfg without distillation sections)
 *   bench_distill teacher <teacher.cfg> - <teacher.weights|-> - <batch> <steps>
 *       the teacher's forward alone, as the step runs it
 *   bench_distill teacher-unfolded ..., step-unfolded ...   the same with the teacher as it ran
 *       before train_teacher_for_inference: BatchNorm unfolded, the backward buffers kept
 *
 * Every network is parsed at <batch> (the cfg's own batch is ignored), fed random images with
 * random one-hot labels. "-" for a weights file: Darknet's random initialisation, with the
 * rolling variances set to 1 (Darknet starts them at 0, which an inference BatchNorm divides by).
 * Output, one line read by bench/run.sh:
 *   distill <mode> <batch> <median ms per step> <peak RSS MiB> <resident MiB of the loaded networks>
 * The last figure is VmRSS after one step minus VmRSS before parsing: what the networks hold.
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

static double vm_rss_mib(void)
{
    char line[256];
    double kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lf", &kib) == 1) break;
    fclose(f);
    return kib / 1024;
}

static int batch;
static network *pending_teacher;
/* train_parse_network_hook: every network at the benchmark's batch; a student gets its teacher */
static void at_batch(network *net)
{
    net->batch = batch;
    if (pending_teacher) net->teacher = pending_teacher, pending_teacher = 0;
}

static network *load(const char *cfg, const char *weights, network *teacher)
{
    network *net;
    pending_teacher = teacher;
    train_parse_network_hook = at_batch;
    net = parse_network_cfg((char *)cfg);
    train_parse_network_hook = 0;
    if (strcmp(weights, "-")) {
        load_weights(net, (char *)weights);
    } else {
        for (int i = 0; i < net->n; ++i)
            if (net->layers[i].rolling_variance)
                for (int j = 0; j < net->layers[i].out_c; ++j) net->layers[i].rolling_variance[j] = 1;
    }
    /* random labels diverge at the cfg's rate; the step costs the same at any rate */
    net->learning_rate = 1e-5f;
    return net;
}

static void fill_batch(network *net)
{
    int n = net->batch * net->inputs, classes = net->truths;
    for (int i = 0; i < n; ++i) net->input[i] = rand() / (float)RAND_MAX;
    if (!net->truth) return;
    memset(net->truth, 0, (size_t)net->batch * classes * sizeof(float));
    for (int i = 0; i < net->batch; ++i) net->truth[i * classes + rand() % classes] = 1;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    train_plugin_hooks(&darknet_plugin);
    tat_blas_select(argv); /* the kernels darknet itself would run */
    static const char *modes[] = {"step", "step-unfolded", "student", "teacher", "teacher-unfolded"};
    int known = 0;
    for (int i = 0; argc == 8 && i < 5; ++i) known |= !strcmp(argv[1], modes[i]);
    if (!known) {
        fprintf(stderr, "usage: %s step|step-unfolded|student|teacher|teacher-unfolded <cfg> <teacher.cfg|-> "
                        "<teacher.weights|-> <student.weights|-> <batch> <steps>\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1];
    int forward_only = !strncmp(mode, "teacher", 7);
    batch = atoi(argv[6]);
    int steps = atoi(argv[7]);
    if (batch < 1 || steps < 1) {
        fprintf(stderr, "%s: batch and steps must be positive\n", argv[0]);
        return 2;
    }
    srand(1);
    double base = vm_rss_mib();
    network *net, *teacher = 0;
    if (forward_only) {
        net = load(argv[2], argv[4], 0);
        if (!strcmp(mode, "teacher")) train_teacher_for_inference(net);
    } else {
        if (strcmp(argv[3], "-")) {
            teacher = load(argv[3], argv[4], 0);
            if (!strcmp(mode, "step")) train_teacher_for_inference(teacher);
        }
        net = load(argv[2], argv[5], teacher);
    }
    double *t = calloc(steps, sizeof(double)), resident = 0;
    for (int s = 0; s <= steps; ++s) { /* step 0 warms up */
        fill_batch(net);
        double t0 = now();
        if (forward_only) network_predict(net, net->input);
        else train_network_datum(net);
        if (s) t[s - 1] = now() - t0;
        else resident = vm_rss_mib() - base;
    }
    qsort(t, steps, sizeof(double), by_value);
    double median = steps % 2 ? t[steps / 2] : (t[steps / 2 - 1] + t[steps / 2]) / 2;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("distill %s %d %.2f %.1f %.1f\n", mode, batch, 1e3 * median, ru.ru_maxrss / 1024.0, resident);
    return 0;
}
