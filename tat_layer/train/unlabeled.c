/* Unlabelled images in the distillation loops' batches (unlabeled.h). */
#include "unlabeled.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "data.h"
#include "image.h"
#include "input_checks.h"
#include "option_list.h"
#include "seg_data.h"
#include "softmax_layer.h"
#include "tat_fail.h"

/* Darknet's data.c defines these without declaring them in a header */
char **get_random_paths(char **paths, int n, int m);
data load_data_seg(int n, char **paths, int m, int w, int h, int classes, int min, int max, float angle,
                   float aspect, float hue, float saturation, float exposure, int div);

void train_unlabeled_read(list *options, const char *datacfg, int read_paths, train_unlabeled *u)
{
    char *fraction = option_find(options, "unlabeled_fraction"), *end;
    memset(u, 0, sizeof(*u));
    u->list = option_find(options, "unlabeled");
    if (!u->list) {
        if (fraction)
            tat_fail("%s: unlabeled_fraction=%s without unlabeled=: no list of unlabelled images to draw from",
                     datacfg, fraction);
        return;
    }
    if (!*u->list) tat_fail("%s: unlabeled=: empty; give a list of image paths", datacfg);
    train_need_field_file(options, datacfg, "unlabeled", 0);
    u->fraction = 0.5f;
    if (fraction) {
        double f;
        errno = 0;
        f = strtod(fraction, &end);
        if (end == fraction || *end || errno || !(f > 0 && f <= 1))
            tat_fail("%s: unlabeled_fraction=%s: must be a number in (0, 1], the share of each mini-batch drawn from unlabeled=",
                     datacfg, fraction);
        u->fraction = (float)f;
    }
    if (train_count_lines(u->list) == 0)
        tat_fail("%s: unlabeled=%s: the list has no entries", datacfg, u->list);
    if (read_paths) {
        list *plist = get_paths(u->list);
        u->m = plist->size;
        u->paths = (char **)list_to_array(plist);
        free_list(plist);
    }
}

void train_unlabeled_refuse(list *options, const char *datacfg, const char *loop)
{
    char *field = option_find(options, "unlabeled") ? "unlabeled" : "unlabeled_fraction";
    if (!option_find(options, field)) return;
    tat_fail("%s: %s=%s: plain `%s train` trains on labels only; images without labels feed the distillation terms of `distill %s train`",
             datacfg, field, option_find(options, field), loop, loop);
}

void train_unlabeled_free(train_unlabeled *u)
{
    int i;
    for (i = 0; i < u->m; ++i) free(u->paths[i]);
    free(u->paths);
    memset(u, 0, sizeof(*u));
}

int train_unlabeled_count(int n, float fraction)
{
    int k = (int)floorf(fraction * n + 0.5f);
    return k < 0 ? 0 : k > n ? n : k;
}

/* The segmenter's augmentation of Darknet's load_data_seg, for images that have no mask. */
static matrix load_seg_images(char **paths, int n, load_args a)
{
    matrix X;
    int i;
    X.rows = n;
    X.cols = a.h * a.w * 3;
    X.vals = tat_calloc(n ? n : 1, sizeof(float *));
    for (i = 0; i < n; ++i) {
        image orig = load_image_color(paths[i], 0, 0);
        augment_args g = random_augment_args(orig, a.angle, a.aspect, a.min, a.max, a.w, a.h);
        image sized = rotate_crop_image(orig, g.rad, g.scale, g.w, g.h, g.dx, g.dy, g.aspect);
        if (rand() % 2) flip_image(sized);
        random_distort_image(sized, a.hue, a.saturation, a.exposure);
        X.vals[i] = sized.data;
        free_image(orig);
    }
    return X;
}

static data load_labelled(load_args a, int n, const char *masks, const char *mask_ext)
{
    if (a.type == CLASSIFICATION_DATA)
        return load_data_augment(a.paths, n, a.m, a.labels, a.classes, a.hierarchy, a.min, a.max,
                                 a.size, a.angle, a.aspect, a.hue, a.saturation, a.exposure, a.center);
    a.n = n;
    if (masks) return train_load_seg_masks(a, masks, mask_ext);
    return load_data_seg(n, a.paths, a.m, a.w, a.h, a.classes, a.min, a.max, a.angle, a.aspect,
                         a.hue, a.saturation, a.exposure, a.scale);
}

