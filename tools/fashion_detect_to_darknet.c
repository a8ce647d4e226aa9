/*
 * fashion_detect_to_darknet: a small deterministic object-detection set built from
 * Fashion-MNIST, in the layout Darknet's detector loop reads (YOLO label files).
 *
 *   fashion_detect_to_darknet <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S]
 *
 * Every sample is a CANVAS x CANVAS grayscale canvas holding 1 to 4 Fashion-MNIST items, each
 * scaled (bilinear) to a side of MIN_SIDE..MAX_SIDE pixels and pasted at a random position
 * where its box overlaps no earlier box by more than MAX_IOU (an item that finds no such place
 * in PLACEMENT_TRIES draws is left out; every canvas keeps at least its first). The box of an
 * item is the tight box of its pixels above INK, in Darknet's label format: one line
 * `class x_center y_center width height` relative to the canvas. Train canvases take items
 * from the official train split, valid canvases from the test split. Positions, sizes and
 * items come from a fixed-seed generator of our own (not rand()): the same set on every
 * machine.
 *
 * Input (in <dataset dir>, gzip-compressed or plain):
 *   train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
 *   t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz
 * Output (in <out dir>, default data/fashion-det):
 *   train/images/NNNNN.png, train/labels/NNNNN.txt, valid/images/..., valid/labels/...
 *   train.list, valid.list   image paths
 *   names.txt                the 10 class names
 *   fashion-det.data         classes=10, the lists, names and backup
 *   .complete                stamp written last; a rerun with the same arguments does nothing
 * It also creates backup/fashion-det/, the backup dir named in fashion-det.data.
 *
 * Build: gcc -O2 -o fashion_detect_to_darknet fashion_detect_to_darknet.c -lpng -lz -lm
 */
#include <math.h>
#include <stdint.h>

#define FASHION_IDX_PROG "fashion_detect_to_darknet"
#define FASHION_IDX_SHORT_ERRORS 1
#define FASHION_IDX_GZ_BUFFER 0
#include "fashion_idx.h"

#define NCLASSES 10
#define SIDE 28
#define CANVAS 64
#define MAX_ITEMS 4
#define MIN_SIDE 16
#define MAX_SIDE 40
#define INK 24
#define MAX_IOU 0.25
#define PLACEMENT_TRIES 20
#define BACKUP_DIR "backup/fashion-det/"

static const char *names[NCLASSES] = {"tshirt_top", "trouser", "pullover", "dress", "coat",
                                      "sandal", "shirt", "sneaker", "bag", "ankle_boot"};

typedef struct { int x1, y1, x2, y2; } pixel_box; /* x2, y2 exclusive */

static double box_iou(pixel_box a, pixel_box b)
{
    int w = (a.x2 < b.x2 ? a.x2 : b.x2) - (a.x1 > b.x1 ? a.x1 : b.x1);
    int h = (a.y2 < b.y2 ? a.y2 : b.y2) - (a.y1 > b.y1 ? a.y1 : b.y1);
    double inter, uni;
    if (w <= 0 || h <= 0) return 0;
    inter = (double)w * h;
    uni = (double)(a.x2 - a.x1) * (a.y2 - a.y1) + (double)(b.x2 - b.x1) * (b.y2 - b.y1) - inter;
    return inter / uni;
}

