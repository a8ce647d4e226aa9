/*
 * fashion_mnist_to_darknet: turn the Fashion-MNIST IDX files into Darknet's
 * classification layout.
 *
 *   fashion_mnist_to_darknet <dataset dir> [<out dir>] [--train-limit N]
 *       [--train-per-class N [--holdout-per-class V] [--subset-seed S]]
 *
 * --train-per-class N: a stratified, seeded labelled subset: N images of each class
 * (10 N in all) in train.list, drawn without replacement by a seeded shuffle of each
 * class (--subset-seed, default 1). --holdout-per-class V (default 0) draws V further
 * images of each class, disjoint from the subset, into holdout.list: a validation split
 * of the training set for any choice made, so that the test set is never used for one.
 * Every other training image is listed in unlabeled.list (the rest of the 60k, for
 * distillation terms that need no label). All 60k training PNGs are written, since the
 * lists refer to them; the lists keep the images' order in the IDX file.
 *
 * Input (in <dataset dir>, gzip-compressed or plain; zlib reads both):
 *   train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
 *   t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz
 * Output (in <out dir>, default data/fashion-mnist):
 *   train/NNNNN_<label>.png, test/NNNNN_<label>.png   8-bit grayscale PNG
 *   train.list, test.list     one image path a line, "<out dir>/<split>/..."
 *   labels.txt                the 10 labels in class order
 *   fashion.data              Darknet data cfg pointing at the files above
 *   with --train-per-class:   holdout.list, unlabeled.list, and holdout.data
 *                             (fashion.data with valid=holdout.list)
 *   .complete                 stamp written last; a rerun with the same
 *                             arguments finds it and does nothing
 * It also creates backup/fashion/ because fashion.data names it as the
 * backup dir and Darknet exits (with status 0) when it cannot save weights.
 *
 * Paths in the lists and in fashion.data are the <out dir> argument as given,
 * so run this from the directory Darknet will be run from (the repo top) with
 * a relative <out dir>, or give an absolute one.
 *
 * Label names: Darknet gives an image the label(s) whose name is a SUBSTRING
 * of the image path (data.c fill_truth). Plain class names collide ("shirt"
 * is inside "tshirt"), so every label starts with "c<digit>_": label k is the
 * only one containing "c<k>_", hence no label is inside another; the index
 * part of a file name is digits only and the converter refuses an out dir
 * whose path already contains a label. Checked at run time below.
 *
 * Build: gcc -O2 -o fashion_mnist_to_darknet fashion_mnist_to_darknet.c -lpng -lz
 */
#include <sys/wait.h>

#define FASHION_IDX_PROG "fashion_mnist_to_darknet"
#define FASHION_IDX_SHORT_ERRORS 0
#define FASHION_IDX_GZ_BUFFER (1 << 17)
#include "fashion_idx.h"

#define NCLASSES 10
#define SIDE 28
#define BACKUP_DIR "backup/fashion/"

static const char *labels[NCLASSES] = {
    "c0_tshirt_top", "c1_trouser", "c2_pullover", "c3_dress", "c4_coat",
    "c5_sandal", "c6_shirt", "c7_sneaker", "c8_bag", "c9_ankle_boot"
};

static void image_path(char *buf, size_t sz, const char *out, const char *split, long i, int label)
{
    snprintf(buf, sz, "%s/%s/%05ld_%s.png", out, split, i, labels[label]);
}

/* Writes PNGs [lo, hi) of one split. */
static void write_range(const char *out, const char *split, const idx_t *img, const idx_t *lab, long lo, long hi)
{
    char path[4096];
    for (long i = lo; i < hi; ++i) {
        image_path(path, sizeof path, out, split, i, lab->data[i]);
        write_png(path, img->data + i * SIDE * SIDE, SIDE, SIDE);
    }
}

