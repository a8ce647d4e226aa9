/*
 * fashion_seg_to_darknet: a small deterministic semantic-segmentation set built from
 * Fashion-MNIST, in the Pascal VOC-like layout `distill segmenter` reads.
 *
 *   fashion_seg_to_darknet <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S]
 *
 * Every sample is a 64x64 grayscale canvas with GARMENTS Fashion-MNIST garments (28x28) pasted
 * at random positions, later ones on top. Per-pixel labels, from the garment on top:
 *   intensity > SOLID      -> 1 + the garment's class (1..10)
 *   RIM < intensity <= SOLID -> 255 (ignore): the faint rim where garment and background blur
 *   otherwise              -> what lies below (0 = background where nothing does)
 * Train canvases take garments from the official train split, valid canvases from the test
 * split (disjoint garments). Positions and garments come from a fixed-seed generator of
 * our own (not rand()), so the set is the same on every machine.
 *
 * Input (in <dataset dir>, gzip-compressed or plain; zlib reads both):
 *   train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
 *   t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz
 * Output (in <out dir>, default data/fashion-seg):
 *   train/images/NNNNN.png, train/masks/NNNNN.png, valid/images/..., valid/masks/...
 *   train.list, valid.list   image paths, "<out dir>/<split>/images/NNNNN.png"
 *   names.txt                the 11 class names (background first)
 *   fashion-seg.data         classes=11, the lists, names, masks=/images/,/masks/ and backup
 *   .complete                stamp written last; a rerun with the same arguments does nothing
 * It also creates backup/fashion-seg/, the backup dir named in fashion-seg.data.
 *
 * Build: gcc -O2 -o fashion_seg_to_darknet fashion_seg_to_darknet.c -lpng -lz
 */
#include <stdint.h>

#define FASHION_IDX_PROG "fashion_seg_to_darknet"
#define FASHION_IDX_SHORT_ERRORS 1
#define FASHION_IDX_GZ_BUFFER 0
#include "fashion_idx.h"

#define NGARMENT_CLASSES 10
#define SIDE 28
#define CANVAS 64
#define GARMENTS 3
#define SOLID 48
#define RIM 12
#define IGNORE 255
#define BACKUP_DIR "backup/fashion-seg/"

static const char *names[NGARMENT_CLASSES + 1] = {
    "background", "tshirt_top", "trouser", "pullover", "dress", "coat",
    "sandal", "shirt", "sneaker", "bag", "ankle_boot"
};

/* One canvas and its label map from the garments picked[0..GARMENTS-1]. */
static void compose(canvas_draws *draws, const idx_t *img, const idx_t *lab, const long *picked,
                    unsigned char *canvas, unsigned char *mask)
{
    memset(canvas, 0, CANVAS * CANVAS);
    memset(mask, 0, CANVAS * CANVAS);
    for (int g = 0; g < GARMENTS; ++g) {
        const unsigned char *src = img->data + picked[g] * SIDE * SIDE;
        int cls = 1 + lab->data[picked[g]];
        int ox = (int)draw_below(draws, CANVAS - SIDE + 1), oy = (int)draw_below(draws, CANVAS - SIDE + 1);
        for (int y = 0; y < SIDE; ++y)
            for (int x = 0; x < SIDE; ++x) {
                int v = src[y * SIDE + x], at = (oy + y) * CANVAS + ox + x;
                if (v <= RIM) continue; /* transparent: what lies below stays */
                canvas[at] = (unsigned char)v;
                mask[at] = v > SOLID ? (unsigned char)cls : IGNORE;
            }
    }
}

static void write_split(const char *out, const char *split, const idx_t *img, const idx_t *lab,
                        long count, uint64_t seed_state)
{
    char dir[4096], path[4096];
    unsigned char canvas[CANVAS * CANVAS], mask[CANVAS * CANVAS];
    canvas_draws draws = canvas_draws_start(seed_state, img->n);
    FILE *list;
    snprintf(dir, sizeof dir, "%s/%s/images", out, split);
    mkdir_p(dir);
    snprintf(dir, sizeof dir, "%s/%s/masks", out, split);
    mkdir_p(dir);
    snprintf(path, sizeof path, "%s/%s.list", out, split);
    list = fopen(path, "w");
    if (!list) die("%s: cannot write (%s)", path, strerror(errno));
    for (long i = 0; i < count; ++i) {
        long picked[GARMENTS];
        for (int g = 0; g < GARMENTS; ++g) picked[g] = draw_image(&draws);
        compose(&draws, img, lab, picked, canvas, mask);
        snprintf(path, sizeof path, "%s/%s/images/%05ld.png", out, split, i);
        write_png(path, canvas, CANVAS, CANVAS);
        fprintf(list, "%s\n", path);
        snprintf(path, sizeof path, "%s/%s/masks/%05ld.png", out, split, i);
        write_png(path, mask, CANVAS, CANVAS);
    }
    if (fclose(list) != 0) die("%s/%s.list: write error", out, split);
    free(draws.order);
}

static void usage(void)
{
    fprintf(stderr, "usage: fashion_seg_to_darknet <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    canvas_args args = {0, "data/fashion-seg", 8000, 1000, 1};
    char outc[4096], stamp[4096], want[256], path[4096], text[8192];
    const char *out;
    parse_canvas_args(&args, argc, argv, usage);
    out = trimmed_dir(outc, sizeof outc, args.out);
    refuse_dataset_as_out(out, args.in);
    /* the mask rule replaces the first "/images/" of a path: there must be only ours */
    if (strstr(out, "/images/") || strstr(out, "/masks/"))
        die("%s: the out dir must not contain /images/ or /masks/ (the mask path rule uses them)", out);

    snprintf(want, sizeof want, "fashion-seg v1 train=%ld valid=%ld seed=%ld\n", args.ntrain, args.nvalid, args.seed);
    if (output_complete(out, want, BACKUP_DIR, stamp, sizeof stamp)) return 0;

    fashion_splits data = read_fashion_splits(args.in, SIDE, NGARMENT_CLASSES);
    mkdir_p(out);
    write_split(out, "train", &data.train_images, &data.train_labels, args.ntrain, (uint64_t)args.seed * 2 + 1);
    write_split(out, "valid", &data.test_images, &data.test_labels, args.nvalid, (uint64_t)args.seed * 2 + 2);

    write_names(out, "names.txt", names, NGARMENT_CLASSES + 1);
    snprintf(text, sizeof text,
             "classes=%d\n"
             "train=%s/train.list\n"
             "valid=%s/valid.list\n"
             "names=%s/names.txt\n"
             "# mask of an image: its path with /images/ -> /masks/, extension -> .png\n"
             "masks=/images/,/masks/\n"
             "mask_ext=.png\n"
             "backup=%s\n",
             NGARMENT_CLASSES + 1, out, out, out, BACKUP_DIR);
    snprintf(path, sizeof path, "%s/fashion-seg.data", out);
    write_text(path, text);
    mkdir_p(BACKUP_DIR);
    write_text(stamp, want);
    printf("%s: wrote %ld train and %ld valid canvases (%dx%d, %d garments each)\n", out, args.ntrain,
           args.nvalid, CANVAS, CANVAS, GARMENTS);
    free_fashion_splits(&data);
    return 0;
}
