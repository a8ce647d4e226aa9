/* `./darknet distill check <data> [cfg]`: every train and valid entry of a .data file read
   before a run (a bad image is otherwise found only when the loader draws it, possibly hours
   in): the image decodes; for classification exactly one label is found in its path (Darknet's
   substring rule); for segmentation (masks=) its mask exists, decodes, has the image's size and
   valid classes; for detection (no labels=, and names= given or a cfg whose last layer is
   [yolo]) its label file exists (Darknet's path rule) and every line holds five numbers, a class
   within classes and a box inside the image with a positive size. With a cfg, classes is
   checked against the network's outputs too. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "tat_fail.h"
#include "distill_commands.h"
#include "list.h"
#include "option_list.h"
#include "det_data.h"
#include "plugin.h"
#include "seg_data.h"
#include "unlabeled.h"

#define PROBLEMS_SHOWN 20 /* problem lines printed; the rest are counted */
#define PROGRESS_EVERY 1000

static int problems;

static void problem(const char *fmt, ...)
{
    va_list ap;
    if (problems++ >= PROBLEMS_SHOWN) return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

typedef struct {
    int classes;
    char **labels; /* classification: `classes` labels */
    char *masks;   /* segmentation: the mask path rule, else NULL */
    char *mask_ext;
    int detection; /* YOLO label files beside the images */
} data_rules;

/* Every line of an image's label file: five numbers, a class within classes, a box inside the
   image (relative coordinates, a rounding margin allowed) with a positive size. */
static void check_detection_labels(const char *image, const char *list_file, int classes)
{
    char path[4096], line[1024];
    FILE *fp;
    int row = 0;
    if (!train_detection_label_path(image, path, sizeof(path))) {
        problem("%s: the path is too long for Darknet's label path rule (listed in %s)", image, list_file);
        return;
    }
    fp = fopen(path, "r");
    if (!fp) {
        problem("%s: no label file for %s (listed in %s; Darknet's rule: images -> labels, extension -> .txt)",
                path, image, list_file);
        return;
    }
    while (fgets(line, sizeof(line), fp)) {
        const float margin = 1e-4f;
        float x, y, w, h;
        char id[64], extra;
        char *end;
        long cls;
        ++row;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        if (sscanf(line, "%63s %f %f %f %f %c", id, &x, &y, &w, &h, &extra) != 5) {
            problem("%s: line %d: not five numbers `class x_center y_center width height`", path, row);
            continue;
        }
        cls = strtol(id, &end, 10);
        if (*end || cls < 0 || cls >= classes) {
            problem("%s: line %d: class %s: must be an integer 0..%d (classes=%d)", path, row, id, classes - 1, classes);
            continue;
        }
        if (!(w > 0) || !(h > 0)) {
            problem("%s: line %d: box size %g x %g: width and height must be > 0", path, row, w, h);
            continue;
        }
        if (!(x - w / 2 >= -margin && x + w / 2 <= 1 + margin && y - h / 2 >= -margin && y + h / 2 <= 1 + margin))
            problem("%s: line %d: box %g %g %g %g reaches outside the image (relative coordinates 0..1)",
                    path, row, x, y, w, h);
    }
    fclose(fp);
}

/* labelled: 0 for unlabeled= (an image that loads is all it needs) */
static void check_entry(const char *path, const char *list_file, int line, const data_rules *r,
                        int labelled)
{
    int w, h, c, i, found = 0;
    unsigned char *pixels;
    if (!path[strspn(path, " \t")]) {
        problem("%s:%d: an empty line, not an image path", list_file, line);
        return;
    }
    pixels = stbi_load(path, &w, &h, &c, 0);
    if (!pixels) {
        problem("%s: cannot load image (%s), line %d of %s", path, stbi_failure_reason(), line, list_file);
        return;
    }
    stbi_image_free(pixels);
    if (!labelled) return;
    if (r->detection) {
        check_detection_labels(path, list_file, r->classes);
        return;
    }
    if (r->masks) {
        char err[5000];
        uint8_t *mask = train_seg_load_mask(path, r->masks, r->mask_ext, w, h, r->classes, err, sizeof(err));
        if (!mask) problem("%s (line %d of %s)", err, line, list_file);
        free(mask);
        return;
    }
    for (i = 0; i < r->classes; ++i) found += strstr(path, r->labels[i]) != 0;
    if (found != 1)
        problem("%s: %d labels found in the path (line %d of %s): each path must contain exactly one of the %d labels",
                path, found, line, list_file, r->classes);
}

/* Returns the number of entries checked. */
static int check_list(list *options, const char *datacfg, const char *field, const data_rules *r)
{
    char *list_file = train_need_field_file(options, datacfg, field, 0);
    list *plist;
    char **paths;
    int i, n;
    if (!list_file) return 0;
    plist = get_paths(list_file);
    paths = (char **)list_to_array(plist);
    n = plist->size;
    if (n == 0) problem("%s: no entries (%s= in %s)", list_file, field, datacfg);
    for (i = 0; i < n; ++i) {
        check_entry(paths[i], list_file, i + 1, r, strcmp(field, "unlabeled") != 0);
        if ((i + 1) % PROGRESS_EVERY == 0 || i + 1 == n)
            fprintf(stderr, "check: %s %d/%d entries, %d problems so far\n", field, i + 1, n, problems);
    }
    free_ptrs((void **)paths, n);
    free_list(plist);
    return n;
}

/* train_parse_network_hook: the outputs per image do not depend on the batch; a cfg's training batch
   could take gigabytes */
static void batch_of_one(network *net) { net->batch = 1; }

static void check_against_network(const char *cfgfile, const char *datacfg, const data_rules *r)
{
    network *net;
    int per_image;
    train_need_readable(cfgfile, "the cfg");
    train_parse_network_hook = batch_of_one;
    net = parse_network_cfg((char *)cfgfile);
    train_parse_network_hook = 0;
    if (r->detection) {
        const layer *last = &net->layers[net->n - 1];
        if (last->type != YOLO || last->classes != r->classes)
            problem("%s: classes=%d, but %s %s", datacfg, r->classes, cfgfile,
                    last->type == YOLO ? "has [yolo] layers of other classes" : "does not end in a [yolo] layer");
        free_network(net);
        return;
    }
    if (r->masks) {
        image out = get_network_image(net); /* the last layer with a spatial size */
        per_image = out.w * out.h * r->classes;
    } else {
        per_image = r->classes;
    }
    if (net->outputs != per_image)
        problem("%s: classes=%d, but %s outputs %d values per image (%s expects %d)", datacfg,
                r->classes, cfgfile, net->outputs, r->masks ? "a mask" : "a label", per_image);
    free_network(net);
}

static int cfg_ends_in_yolo(const char *cfgfile)
{
    network *net;
    int yolo;
    train_need_readable(cfgfile, "the cfg");
    train_parse_network_hook = batch_of_one;
    net = parse_network_cfg((char *)cfgfile);
    train_parse_network_hook = 0;
    yolo = net->layers[net->n - 1].type == YOLO;
    free_network(net);
    return yolo;
}

void cmd_check(int argc, char **argv)
{
    list *options;
    data_rules r = {0};
    int n_train, n_valid, n_unlabeled;
    train_unlabeled unlabeled;
    char *labels_file = 0;
    if (argc < 4 || argc > 5) cmd_usage(argv[0], "check");
    train_check_data_file(argv[3]);
    options = read_data_cfg(argv[3]);
    r.masks = option_find(options, "masks");
    r.mask_ext = option_find(options, "mask_ext");
    if (!r.mask_ext) r.mask_ext = ".png";
    r.classes = option_find_int_quiet(options, "classes", r.masks ? 80 : 2);
    if (r.classes < 1 || (r.masks && r.classes > 255)) {
        tat_fail("%s: classes=%d: must be 1..%d", argv[3], r.classes, r.masks ? 255 : 1 << 30);
    }
    r.detection = !r.masks && !option_find(options, "labels") &&
                  (option_find(options, "names") || (argc == 5 && cfg_ends_in_yolo(argv[4])));
    if (!r.masks && !r.detection) {
        int n_labels;
        labels_file = train_need_field_file(options, argv[3], "labels", "data/labels.list");
        n_labels = train_count_lines(labels_file);
        if (n_labels != r.classes) {
            tat_fail("%s: %d labels (lines), but classes=%d in %s", labels_file, n_labels,
                    r.classes, argv[3]);
        }
        r.labels = get_labels(labels_file);
    }
    if (!option_find(options, "train") && !option_find(options, "valid")) {
        tat_fail("%s: neither train= nor valid=: nothing to check", argv[3]);
    }
    if (argc == 5) check_against_network(argv[4], argv[3], &r);
    n_train = check_list(options, argv[3], "train", &r);
    n_valid = check_list(options, argv[3], "valid", &r);
    /* unlabeled= and unlabeled_fraction= as the distill loops read them, then every image */
    train_unlabeled_read(options, argv[3], 0, &unlabeled);
    n_unlabeled = check_list(options, argv[3], "unlabeled", &r);
    if (problems > PROBLEMS_SHOWN)
        fprintf(stderr, "... and %d more (only the first %d problems are shown; every entry was checked)\n",
                problems - PROBLEMS_SHOWN, PROBLEMS_SHOWN);
    const char *checked = r.masks ? "images and masks" : r.detection ? "images and box labels" : "images and labels";
    if (unlabeled.list)
        printf("%s: %d train and %d valid entries checked (%s), %d unlabeled images (fraction %g): %d problems\n",
               argv[3], n_train, n_valid, checked, n_unlabeled, unlabeled.fraction, problems);
    else
        printf("%s: %d train and %d valid entries checked (%s): %d problems\n", argv[3], n_train, n_valid, checked,
               problems);
    if (r.labels) free_ptrs((void **)r.labels, r.classes);
    train_free_data_options(options);
    exit(problems ? 1 : 0);
}
