/*
 * fashion_idx.h: what the Fashion-MNIST converters in tools/ share: die(), reading the
 * IDX files (gzip-compressed or plain), mkdir -p, writing 8-bit grayscale PNGs and text
 * files, the completion stamp, integer options, the out dir (trimmed, never the dataset
 * dir), and the canvas tools' command line and random draws.
 *
 * A header of static functions rather than a library: each .c in tools/ is built alone as
 * one translation unit (the top Makefile's build/tools/% rule), so each tool includes it.
 *
 * Before including it, a tool defines:
 *   FASHION_IDX_PROG          its name, the prefix of every die() message
 *   FASHION_IDX_SHORT_ERRORS  1 for the shorter IDX error texts of fashion_seg_to_darknet,
 *                             0 for the detailed ones of fashion_mnist_to_darknet
 *   FASHION_IDX_GZ_BUFFER     zlib's read buffer in bytes, 0 for zlib's default (it decides
 *                             which error a corrupt gzip file is reported with)
 */
#ifndef FASHION_IDX_H
#define FASHION_IDX_H

#if !defined(FASHION_IDX_PROG) || !defined(FASHION_IDX_SHORT_ERRORS) || !defined(FASHION_IDX_GZ_BUFFER)
#error "define FASHION_IDX_PROG, FASHION_IDX_SHORT_ERRORS and FASHION_IDX_GZ_BUFFER before including fashion_idx.h"
#endif

#include <errno.h>
#include <limits.h>
#include <png.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

/* Prints "<prog>: <message>" and exits with status 1. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(FASHION_IDX_PROG ": ", stderr);
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
        if (got <= 0 && FASHION_IDX_SHORT_ERRORS) die("%s: truncated or corrupt", path);
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

/*
 * dims = 3 for images (side x side checked), 1 for labels (each < nclasses checked).
 * Tries <name>.gz, then <name>.
 */
static idx_t read_idx(const char *dir, const char *name, int dims, int side, int nclasses)
{
    char path[4096], alt[4096];
    snprintf(path, sizeof path, "%s/%s.gz", dir, name);
    snprintf(alt, sizeof alt, "%s/%s", dir, name);
    const char *used = path;
    if (access(path, R_OK) != 0) {
        /* the short form leaves a missing file to gzopen below */
        if (!FASHION_IDX_SHORT_ERRORS && access(alt, R_OK) != 0)
            die("%s: cannot read (%s)", path, strerror(errno));
        used = alt;
    }
    gzFile f = gzopen(used, "rb");
    if (!f) die("%s: cannot open (%s)", used, strerror(errno));
    if (FASHION_IDX_GZ_BUFFER) gzbuffer(f, FASHION_IDX_GZ_BUFFER);

    unsigned char hdr[16];
    int hlen = 4 + 4 * dims;
    gz_read_all(f, hdr, hlen, used);
    unsigned magic = be32(hdr);
    /* 0x08 = unsigned byte elements, last byte = number of dimensions */
    if (magic != (0x0800u | (unsigned)dims)) {
        if (FASHION_IDX_SHORT_ERRORS) die("%s: not an IDX file of %d dimensions", used, dims);
        die("%s: bad magic 0x%08x (expected 0x%08x)", used, magic, 0x0800u | (unsigned)dims);
    }

    idx_t x = {0};
    x.n = be32(hdr + 4);
    if (dims == 3) {
        x.rows = be32(hdr + 8);
        x.cols = be32(hdr + 12);
        if (x.rows != side || x.cols != side) {
            if (FASHION_IDX_SHORT_ERRORS) die("%s: images are not %dx%d", used, side, side);
            die("%s: images are %dx%d, expected %dx%d", used, x.rows, x.cols, side, side);
        }
    }
    if (x.n <= 0 || x.n > 10000000) die("%s: implausible item count %ld", used, x.n);
    long len = x.n * (dims == 3 ? side * side : 1);
    x.data = malloc(len);
    if (!x.data) die("%s: out of memory", used);
    gz_read_all(f, x.data, len, used);
    gzclose(f);
    if (dims == 1) {
        for (long i = 0; i < x.n; ++i)
            if (x.data[i] >= nclasses) die("%s: label %d at item %ld out of range", used, x.data[i], i);
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

/* An 8-bit grayscale PNG of width x height pixels, rows stored one after another. */
static void write_png(const char *path, const unsigned char *pix, int width, int height)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) die("%s: cannot write (%s)", path, strerror(errno));
    png_bytep rows[height];
    for (int r = 0; r < height; ++r) rows[r] = (png_bytep)(pix + r * width);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, 0, 0, 0);
    png_infop info = png ? png_create_info_struct(png) : 0;
    if (!info) die("%s: libpng init failed", path);
    if (setjmp(png_jmpbuf(png))) die("%s: libpng write failed", path);
    png_init_io(png, fp);
    /* small images: fast compression costs almost nothing in size */
    png_set_compression_level(png, 1);
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_set_rows(png, info, rows);
    png_write_png(png, info, PNG_TRANSFORM_IDENTITY, 0);
    png_destroy_write_struct(&png, &info);
    if (fclose(fp) != 0) die("%s: write error (%s)", path, strerror(errno));
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) die("%s: cannot write (%s)", path, strerror(errno));
    fputs(text, f);
    if (fclose(f) != 0) die("%s: write error", path);
}

/* 1 when the stamp file holds exactly `want` (a finished run with the same arguments). Else
 * 0, and a stamp from other arguments is removed: the output stays incomplete until the new
 * run writes its own stamp last. */
