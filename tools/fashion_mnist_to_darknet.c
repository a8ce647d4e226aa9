/*
 * fashion_mnist_to_darknet: turn the Fashion-MNIST IDX files into Darknet's
 * classification layout.
 *
 *   fashion_mnist_to_darknet <dataset dir> [<out dir>] [--train-limit N]
 *
 * Input (in <dataset dir>, gzip-compressed or plain; zlib reads both):
 *   train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz
 *   t10k-images-idx3-ubyte.gz  t10k-labels-idx1-ubyte.gz
 * Output (in <out dir>, default data/fashion-mnist):
 *   train/NNNNN_<label>.png, test/NNNNN_<label>.png   8-bit grayscale PNG
 *   train.list, test.list     one image path a line, "<out dir>/<split>/..."
 *   labels.txt                the 10 labels in class order
 *   fashion.data              Darknet data cfg pointing at the files above
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
#include <errno.h>
#include <png.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#define NCLASSES 10
#define SIDE 28
#define BACKUP_DIR "backup/fashion/"

static const char *labels[NCLASSES] = {
    "c0_tshirt_top", "c1_trouser", "c2_pullover", "c3_dress", "c4_coat",
    "c5_sandal", "c6_shirt", "c7_sneaker", "c8_bag", "c9_ankle_boot"
};

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("fashion_mnist_to_darknet: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* One IDX file, fully in memory (the largest is 47 MB). */
typedef struct {
    unsigned char *data;   /* payload after the header */
    long n;                /* items */
    int rows, cols;        /* 0 for label files */
} idx_t;

static unsigned be32(const unsigned char *p)
{
    return ((unsigned)p[0] << 24) | ((unsigned)p[1] << 16) | ((unsigned)p[2] << 8) | p[3];
}

/* zlib's message repeats the path ("path: reason"); keep the reason only. */
static const char *gz_msg(gzFile f, const char *path, int *err)
{
    const char *msg = gzerror(f, err);
    size_t pl = strlen(path);
    if (!strncmp(msg, path, pl) && !strncmp(msg + pl, ": ", 2)) msg += pl + 2;
    return msg;
}

/* Read exactly len bytes; a short read means a truncated file. */
static void gz_read_all(gzFile f, void *buf, long len, const char *path)
{
    unsigned char *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1L << 30) ? (1u << 30) : (unsigned)len;
        int got = gzread(f, p, chunk);
        if (got < 0) {
            int err;
            die("%s: corrupt gzip data (%s)", path, gz_msg(f, path, &err));
        }
        if (got == 0) {
            /* zlib reports a truncated gzip stream only as an error state */
            int err;
            const char *msg = gz_msg(f, path, &err);
            if (err != Z_OK && err != Z_BUF_ERROR) die("%s: corrupt gzip data (%s)", path, msg);
            die("%s: file is short (truncated)", path);
        }
        p += got;
        len -= got;
    }
}

/* dims = 3 for images, 1 for labels. Tries <name>.gz, then <name>. */
static idx_t read_idx(const char *dir, const char *name, int dims)
{
    char path[4096], alt[4096];
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    snprintf(alt, sizeof alt, "%s/%s", dir, name);
    const char *used = path;
    if (access(path, R_OK) != 0) {
        if (access(alt, R_OK) != 0) die("%s: cannot read (%s)", path, strerror(errno));
        used = alt;
    }
    gzFile f = gzopen(used, "rb");
    if (!f) die("%s: cannot open (%s)", used, strerror(errno));
    gzbuffer(f, 1 << 17);

    unsigned char hdr[16];
    int hlen = 4 + 4 * dims;
    gz_read_all(f, hdr, hlen, used);
    unsigned magic = be32(hdr);
    /* 0x08 = unsigned byte elements, last byte = number of dimensions */
    if (magic != (0x0800u | (unsigned)dims))
        die("%s: bad magic 0x%08x (expected 0x%08x)", used, magic, 0x0800u | (unsigned)dims);

    idx_t x = {0};
    x.n = be32(hdr + 4);
    if (dims == 3) {
        x.rows = be32(hdr + 8);
        x.cols = be32(hdr + 12);
        if (x.rows != SIDE || x.cols != SIDE)
            die("%s: images are %dx%d, expected %dx%d", used, x.rows, x.cols, SIDE, SIDE);
    }
    if (x.n <= 0 || x.n > 10000000) die("%s: implausible item count %ld", used, x.n);
    long len = x.n * (dims == 3 ? SIDE * SIDE : 1);
    x.data = malloc(len);
    if (!x.data) die("%s: out of memory", used);
    gz_read_all(f, x.data, len, used);
    gzclose(f);
    if (dims == 1) {
        for (long i = 0; i < x.n; ++i)
            if (x.data[i] >= NCLASSES) die("%s: label %d at item %ld out of range", used, x.data[i], i);
    }
    return x;
}

static void mkdir_p(const char *dir)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; ; ++p) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) die("%s: cannot create directory (%s)", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
}

