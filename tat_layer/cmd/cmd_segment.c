/* `./darknet distill segmenter valid|test|demo ...`: evaluation of segmentation networks with
   PNG class-index masks (training is `distill segmenter train`, in cmd_distill.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "darknet.h"
#include "distill_commands.h"
#include "distill_common.h"
#include "input_checks.h"
#include "option_list.h"
#include "seg_data.h"
#include "seg_metrics.h"
#include "train_loop.h"

/* A fixed colour per class (Pascal VOC's bit-interleaved palette: class 0 black). */
static void class_colour(int c, unsigned char rgb[3])
{
    int r = 0, g = 0, b = 0, bit;
    for (bit = 7; bit >= 0 && c; --bit, c >>= 3) {
        r |= (c & 1) << bit;
        g |= ((c >> 1) & 1) << bit;
        b |= ((c >> 2) & 1) << bit;
    }
    rgb[0] = (unsigned char)r;
    rgb[1] = (unsigned char)g;
    rgb[2] = (unsigned char)b;
}

/* <dir>/<image base name>.png, in a buffer the caller frees. */
static char *prediction_path(const char *dir, const char *image_path)
{
    const char *base = strrchr(image_path, '/');
    size_t len, size, dir_len = strlen(dir);
    char *name;
    while (dir_len > 1 && dir[dir_len - 1] == '/') --dir_len; /* -out pred/ */
    base = base ? base + 1 : image_path;
    len = strcspn(base, ".");
    size = dir_len + len + 6;
    name = tat_calloc(size, 1);
    snprintf(name, size, "%.*s/%.*s.png", (int)dir_len, dir, (int)len, base);
    return name;
}

/* Adds path to the inputs unless an equal string is there already (the folders of thousands
   of images are usually a few). */
static void add_input(train_input **inputs, int *n, int *cap, char *path, const char *what)
{
    int i;
    for (i = 0; i < *n; ++i)
        if (!strcmp((*inputs)[i].path, path)) {
            free(path);
            return;
        }
    if (*n == *cap) *inputs = tat_realloc(*inputs, *cap = 2 * *cap + 8, sizeof(train_input));
    (*inputs)[*n].path = path;
    (*inputs)[(*n)++].what = what;
}

/* Before anything is written: no prediction may land on the data (the image and mask folders,
   the files the .data names, the cfg and the weights) or replace a file already in -out. */
static void check_prediction_paths(const char *outdir, char **paths, int n, const char *train_list,
                                   const char *masks, const char *ext, char *const *read_files,
                                   const char *const *read_what, int n_read)
{
    train_input *inputs = 0;
    int n_inputs = 0, cap = 0, i, pass;
    char mask[4096], err[5000];
    for (i = 0; i < n_read; ++i)
        if (read_files[i]) add_input(&inputs, &n_inputs, &cap, tat_strdup(read_files[i]), read_what[i]);
    /* the valid images and, when the list can be read, the train images: the folders of
       both and of their masks */
    for (pass = 0; pass < 2; ++pass) {
        list *train = 0;
        char **p = paths;
        int count = n;
        if (pass == 1) {
            FILE *fp = train_list ? fopen(train_list, "r") : 0;
            if (!fp) break;
            fclose(fp);
            train = get_paths((char *)train_list);
            count = train->size;
            p = (char **)list_to_array(train);
        }
        for (i = 0; i < count; ++i) {
            add_input(&inputs, &n_inputs, &cap, train_dir_of(p[i]), "the folder of the images");
            if (!train_seg_mask_path(p[i], masks, ext, mask, sizeof(mask), err, sizeof(err)))
                add_input(&inputs, &n_inputs, &cap, train_dir_of(mask), "the folder of the masks");
        }
        if (train) {
            free_ptrs((void **)p, count);
            free_list(train);
        }
    }
    for (i = 0; i < n; ++i) {
        char *out = prediction_path(outdir, paths[i]);
        train_refuse_output(out, "the coloured prediction", inputs, n_inputs, 0,
                            "distill segmenter valid -out");
        free(out);
    }
    for (i = 0; i < n_inputs; ++i) free((char *)inputs[i].path);
    free(inputs);
}

/* Written with stb directly (Darknet's save_image formats the name into 256 bytes). */
static void save_colourised(const uint8_t *pred, int w, int h, const char *dir, const char *path)
{
    char *name = prediction_path(dir, path);
    unsigned char *rgb = tat_calloc((size_t)w * h * 3, 1);
    int i;
    for (i = 0; i < w * h; ++i) class_colour(pred[i], rgb + 3 * i);
    if (!stbi_write_png(name, w, h, 3, rgb, w * 3)) {
        tat_fail("%s: cannot write the coloured prediction of %s (-out %s)", name, path, dir);
    }
    free(name);
    free(rgb);
}