static int stamp_matches(const char *stamp, const char *want)
{
    char have[256] = {0};
    size_t got;
    FILE *sf = fopen(stamp, "r");
    if (!sf) return 0;
    got = fread(have, 1, sizeof have - 1, sf);
    fclose(sf);
    have[got] = 0;
    if (!strcmp(have, want)) return 1;
    unlink(stamp);
    return 0;
}

/* 1 when <out>/.complete records a finished run with the same arguments (want): the tool has
 * nothing to do, and says so. The stamp's path goes to stamp (the tool writes it last). */
static inline int output_complete(const char *out, const char *want, const char *backup_dir, char *stamp,
                                  size_t size)
{
    snprintf(stamp, size, "%s/.complete", out);
    if (!stamp_matches(stamp, want)) return 0;
    mkdir_p(backup_dir);
    printf("%s: already written (%s), nothing to do\n", out, stamp);
    return 1;
}

/* splitmix64: a fixed, portable generator, the same sequence on every machine and C library */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* An integer option's value, positive (min 1) or non-negative (min 0); anything else (out of
 * range too) ends the tool with one line. */
static inline long parse_count(const char *opt, const char *v, int min)
{
    char *end;
    long n;
    errno = 0;
    n = strtol(v, &end, 10);
    if (*end || end == v || errno || n < min)
        die("%s: expected a %s integer, got '%s'", opt, min ? "positive" : "non-negative", v);
    return n;
}

/* out without its trailing slashes (no "//" in the list files' paths), copied into buf */
static inline const char *trimmed_dir(char *buf, size_t size, const char *out)
{
    size_t len;
    snprintf(buf, size, "%s", out);
    len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = 0;
    return buf;
}

/* The tools never write into the data they read: an out dir that is the dataset dir (however
 * it is spelled: a trailing slash, ./, a symbolic link) ends the tool with one line. */
static inline void refuse_dataset_as_out(const char *out, const char *dataset)
{
    char o[PATH_MAX], d[PATH_MAX];
    if (realpath(out, o) && realpath(dataset, d) && !strcmp(o, d))
        die("%s: the out dir is the dataset dir %s; the tool writes nothing into the data it reads", out, dataset);
}

/* The official splits' four IDX files, each split's image and label counts checked. */
typedef struct {
    idx_t train_images, train_labels, test_images, test_labels;
} fashion_splits;

static inline fashion_splits read_fashion_splits(const char *dir, int side, int nclasses)
{
    fashion_splits s;
    s.train_images = read_idx(dir, "train-images-idx3-ubyte", 3, side, nclasses);
    s.train_labels = read_idx(dir, "train-labels-idx1-ubyte", 1, side, nclasses);
    s.test_images = read_idx(dir, "t10k-images-idx3-ubyte", 3, side, nclasses);
    s.test_labels = read_idx(dir, "t10k-labels-idx1-ubyte", 1, side, nclasses);
    if (s.train_images.n != s.train_labels.n)
        die("%s/train-*: %ld images but %ld labels", dir, s.train_images.n, s.train_labels.n);
    if (s.test_images.n != s.test_labels.n)
        die("%s/t10k-*: %ld images but %ld labels", dir, s.test_images.n, s.test_labels.n);
    return s;
}

static inline void free_fashion_splits(fashion_splits *s)
{
    free(s->train_images.data), free(s->train_labels.data);
    free(s->test_images.data), free(s->test_labels.data);
}

/* names[0..n-1], one a line, into <out>/<file> */
static inline void write_names(const char *out, const char *file, const char *const *names, int n)
{
    char path[4096], text[8192];
    size_t len = 0;
    for (int k = 0; k < n; ++k) len += snprintf(text + len, sizeof text - len, "%s\n", names[k]);
    snprintf(path, sizeof path, "%s/%s", out, file);
    write_text(path, text);
}

/* The canvas tools' command line: <dataset dir> [<out dir>] [--train N] [--valid N] [--seed S].
 * a holds the defaults; usage() does not return. */
typedef struct {
    const char *in, *out;
    long ntrain, nvalid, seed;
} canvas_args;

static inline void parse_canvas_args(canvas_args *a, int argc, char **argv, void (*usage)(void))
{
    int npos = 0;
    for (int i = 1; i < argc; ++i) {
        if (!strcmp(argv[i], "--train") && i + 1 < argc) a->ntrain = parse_count("--train", argv[++i], 1);
        else if (!strcmp(argv[i], "--valid") && i + 1 < argc) a->nvalid = parse_count("--valid", argv[++i], 1);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) a->seed = parse_count("--seed", argv[++i], 0);
        else if (argv[i][0] == '-' && argv[i][1]) usage();
        else if (npos == 0) a->in = argv[i], ++npos;
        else if (npos == 1) a->out = argv[i], ++npos;
        else usage();
    }
    if (!a->in) usage();
}

/* The canvas tools' draws: splitmix64 from a seed, and the source images in a shuffled order
 * (Fisher-Yates), reshuffled each time it is used up. */
typedef struct {
    uint64_t state;
    long *order, n, next;
} canvas_draws;

static inline long draw_below(canvas_draws *d, long n) { return (long)(splitmix64(&d->state) % (uint64_t)n); }

static inline canvas_draws canvas_draws_start(uint64_t state, long n)
{
    canvas_draws d = {state, malloc(n * sizeof(long)), n, n};
    if (!d.order) die("out of memory");
    return d;
}

static inline long draw_image(canvas_draws *d)
{
    if (d->next == d->n) {
        for (long k = 0; k < d->n; ++k) d->order[k] = k;
        for (long k = d->n - 1; k > 0; --k) {
            long j = draw_below(d, k + 1), t = d->order[k];
            d->order[k] = d->order[j];
            d->order[j] = t;
        }
        d->next = 0;
    }
    return d->order[d->next++];
}

#endif
