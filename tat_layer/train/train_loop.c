/* What the plugin adds to Darknet's training loops: when they stop (a non-finite task loss,
   SIGINT / SIGTERM), and grayscale images for networks with one channel. */
#include "train_loop.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "distill_common.h"
#include "distill_mpi.h"
#include "distill_plugin.h"
#include "input_checks.h"
#include "network.h"
#include "option_list.h"

static volatile sig_atomic_t stop_signal;

static void ask_for_stop(int sig)
{
    static const char note[] = "\nstopping after this iteration (the same signal again kills at once)\n";
    stop_signal = sig;
    /* write(), unlike stdio, may be called here; its result cannot be acted upon */
    if (write(2, note, sizeof(note) - 1) < 0) {}
}

void train_stop_on_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ask_for_stop;
    sigemptyset(&sa.sa_mask);
    /* restart interrupted reads (the loader's); the next signal gets the default action */
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    /* also when inherited as ignored (a script's background job): a stop that saves is
       what a training run should do with either signal */
    sigaction(SIGINT, &sa, 0);
    sigaction(SIGTERM, &sa, 0);
}

int train_stop_requested(void) { return stop_signal; }

static int all_finite(const float *a, size_t n)
{
    size_t i;
    if (!a) return 1;
    for (i = 0; i < n; ++i)
        if (!distill_finite(a[i])) return 0;
    return 1;
}

/* Divergence can leave the loss finite (a softmax over infinite logits reports the clamped
   log): the learned parameters of Darknet's convolutional, connected and batchnorm layers are
   checked too. On a GPU they live on the device and are checked when saved (commit_saved, train/plugin.c). */
static void stop_if_weights_not_finite(const network *net)
{
    int i;
#ifdef GPU
    if (gpu_index >= 0) return;
#endif
    for (i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        size_t nw = 0, nb = 0;
        if (l->type == CONVOLUTIONAL || l->type == DECONVOLUTIONAL) {
            nw = l->nweights;
            nb = l->n;
        } else if (l->type == CONNECTED) {
            nw = (size_t)l->inputs * l->outputs;
            nb = l->outputs;
        } else if (l->type == BATCHNORM) {
            nb = l->c;
        } else {
            continue;
        }
        if (all_finite(l->weights, nw) && all_finite(l->biases, nb) && all_finite(l->scales, nb)) continue;
        tat_fail("%s: [%s] (layer %d): weights hold NaN or Inf at iteration %zu (training diverged); stopping, last backup kept",
                net->cfgfile ? net->cfgfile : "cfg", get_layer_string(l->type), i, get_current_batch((network *)net));
    }
}

void train_stop_check(network *net, const char *backup_directory, const char *base)
{
    size_t size;
    char *path;
    int i, sig;
    /* the distillation terms are checked in their own forward, before the update */
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (!distill_is_layer(l) && l->cost)
            distill_stop_if_not_finite(net, get_layer_string(l->type), i, *l->cost);
    }
    stop_if_weights_not_finite(net);
    /* distributed: the stop every rank agreed on in this iteration's reduction, so that all
       stop at the same iteration, rank 0 saves and says so once */
    sig = train_mpi_agreed_stop(stop_signal);
    if (!sig) return;
    size = strlen(backup_directory) + strlen(base) + sizeof("/.backup");
    path = tat_calloc(size, 1);
    snprintf(path, size, "%s/%s.backup", backup_directory, base);
    fflush(stdout);
    save_weights(net, path);
    if (train_mpi_writes_files())
        fprintf(stderr, "%s at iteration %zu: saved %s; to resume, run the same command with it as the weights file\n",
                sig == SIGINT ? "SIGINT" : "SIGTERM", get_current_batch(net), path);
    free(path);
    exit(0);
}

int train_loader_channels(const network *net)
{
    if (net->c != 1 && net->c != 3) {
        tat_fail("%s: [net] channels=%d: the loaders deliver 1 (grayscale) or 3 channels",
                net->cfgfile ? net->cfgfile : "cfg", net->c);
    }
    return net->c;
}

