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

static uint64_t rng_state;
static uint64_t rng_next(void) { return splitmix64(&rng_state); }
static long rng_below(long n) { return (long)(rng_next() % (uint64_t)n); }

/* One canvas and its label map from the garments picked[0..GARMENTS-1]. */
static void compose(const idx_t *img, const idx_t *lab, const long *picked, unsigned char *canvas,
                    unsigned char *mask)
{
    memset(canvas, 0, CANVAS * CANVAS);
    memset(mask, 0, CANVAS * CANVAS);
    for (int g = 0; g < GARMENTS; ++g) {
        const unsigned char *src = img->data + picked[g] * SIDE * SIDE;
        int cls = 1 + lab->data[picked[g]];
        int ox = (int)rng_below(CANVAS - SIDE + 1), oy = (int)rng_below(CANVAS - SIDE + 1);
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
                        long count)
{
    char dir[4096], path[4096];
    unsigned char canvas[CANVAS * CANVAS], mask[CANVAS * CANVAS];
    long *order = malloc(img->n * sizeof(long)), next = img->n;
    FILE *list;
    snprintf(dir, sizeof dir, "%s/%s/images", out, split);
    mkdir_p(dir);
    snprintf(dir, sizeof dir, "%s/%s/masks", out, split);
    mkdir_p(dir);
    snprintf(path, sizeof path, "%s/%s.list", out, split);
    list = fopen(path, "w");
    if (!list || !order) die("%s: cannot write (%s)", path, strerror(errno));
    for (long i = 0; i < count; ++i) {
        long picked[GARMENTS];
        for (int g = 0; g < GARMENTS; ++g) {
            /* garments in a fresh shuffled order, reshuffled when used up */
            if (next == img->n) {
                for (long k = 0; k < img->n; ++k) order[k] = k;
                for (long k = img->n - 1; k > 0; --k) {
                    long j = rng_below(k + 1), t = order[k];
                    order[k] = order[j];
                    order[j] = t;
                }
                next = 0;
            }
            picked[g] = order[next++];
        }
        compose(img, lab, picked, canvas, mask);
        snprintf(path, sizeof path, "%s/%s/images/%05ld.png", out, split, i);
        write_png(path, canvas, CANVAS, CANVAS);
        fprintf(list, "%s\n", path);
        snprintf(path, sizeof path, "%s/%s/masks/%05ld.png", out, split, i);
        write_png(path, mask, CANVAS, CANVAS);
    }
    if (fclose(list) != 0) die("%s/%s.list: write error", out, split);
    free(order);
}

static void usage(void)
{
    fprintf(stderr, "usage: fashion_seg_to_darknet <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *in = 0, *out = "data/fashion-seg";
    long ntrain = 8000, nvalid = 1000, seed = 1;
    int npos = 0;
    char outc[4096], stamp[4096], want[256], path[4096], text[8192];
    size_t ol, tl = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--train") && i + 1 < argc) ntrain = parse_count("--train", argv[++i], 1);
        else if (!strcmp(argv[i], "--valid") && i + 1 < argc) nvalid = parse_count("--valid", argv[++i], 1);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = parse_count("--seed", argv[++i], 0);
        else if (argv[i][0] == '-' && argv[i][1]) usage();
        else if (npos == 0) in = argv[i], ++npos;
        else if (npos == 1) out = argv[i], ++npos;
        else usage();
    }
    if (!in) usage();
    snprintf(outc, sizeof outc, "%s", out);
    ol = strlen(outc);
    while (ol > 1 && outc[ol - 1] == '/') outc[--ol] = 0;
    out = outc;
    /* the mask rule replaces the first "/images/" of a path: there must be only ours */
    if (strstr(out, "/images/") || strstr(out, "/masks/"))
        die("%s: the out dir must not contain /images/ or /masks/ (the mask path rule uses them)", out);

    snprintf(stamp, sizeof stamp, "%s/.complete", out);
    snprintf(want, sizeof want, "fashion-seg v1 train=%ld valid=%ld seed=%ld\n", ntrain, nvalid, seed);
    if (stamp_matches(stamp, want)) {
        mkdir_p(BACKUP_DIR);
        printf("%s: already generated (%s), nothing to do\n", out, stamp);
        return 0;
    }

    idx_t tri = read_idx(in, "train-images-idx3-ubyte", 3, SIDE, NGARMENT_CLASSES);
    idx_t trl = read_idx(in, "train-labels-idx1-ubyte", 1, SIDE, NGARMENT_CLASSES);
    idx_t tei = read_idx(in, "t10k-images-idx3-ubyte", 3, SIDE, NGARMENT_CLASSES);
    idx_t tel = read_idx(in, "t10k-labels-idx1-ubyte", 1, SIDE, NGARMENT_CLASSES);
    if (tri.n != trl.n || tei.n != tel.n) die("%s: image and label counts differ", in);

    mkdir_p(out);
    rng_state = (uint64_t)seed * 2 + 1;
    write_split(out, "train", &tri, &trl, ntrain);
    rng_state = (uint64_t)seed * 2 + 2;
    write_split(out, "valid", &tei, &tel, nvalid);

    for (int k = 0; k <= NGARMENT_CLASSES; ++k) tl += snprintf(text + tl, sizeof text - tl, "%s\n", names[k]);
    snprintf(path, sizeof path, "%s/names.txt", out);
    write_text(path, text);
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
    printf("%s: wrote %ld train and %ld valid canvases (%dx%d, %d garments each)\n", out, ntrain,
           nvalid, CANVAS, CANVAS, GARMENTS);
    free(tri.data); free(trl.data); free(tei.data); free(tel.data);
    return 0;
}