data train_load_with_unlabeled(load_args a, int batch, const train_unlabeled *u, const char *masks,
                               const char *mask_ext)
{
    int div = a.scale > 0 ? a.scale : 1;
    int y_cols = a.type == CLASSIFICATION_DATA ? a.classes : (a.w / div) * (a.h / div) * a.classes;
    int k = train_unlabeled_count(batch, u->fraction), start, i;
    data d = {0};
    if (a.n % batch)
        tat_fail("a load of %d images is not whole mini-batches of %d (unlabeled=)", a.n, batch);
    d.shallow = 0;
    d.X.rows = d.y.rows = a.n;
    d.X.cols = a.type == CLASSIFICATION_DATA ? a.size * a.size * 3 : a.h * a.w * 3;
    d.y.cols = y_cols;
    d.X.vals = tat_calloc(a.n, sizeof(float *));
    d.y.vals = tat_calloc(a.n, sizeof(float *));
    for (start = 0; start < a.n; start += batch) {
        if (k < batch) {
            data part = load_labelled(a, batch - k, masks, mask_ext);
            for (i = 0; i < batch - k; ++i) {
                d.X.vals[start + i] = part.X.vals[i];
                d.y.vals[start + i] = part.y.vals[i];
            }
            if (part.X.cols != d.X.cols || part.y.cols != d.y.cols)
                tat_fail("unlabeled=: a labelled image row is %d x %d values, expected %d x %d",
                         part.X.cols, part.y.cols, d.X.cols, d.y.cols);
            free(part.X.vals);
            free(part.y.vals);
        }
        if (k > 0) {
            char **paths = get_random_paths(u->paths, k, u->m);
            matrix X = a.type == CLASSIFICATION_DATA
                           ? load_image_augment_paths(paths, k, a.min, a.max, a.size, a.angle, a.aspect,
                                                      a.hue, a.saturation, a.exposure, a.center)
                           : load_seg_images(paths, k, a);
            for (i = 0; i < k; ++i) {
                d.X.vals[start + batch - k + i] = X.vals[i];
                /* no label: an all-zero truth, which the task loss leaves out */
                d.y.vals[start + batch - k + i] = tat_calloc(y_cols, sizeof(float));
            }
            free(X.vals);
            free(paths);
        }
    }
    d.w = a.type == CLASSIFICATION_DATA ? a.size : a.w;
    d.h = a.type == CLASSIFICATION_DATA ? a.size : a.h;
    return d;
}

/* ---- the task loss ------------------------------------------------------------------------- */
static void (*softmax_forward)(layer, network);
#ifdef GPU
static void (*softmax_forward_gpu)(layer, network);
#endif

/* Darknet's softmax, then a row of all-zero truth leaves the loss and the delta: the ignore
   rule of the spatial softmax with the whole row as one position of l.inputs channels. */
static void forward_softmax_masking_unlabeled(layer l, network net)
{
    softmax_forward(l, net);
    if (net.truth && !l.noloss) {
        softmax_ignore_unlabeled_cpu(l.batch, l.inputs, 1, net.truth, l.delta, l.loss);
        l.cost[0] = sum_array(l.loss, l.batch * l.inputs);
    }
}

#ifdef GPU
static void forward_softmax_masking_unlabeled_gpu(layer l, network net)
{
    softmax_forward_gpu(l, net);
    /* the loss of an all-zero truth row is already zero; its delta is cleared here */
    if (net.truth && !l.noloss) softmax_ignore_unlabeled_gpu(l.batch, l.inputs, 1, net.truth_gpu, l.delta_gpu, l.loss_gpu);
}
#endif

void train_unlabeled_mask_task_loss(network *net)
{
    int i;
    for (i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        if (l->type >= PLUGIN_LAYER) continue;
        if (l->type == SOFTMAX && !l->softmax_tree) {
            if (l->spatial) continue; /* already per pixel */
            softmax_forward = l->forward;
            l->forward = forward_softmax_masking_unlabeled;
#ifdef GPU
            softmax_forward_gpu = l->forward_gpu;
            l->forward_gpu = forward_softmax_masking_unlabeled_gpu;
#endif
        } else if (l->cost) {
            tat_fail("%s: [%s] (layer %d): unlabeled= needs the task loss of a [softmax] without tree=, which leaves images without labels out",
                     net->cfgfile ? net->cfgfile : "cfg", get_layer_string(l->type), i);
        }
    }
}