/* PNG encoding dominates; split it over a few worker processes. */
static void write_split(const char *out, const char *split, const idx_t *img, const idx_t *lab, long n, int workers)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", out, split);
    mkdir_p(dir);
    pid_t pids[64];
    int np = 0;
    for (int w = 1; w < workers; ++w) {
        long lo = n * w / workers, hi = n * (w + 1) / workers;
        pid_t p = fork();
        if (p < 0) { write_range(out, split, img, lab, lo, hi); continue; }
        if (p == 0) { write_range(out, split, img, lab, lo, hi); _exit(0); }
        pids[np++] = p;
    }
    write_range(out, split, img, lab, 0, n / workers);
    int failed = 0;
    for (int k = 0; k < np; ++k) {
        int st;
        if (waitpid(pids[k], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) failed = 1;
    }
    if (failed) die("%s: writing images failed in a worker", dir);
}

/* <out>/<name>.list: the images i < n of split whose role is `want` (every one when role
   is NULL), in index order. */
static void write_list(const char *out, const char *name, const char *split, const idx_t *lab, long n,
                       const unsigned char *role, int want)
{
    char path[4096], ip[4096];
    snprintf(path, sizeof path, "%s/%s.list", out, name);
    FILE *f = fopen(path, "w");
    if (!f) die("%s: cannot write (%s)", path, strerror(errno));
    for (long i = 0; i < n; ++i) {
        if (role && role[i] != want) continue;
        image_path(ip, sizeof ip, out, split, i, lab->data[i]);
        fprintf(f, "%s\n", ip);
    }
    if (fclose(f) != 0) die("%s: write error", path);
}

enum { ROLE_UNLABELED, ROLE_TRAIN, ROLE_HOLDOUT };

/* The role of each training image: per class, a seeded Fisher-Yates shuffle of that class's
   indices; the first `holdout` go to the held-out split, the next `per_class` to the labelled
   subset, the rest stay unlabelled. Each class has its own stream (seed, class), so one
   class's count does not move another's draw. */