static void write_png(const char *path, const unsigned char *pix)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) die("%s: cannot write (%s)", path, strerror(errno));
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, 0, 0, 0);
    png_infop info = png ? png_create_info_struct(png) : 0;
    if (!info) die("%s: libpng init failed", path);
    if (setjmp(png_jmpbuf(png))) die("%s: libpng write failed", path);
    png_init_io(png, fp);
    /* 784-byte images: fast compression costs almost nothing in size */
    png_set_compression_level(png, 1);
    png_set_IHDR(png, info, SIDE, SIDE, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_bytep rows[SIDE];
    for (int r = 0; r < SIDE; ++r) rows[r] = (png_bytep)(pix + r * SIDE);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, 0);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) die("%s: write error (%s)", path, strerror(errno));
}

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
        write_png(path, img->data + i * SIDE * SIDE);
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

static void write_list(const char *out, const char *split, const idx_t *lab, long n)
{
    char path[4096], ip[4096];
    snprintf(path, sizeof path, "%s/%s.list", out, split);
    FILE *f = fopen(path, "w");
    if (!f) die("%s: cannot write (%s)", path, strerror(errno));
    for (long i = 0; i < n; ++i) {
        image_path(ip, sizeof ip, out, split, i, lab->data[i]);
        fprintf(f, "%s\n", ip);
    }
    if (fclose(f) != 0) die("%s: write error", path);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) die("%s: cannot write (%s)", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0) die("%s: write error", path);
}

static void usage(void)
{
    fprintf(stderr, "usage: fashion_mnist_to_darknet <dataset dir> [<out dir>] [--train-limit N]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *in = 0, *out = "data/fashion-mnist";
    long limit = -1;
    int npos = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--train-limit")) {
            if (++i >= argc) usage();
            char *end;
            limit = strtol(argv[i], &end, 10);
            if (*end || limit <= 0) die("--train-limit: expected a positive integer, got '%s'", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage();
        } else if (npos == 0) { in = argv[i]; ++npos; }
        else if (npos == 1) { out = argv[i]; ++npos; }
        else usage();
    }
    if (!in) usage();

    /* Guard the substring labelling scheme (see top comment). */
    for (int a = 0; a < NCLASSES; ++a) {
        for (int b = 0; b < NCLASSES; ++b)
            if (a != b && strstr(labels[a], labels[b])) die("internal: label %s contains %s", labels[a], labels[b]);
        if (strstr(out, labels[a])) die("%s: out dir contains label name %s, which would label every image", out, labels[a]);
    }

    char outc[4096];
    snprintf(outc, sizeof outc, "%s", out);
    size_t ol = strlen(outc);
    while (ol > 1 && outc[ol - 1] == '/') outc[--ol] = 0;   /* no "//" in list paths */
    out = outc;

    char stamp[4096], want[256];
    snprintf(stamp, sizeof stamp, "%s/.complete", out);
    snprintf(want, sizeof want, "fashion-mnist darknet v1 train_limit=%ld\n", limit);
    FILE *sf = fopen(stamp, "r");
    if (sf) {
        char have[256] = {0};
        size_t got = fread(have, 1, sizeof have - 1, sf);
        fclose(sf);
        have[got] = 0;
        if (!strcmp(have, want)) {
            mkdir_p(BACKUP_DIR);
            printf("%s: already converted (%s), nothing to do\n", out, stamp);
            return 0;
        }
        unlink(stamp);   /* different arguments: redo, and stay incomplete until done */
    }

    idx_t tri = read_idx(in, "train-images-idx3-ubyte", 3);
    idx_t trl = read_idx(in, "train-labels-idx1-ubyte", 1);
    idx_t tei = read_idx(in, "t10k-images-idx3-ubyte", 3);
    idx_t tel = read_idx(in, "t10k-labels-idx1-ubyte", 1);
    if (tri.n != trl.n) die("%s/train-*: %ld images but %ld labels", in, tri.n, trl.n);
    if (tei.n != tel.n) die("%s/t10k-*: %ld images but %ld labels", in, tei.n, tel.n);
    long ntrain = (limit > 0 && limit < tri.n) ? limit : tri.n;

    mkdir_p(out);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int workers = cpus < 1 ? 1 : cpus > 16 ? 16 : (int)cpus;
    write_split(out, "train", &tri, &trl, ntrain, workers);
    write_split(out, "test", &tei, &tel, tei.n, workers);
    write_list(out, "train", &trl, ntrain);
    write_list(out, "test", &tel, tei.n);

    char path[4096], text[8192];
    size_t tl = 0;
    for (int k = 0; k < NCLASSES; ++k) tl += snprintf(text + tl, sizeof text - tl, "%s\n", labels[k]);
    snprintf(path, sizeof path, "%s/labels.txt", out);
    write_text(path, text);

    snprintf(text, sizeof text,
             "classes=%d\n"
             "train=%s/train.list\n"
             "valid=%s/test.list\n"
             "labels=%s/labels.txt\n"
             "backup=%s\n"
             "top=2\n",
             NCLASSES, out, out, out, BACKUP_DIR);
    snprintf(path, sizeof path, "%s/fashion.data", out);
    write_text(path, text);
    mkdir_p(BACKUP_DIR);

    write_text(stamp, want);   /* last: marks the conversion complete */
    printf("%s: wrote %ld train and %ld test images\n", out, ntrain, tei.n);
    free(tri.data); free(trl.data); free(tei.data); free(tel.data);
    return 0;
}