void train_images_to_gray(matrix *X)
{
    int i, j, plane = X->cols / 3;
    for (i = 0; i < X->rows; ++i) {
        float *rgb = X->vals[i], *gray = tat_calloc(plane, sizeof(float));
        for (j = 0; j < plane; ++j) gray[j] = (rgb[j] + rgb[plane + j] + rgb[2 * plane + j]) / 3;
        free(rgb);
        X->vals[i] = gray;
    }
    X->cols = plane;
}

void train_check_no_blank_paths(char **paths, int n, const char *list_name)
{
    int i;
    for (i = 0; i < n; ++i)
        if (!paths[i][strspn(paths[i], " \t")])
            tat_fail("%s:%d: an empty line, not an image path: remove it", list_name, i + 1);
}

void train_check_labels(char **paths, int n, char **labels, int k, const char *list_name)
{
    int i, j;
    for (i = 0; i < n; ++i) {
        int count = 0, first = -1, second = -1;
        for (j = 0; j < k; ++j)
            if (strstr(paths[i], labels[j])) {
                if (count == 0) first = j; else if (count == 1) second = j;
                ++count;
            }
        if (count == 1) continue;
        if (count == 0)
            tat_fail("%s: no label occurs in this path (line %d of %s): Darknet takes the class from the label found in the image's path",
                     paths[i], i + 1, list_name);
        tat_fail("%s: %d labels occur in this path (line %d of %s), e.g. '%s' and '%s': the class must be the one label found in the image's path",
                    paths[i], count, i + 1, list_name, labels[first], labels[second]);
    }
}

void train_check_segmentation_map(const network *net, int out_w, int out_h)
{
    if (out_w > 1 || out_h > 1) return;
    tat_fail("%s: the network's output is a %d x %d map (a classifier cfg?): the segmenter trains on per-pixel masks",
            net->cfgfile ? net->cfgfile : "cfg", out_w, out_h);
}

void train_check_detector(const network *net, const char *datacfg)
{
    const char *cfg = net->cfgfile ? net->cfgfile : "cfg";
    const layer *last = &net->layers[net->n - 1];
    list *options;
    int i, classes;
    if (last->type != YOLO) {
        tat_fail("%s: the last layer is [%s]: Darknet's detector loop reads its classes, boxes and jitter from a last [yolo] layer",
                 cfg, get_layer_string(last->type));
    }
    for (i = 0; i < net->n; ++i) {
        const layer *l = &net->layers[i];
        if (l->type == YOLO && l->random && net->teacher) {
            tat_fail("%s: [yolo] (layer %d) random=1: resizing the network during training is not supported with a teacher attached; set random=0",
                     cfg, i);
        }
        /* the loader writes max_boxes boxes per image for the last [yolo] (args.num_boxes)
           and each [yolo] reads them at the stride of its own max= (patch 0034) */
        if (l->type == YOLO && l->max_boxes < 1) {
            tat_fail("%s: [yolo] (layer %d) max=%d: the boxes kept per image must be at least 1", cfg, i, l->max_boxes);
        }
        if (l->type == YOLO && l->max_boxes != last->max_boxes) {
            tat_fail("%s: [yolo] (layer %d) max=%d, but the last [yolo] has max=%d: Darknet's loader lays out the last one's count of boxes per image, which every [yolo] reads",
                     cfg, i, l->max_boxes, last->max_boxes);
        }
        if (l->type == YOLO && l->classes != last->classes) {
            tat_fail("%s: [yolo] (layer %d) classes=%d, but the last [yolo] has classes=%d", cfg, i,
                     l->classes, last->classes);
        }
    }
    options = read_data_cfg((char *)datacfg);
    classes = option_find_int_quiet(options, "classes", last->classes);
    train_free_data_options(options);
    if (classes != last->classes) {
        tat_fail("%s: classes=%d, but the [yolo] layers of %s have classes=%d", datacfg, classes, cfg,
                 last->classes);
    }
}
