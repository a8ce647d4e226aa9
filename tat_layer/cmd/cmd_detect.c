/* `./darknet distill detector map|...`: detection AP of a network on the valid= list (the
   metrics are core/det_metrics.c), and Darknet's own detector commands for the rest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "det_data.h"
#include "det_metrics.h"
#include "distill_commands.h"
#include "list.h"
#include "option_list.h"
#include "parser.h"
#include "tat_fail.h"

typedef struct {
    tat_det_box *boxes;
    int n, cap;
} box_set;

static void add_box(box_set *s, tat_det_box b)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 256;
        s->boxes = tat_realloc(s->boxes, s->cap, sizeof(tat_det_box));
    }
    s->boxes[s->n++] = b;
}

/* the ground truth of image i from its label file; every malformed line is refused by name */
static void read_truth(const char *image, int i, int classes, box_set *truth)
{
    char path[4096], line[1024];
    FILE *fp;
    int row = 0;
    if (!train_detection_label_path(image, path, sizeof(path)))
        tat_fail("%s: the path is too long for Darknet's label path rule", image);
    fp = fopen(path, "r");
    if (!fp) tat_fail("%s: cannot open the label file of %s (distill check <data> lists every problem)", path, image);
    while (fgets(line, sizeof(line), fp)) {
        int id;
        float x, y, w, h;
        char extra;
        ++row;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        if (sscanf(line, "%d %f %f %f %f %c", &id, &x, &y, &w, &h, &extra) != 5 || id < 0 || id >= classes)
            tat_fail("%s: line %d: not `class x y w h` with a class 0..%d (distill check <data> lists every problem)",
                     path, row, classes - 1);
        {
            tat_det_box b = {i, id, 0, x - w / 2, y - h / 2, x + w / 2, y + h / 2};
            add_box(truth, b);
        }
    }
    fclose(fp);
}

static void to_gray(image *im)
{
    int i, plane = im->w * im->h;
    for (i = 0; i < plane; ++i) im->data[i] = (im->data[i] + im->data[plane + i] + im->data[2 * plane + i]) / 3;
}

static void detector_map(int argc, char **argv)
{
    char *datacfg, *cfgfile, *weightfile, *valid, *names_file;
    float thresh = find_float_arg(argc, argv, "-thresh", .005f);
    float nms = find_float_arg(argc, argv, "-nms", .45f);
    list *options, *plist;
    char **paths, **names = 0;
    network *net;
    box_set dets = {0}, truth = {0};
    tat_det_class_metrics *m;
    tat_det_summary s;
    int classes, i, j, k, n;
    if (argc < 7 || !argv[6] || argv[6][0] == '-') cmd_usage(argv[0], "detector");
    datacfg = argv[4], cfgfile = argv[5], weightfile = argv[6];
    for (i = 7; i < argc && argv[i]; ++i)
        tat_fail("distill detector map: unexpected argument %s", argv[i]);
    train_check_data_file(datacfg);
    train_need_readable(cfgfile, "the cfg");
    train_need_readable(weightfile, "the weights");
    options = read_data_cfg(datacfg);
    valid = train_need_field_file(options, datacfg, "valid", 0);
    if (!valid) tat_fail("%s: no valid= list: nothing to evaluate", datacfg);
    names_file = train_need_field_file(options, datacfg, "names", 0);
    net = load_network(cfgfile, weightfile, 0);
    set_batch_network(net, 1);
    if (net->layers[net->n - 1].type != YOLO)
        tat_fail("%s: the last layer is [%s], not [yolo]: not a YOLOv3 detector", cfgfile,
                 get_layer_string(net->layers[net->n - 1].type));
    classes = net->layers[net->n - 1].classes;
    if (option_find_int_quiet(options, "classes", classes) != classes)
        tat_fail("%s: classes=%d, but the [yolo] layers of %s have classes=%d", datacfg,
                 option_find_int_quiet(options, "classes", classes), cfgfile, classes);
    if (names_file) {
        if (train_count_lines(names_file) != classes)
            tat_fail("%s: %d names (lines), but %s has %d classes", names_file, train_count_lines(names_file),
                     cfgfile, classes);
        names = get_labels(names_file);
    }
    plist = get_paths(valid);
    paths = (char **)list_to_array(plist);
    n = plist->size;
    if (!n) tat_fail("%s: the valid list (valid= in %s) is empty", valid, datacfg);
    for (i = 0; i < n; ++i) {
        image im = load_image_color(paths[i], 0, 0);
        image sized = letterbox_image(im, net->w, net->h);
        int nboxes = 0;
        detection *d;
        read_truth(paths[i], i, classes, &truth);
        if (net->c == 1) to_gray(&sized);
        network_predict(net, sized.data);
        d = get_network_boxes(net, im.w, im.h, thresh, .5, 0, 1, &nboxes);
        if (nms > 0) do_nms_sort(d, nboxes, classes, nms);
        for (j = 0; j < nboxes; ++j)
            for (k = 0; k < classes; ++k) {
                box b = d[j].bbox;
                tat_det_box t = {i, k, d[j].prob[k], b.x - b.w / 2, b.y - b.h / 2, b.x + b.w / 2, b.y + b.h / 2};
                if (d[j].prob[k] > 0) add_box(&dets, t);
            }
        free_detections(d, nboxes);
        free_image(im);
        free_image(sized);
    }
    m = tat_calloc(classes, sizeof(*m));
    s = tat_det_evaluate(dets.boxes, dets.n, truth.boxes, truth.n, classes, m);
    printf("%s: %d images, %d ground-truth boxes, %d detections (score > %g, NMS %g)\n", valid, n,
           truth.n, dets.n, thresh, nms);
    printf("%-5s %-16s %8s %10s %8s %12s %10s\n", "class", "name", "truth", "detections", "AP@0.5",
           "AP@0.5:0.95", "recall@0.5");
    for (k = 0; k < classes; ++k) {
        if (m[k].ap50 < 0)
            printf("%-5d %-16.16s %8d %10d %8s %12s %10s\n", k, names ? names[k] : "", m[k].ground_truth,
                   m[k].detections, "-", "-", "-");
        else
            printf("%-5d %-16.16s %8d %10d %8.4f %12.4f %10.4f\n", k, names ? names[k] : "",
                   m[k].ground_truth, m[k].detections, m[k].ap50, m[k].ap50_95, m[k].recall50);
    }
    if (!s.classes_with_truth) tat_fail("%s: no ground-truth box in any label file: no AP", valid);
    printf("mAP@0.5 %.4f\nmAP@0.5:0.95 %.4f\nrecall@0.5 %.4f\n", s.map50, s.map50_95, s.recall50);
    if (names) free_ptrs((void **)names, classes);
    free_ptrs((void **)paths, n);
    free_list(plist);
    free(m);
    free(dets.boxes);
    free(truth.boxes);
    free_network(net);
    train_free_data_options(options);
}

void cmd_detector(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[3], "map")) {
        detector_map(argc, argv);
    } else if (argc >= 6) {
        /* Darknet's detector verbs: the sections are inert without a teacher */
        train_check_data_field_files(argv[4]);
        run_detector(argc - 1, argv + 1);
    } else {
        cmd_usage(argv[0], "detector");
    }
}