/* the 28 x 28 item scaled to side x side, bilinear on pixel centres */
static void scale_item(const unsigned char *src, int side, unsigned char *dst)
{
    for (int y = 0; y < side; ++y)
        for (int x = 0; x < side; ++x) {
            double sx = (x + .5) * SIDE / side - .5, sy = (y + .5) * SIDE / side - .5;
            int x0 = (int)floor(sx), y0 = (int)floor(sy);
            double fx = sx - x0, fy = sy - y0, v = 0;
            for (int dy = 0; dy < 2; ++dy)
                for (int dx = 0; dx < 2; ++dx) {
                    int px = x0 + dx, py = y0 + dy;
                    double wgt = (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
                    if (px < 0 || py < 0 || px >= SIDE || py >= SIDE) continue;
                    v += wgt * src[py * SIDE + px];
                }
            dst[y * side + x] = (unsigned char)(v + .5);
        }
}

/* One canvas from the items picked[0..n-1]; their labels go to `labels` (text). */
static void compose(canvas_draws *draws, const idx_t *img, const idx_t *lab, const long *picked, int n,
                    unsigned char *canvas, char *labels, size_t size)
{
    pixel_box placed[MAX_ITEMS];
    unsigned char item[MAX_SIDE * MAX_SIDE];
    int nplaced = 0;
    size_t used = 0;
    memset(canvas, 0, CANVAS * CANVAS);
    labels[0] = 0;
    for (int g = 0; g < n; ++g) {
        int side = MIN_SIDE + (int)draw_below(draws, MAX_SIDE - MIN_SIDE + 1);
        pixel_box ink = {side, side, 0, 0}, at;
        int ox = 0, oy = 0, ok = 0;
        scale_item(img->data + picked[g] * SIDE * SIDE, side, item);
        for (int y = 0; y < side; ++y)
            for (int x = 0; x < side; ++x)
                if (item[y * side + x] > INK) {
                    if (x < ink.x1) ink.x1 = x;
                    if (y < ink.y1) ink.y1 = y;
                    if (x + 1 > ink.x2) ink.x2 = x + 1;
                    if (y + 1 > ink.y2) ink.y2 = y + 1;
                }
        if (ink.x2 <= ink.x1 || ink.y2 <= ink.y1) continue; /* an empty item: nothing to find */
        for (int t = 0; t < PLACEMENT_TRIES && !ok; ++t) {
            ox = (int)draw_below(draws, CANVAS - side + 1);
            oy = (int)draw_below(draws, CANVAS - side + 1);
            at = (pixel_box){ox + ink.x1, oy + ink.y1, ox + ink.x2, oy + ink.y2};
            ok = 1;
            for (int k = 0; k < nplaced; ++k)
                if (box_iou(at, placed[k]) > MAX_IOU) ok = 0;
        }
        if (!ok) continue;
        for (int y = 0; y < side; ++y)
            for (int x = 0; x < side; ++x) {
                int v = item[y * side + x], p = (oy + y) * CANVAS + ox + x;
                if (v > canvas[p]) canvas[p] = (unsigned char)v; /* lighter on top: overlaps stay visible */
            }
        placed[nplaced++] = at;
        used += snprintf(labels + used, size - used, "%d %.6f %.6f %.6f %.6f\n", lab->data[picked[g]],
                         (at.x1 + at.x2) / 2.0 / CANVAS, (at.y1 + at.y2) / 2.0 / CANVAS,
                         (double)(at.x2 - at.x1) / CANVAS, (double)(at.y2 - at.y1) / CANVAS);
    }
}

static void write_split(const char *out, const char *split, const idx_t *img, const idx_t *lab,
                        long count, uint64_t seed_state)
{
    char dir[4096], path[4096], labels[1024];
    unsigned char canvas[CANVAS * CANVAS];
    canvas_draws draws = canvas_draws_start(seed_state, img->n);
    FILE *list;
    snprintf(dir, sizeof dir, "%s/%s/images", out, split);
    mkdir_p(dir);
    snprintf(dir, sizeof dir, "%s/%s/labels", out, split);
    mkdir_p(dir);
    snprintf(path, sizeof path, "%s/%s.list", out, split);
    list = fopen(path, "w");
    if (!list) die("%s: cannot write (%s)", path, strerror(errno));
    for (long i = 0; i < count; ++i) {
        long picked[MAX_ITEMS];
        int n = 1 + (int)draw_below(&draws, MAX_ITEMS);
        for (int g = 0; g < n; ++g) picked[g] = draw_image(&draws);
        compose(&draws, img, lab, picked, n, canvas, labels, sizeof labels);
        /* every canvas holds an object: an item without ink gives way to the next one */
        while (!labels[0]) {
            picked[0] = (picked[0] + 1) % img->n;
            compose(&draws, img, lab, picked, 1, canvas, labels, sizeof labels);
        }
        snprintf(path, sizeof path, "%s/%s/images/%05ld.png", out, split, i);
        write_png(path, canvas, CANVAS, CANVAS);
        fprintf(list, "%s\n", path);
        snprintf(path, sizeof path, "%s/%s/labels/%05ld.txt", out, split, i);
        write_text(path, labels);
    }
    if (fclose(list) != 0) die("%s/%s.list: write error", out, split);
    free(draws.order);
}

static void usage(void)
{
    fprintf(stderr, "usage: fashion_detect_to_darknet <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    static const char *rule_words[] = {"images", "JPEGImages", "raw", "labels", ".jpg", ".png", ".JPG", ".JPEG", 0};
    canvas_args args = {0, "data/fashion-det", 6000, 500, 1};
    char outc[4096], stamp[4096], want[256], path[4096], text[8192];
    const char *out;
    parse_canvas_args(&args, argc, argv, usage);
    out = trimmed_dir(outc, sizeof outc, args.out);
    refuse_dataset_as_out(out, args.in);
    /* Darknet finds a label file by replacing the first of these words in the image's path */
    for (int k = 0; rule_words[k]; ++k)
        if (strstr(out, rule_words[k]))
            die("%s: the out dir must not contain '%s' (Darknet's label path rule replaces it)", out, rule_words[k]);

    snprintf(want, sizeof want, "fashion-det v1 train=%ld valid=%ld seed=%ld\n", args.ntrain, args.nvalid, args.seed);
    if (output_complete(out, want, BACKUP_DIR, stamp, sizeof stamp)) return 0;

    fashion_splits data = read_fashion_splits(args.in, SIDE, NCLASSES);
    mkdir_p(out);
    write_split(out, "train", &data.train_images, &data.train_labels, args.ntrain, (uint64_t)args.seed * 2 + 1);
    write_split(out, "valid", &data.test_images, &data.test_labels, args.nvalid, (uint64_t)args.seed * 2 + 2);

    write_names(out, "names.txt", names, NCLASSES);
    snprintf(text, sizeof text,
             "classes=%d\n"
             "train=%s/train.list\n"
             "valid=%s/valid.list\n"
             "names=%s/names.txt\n"
             "backup=%s\n",
             NCLASSES, out, out, out, BACKUP_DIR);
    snprintf(path, sizeof path, "%s/fashion-det.data", out);
    write_text(path, text);
    mkdir_p(BACKUP_DIR);
    write_text(stamp, want);
    printf("%s: wrote %ld train and %ld valid canvases (%dx%d, 1-%d items each)\n", out, args.ntrain,
           args.nvalid, CANVAS, CANVAS, MAX_ITEMS);
    free_fashion_splits(&data);
    return 0;
}