static void valid_segmenter(char *datacfg, char *cfgfile, char *weightfile, char *outdir)
{
    list *options;
    train_check_data_field_files(datacfg);
    options = read_data_cfg(datacfg);
    int classes = option_find_int_quiet(options, "classes", 80);
    char *valid_list = option_find_str(options, "valid", 0);
    char *masks = option_find_str(options, "masks", 0);
    char *ext = masks ? option_find_str(options, "mask_ext", ".png") : 0;
    char *names_file = option_find_str(options, "names", 0);
    char **names = 0;
    list *plist;
    char **paths;
    network *net;
    image out;
    int64_t *conf;
    double *iou, miou;
    uint8_t *small, *full = 0;
    int n, i, c, ow, oh, present = 0;
    size_t full_cap = 0;

    if (!valid_list) {
        tat_fail("%s: no valid= list to evaluate", datacfg);
    }
    if (!masks) {
        tat_fail("%s: no masks= rule: valid reads PNG class-index masks (see README, Segmentation)",
                datacfg);
    }
    if (classes < 1 || classes > 255) {
        tat_fail("%s: classes=%d: must be 1..255 (255 is the ignore label)", datacfg, classes);
    }
    if (names_file) {
        /* list_to_array is not NULL-terminated: take the count from the list */
        list *name_list = get_paths(names_file);
        int count = name_list->size;
        names = (char **)list_to_array(name_list);
        free_list(name_list);
        if (count < classes) {
            tat_fail("%s: %d names for %d classes", names_file, count, classes);
        }
    }
    plist = get_paths(valid_list);
    paths = (char **)list_to_array(plist);
    n = plist->size;
    if (n == 0) {
        tat_fail("%s: no images (the valid list of %s)", valid_list, datacfg);
    }
    train_check_no_blank_paths(paths, n, valid_list);
    net = load_network(cfgfile, weightfile, 0);
    set_batch_network(net, 1);
    out = get_network_image(net);
    ow = out.w;
    oh = out.h;
    if (net->outputs != ow * oh * classes) {
        tat_fail("%s: classes=%d, but %s outputs %d values per image (%d x %d x %d)",
                datacfg, classes, cfgfile, net->outputs, ow, oh, out.c);
    }
    if (outdir) {
        char *train_list = option_find_str(options, "train", 0);
        char *read_files[] = {datacfg, cfgfile, weightfile, valid_list, names_file, train_list};
        static const char *read_what[] = {"the data file", "the cfg", "the weights",
                                          "the valid list", "the names file", "the train list"};
        check_prediction_paths(outdir, paths, n, train_list, masks, ext, read_files, read_what, 6);
        if (mkdir(outdir, 0755) && errno != EEXIST) {
            tat_fail("distill segmenter valid -out %s: cannot create: %s", outdir, strerror(errno));
        }
        train_need_writable_dir(outdir, "distill segmenter valid -out");
    }
    conf = tat_calloc((size_t)classes * classes, sizeof(int64_t));
    iou = tat_calloc(classes, sizeof(double));
    small = tat_calloc((size_t)ow * oh, 1);
    for (i = 0; i < n; ++i) {
        image im = load_image_color(paths[i], 0, 0);
        uint8_t *mask = train_seg_load_mask_or_exit(paths[i], masks, ext, im.w, im.h, classes);
        image sized = resize_image(im, net->w, net->h);
        float *prob = network_predict(net, sized.data);
        int x, y, p;
        for (p = 0; p < ow * oh; ++p) {
            int best = 0;
            for (c = 1; c < classes; ++c)
                if (prob[c * ow * oh + p] > prob[best * ow * oh + p]) best = c;
            small[p] = (uint8_t)best;
        }
        /* scored at the mask's own resolution: the prediction is upsampled nearest-neighbour */
        if ((size_t)im.w * im.h > full_cap) {
            full_cap = (size_t)im.w * im.h;
            full = tat_realloc(full, full_cap, 1);
        }
        for (y = 0; y < im.h; ++y)
            for (x = 0; x < im.w; ++x)
                full[y * im.w + x] = small[(y * oh / im.h) * ow + x * ow / im.w];
        tat_seg_confusion_add(conf, classes, mask, full, (long)im.w * im.h);
        if (outdir) save_colourised(full, im.w, im.h, outdir, paths[i]);
        free(mask);
        free_image(im);
        free_image(sized);
        if ((i + 1) % 500 == 0) fprintf(stderr, "%d/%d images\n", i + 1, n);
    }
    miou = tat_seg_iou(conf, classes, iou);
    for (c = 0; c < classes; ++c) {
        char label[64];
        snprintf(label, sizeof(label), "%s", names ? names[c] : "");
        if (iou[c] < 0) printf("class %3d %-20s IoU    -  (not in truth or prediction)\n", c, label);
        else printf("class %3d %-20s IoU %.4f\n", c, label, iou[c]), ++present;
    }
    printf("mIoU %.4f over %d classes, pixel accuracy %.4f, %d images\n", miou, present,
           tat_seg_pixel_accuracy(conf, classes), n);
    free(conf);
    free(iou);
    free(small);
    free(full);
    free_network(net);
    free_ptrs((void **)paths, n);
    free_list(plist);
}

void cmd_segmenter(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[3], "valid")) {
        char *outdir = cmd_option_value(argc, argv, "-out", "distill segmenter valid");
        char *args[3];
        int i, nargs = 0;
        for (i = 4; i < argc && argv[i]; ++i) {
            if (argv[i][0] == '-') {
                tat_fail("distill segmenter valid: unknown option %s", argv[i]);
            }
            if (nargs == 3) {
                tat_fail("distill segmenter valid: unexpected argument %s", argv[i]);
            }
            args[nargs++] = argv[i];
        }
        if (nargs != 3) cmd_usage(argv[0], "segmenter");
        valid_segmenter(args[0], args[1], args[2], outdir);
    } else if (argc >= 6 && (!strcmp(argv[3], "test") || !strcmp(argv[3], "demo"))) {
        /* test and demo need no teacher: the distillation layers are inert without one */
        run_segmenter(argc - 1, argv + 1);
    } else {
        cmd_usage(argv[0], "segmenter");
    }
}