static unsigned char *stratified_roles(const idx_t *lab, long per_class, long holdout, uint64_t seed)
{
    unsigned char *role = calloc(lab->n, 1);
    long *idx = malloc(lab->n * sizeof(long));
    if (!role || !idx) die("out of memory");
    for (int c = 0; c < NCLASSES; ++c) {
        long m = 0;
        for (long i = 0; i < lab->n; ++i)
            if (lab->data[i] == c) idx[m++] = i;
        if (m < per_class + holdout)
            die("--train-per-class %ld + --holdout-per-class %ld: class %s has only %ld training images",
                per_class, holdout, labels[c], m);
        uint64_t state = seed * 0x100000001B3ULL + (uint64_t)c;
        for (long i = m - 1; i > 0; --i) {
            long j = (long)(splitmix64(&state) % (uint64_t)(i + 1));
            long t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        for (long i = 0; i < holdout; ++i) role[idx[i]] = ROLE_HOLDOUT;
        for (long i = holdout; i < holdout + per_class; ++i) role[idx[i]] = ROLE_TRAIN;
    }
    free(idx);
    return role;
}

/* the .data file of the classifier set whose validation list is <out>/<valid>.list */
static void write_data_file(const char *out, const char *file, const char *valid)
{
    char path[4096], text[8192];
    snprintf(text, sizeof text,
             "classes=%d\n"
             "train=%s/train.list\n"
             "valid=%s/%s.list\n"
             "labels=%s/labels.txt\n"
             "backup=%s\n"
             "top=2\n",
             NCLASSES, out, out, valid, out, BACKUP_DIR);
    snprintf(path, sizeof path, "%s/%s", out, file);
    write_text(path, text);
}

static void usage(void)
{
    fprintf(stderr, "usage: fashion_mnist_to_darknet <dataset dir> [<out dir>] [--train-limit N]\n"
                    "       [--train-per-class N [--holdout-per-class V] [--subset-seed S]]\n");
    exit(1);
}

int main(int argc, char **argv)
{
    const char *in = 0, *out = "data/fashion-mnist";
    long limit = -1, per_class = -1, holdout = -1, seed = -1;
    int npos = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--train-limit")) {
            if (++i >= argc) usage();
            limit = parse_count("--train-limit", argv[i], 1);
        } else if (!strcmp(argv[i], "--train-per-class")) {
            if (++i >= argc) usage();
            per_class = parse_count("--train-per-class", argv[i], 1);
        } else if (!strcmp(argv[i], "--holdout-per-class")) {
            if (++i >= argc) usage();
            holdout = parse_count("--holdout-per-class", argv[i], 0);
        } else if (!strcmp(argv[i], "--subset-seed")) {
            if (++i >= argc) usage();
            seed = parse_count("--subset-seed", argv[i], 0);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage();
        } else if (npos == 0) { in = argv[i]; ++npos; }
        else if (npos == 1) { out = argv[i]; ++npos; }
        else usage();
    }
    if (!in) usage();
    if (per_class > 0 && limit > 0) die("--train-limit and --train-per-class: give one of them");
    if (per_class < 0 && (holdout >= 0 || seed >= 0))
        die("--holdout-per-class and --subset-seed need --train-per-class");
    if (holdout < 0) holdout = 0;
    if (seed < 0) seed = 1;

    /* Guard the substring labelling scheme (see top comment). */
    for (int a = 0; a < NCLASSES; ++a) {
        for (int b = 0; b < NCLASSES; ++b)
            if (a != b && strstr(labels[a], labels[b])) die("internal: label %s contains %s", labels[a], labels[b]);
        if (strstr(out, labels[a])) die("%s: out dir contains label name %s, which would label every image", out, labels[a]);
    }

    char outc[4096];
    out = trimmed_dir(outc, sizeof outc, out);
    refuse_dataset_as_out(out, in);

    char stamp[4096], want[256];
    if (per_class > 0)
        snprintf(want, sizeof want, "fashion-mnist darknet v1 train_per_class=%ld holdout_per_class=%ld subset_seed=%ld\n",
                 per_class, holdout, seed);
    else
        snprintf(want, sizeof want, "fashion-mnist darknet v1 train_limit=%ld\n", limit);
    if (output_complete(out, want, BACKUP_DIR, stamp, sizeof stamp)) return 0;

    fashion_splits data = read_fashion_splits(in, SIDE, NCLASSES);
    idx_t tri = data.train_images, trl = data.train_labels, tei = data.test_images, tel = data.test_labels;
    long ntrain = (limit > 0 && limit < tri.n) ? limit : tri.n;

    mkdir_p(out);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    write_split(out, "train", &tri, &trl, ntrain, workers);
    write_split(out, "test", &tei, &tel, tei.n, workers);
    unsigned char *role = per_class > 0 ? stratified_roles(&trl, per_class, holdout, (uint64_t)seed) : 0;
    write_list(out, "train", "train", &trl, ntrain, role, ROLE_TRAIN);
    write_list(out, "test", "test", &tel, tei.n, 0, 0);
    if (role) {
        write_list(out, "holdout", "train", &trl, ntrain, role, ROLE_HOLDOUT);
        write_list(out, "unlabeled", "train", &trl, ntrain, role, ROLE_UNLABELED);
    }

    write_names(out, "labels.txt", labels, NCLASSES);
    write_data_file(out, "fashion.data", "test");
    if (role) write_data_file(out, "holdout.data", "holdout");
    mkdir_p(BACKUP_DIR);

    write_text(stamp, want);   /* last: marks the conversion complete */
    if (role)
        printf("%s: wrote %ld train images (%ld labelled, %ld per class; %ld held out; %ld unlabelled, subset seed %ld) and %ld test images\n",
               out, ntrain, per_class * NCLASSES, per_class, holdout * NCLASSES,
               ntrain - (per_class + holdout) * NCLASSES, seed, tei.n);
    else
        printf("%s: wrote %ld train and %ld test images\n", out, ntrain, tei.n);
    free(role);
    free_fashion_splits(&data);
    return 0;
}
