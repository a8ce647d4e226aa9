#include "seg_data.h"

#include <errno.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill_common.h"
#include "image.h"
#include "seg_metrics.h"

char **get_random_paths(char **paths, int n, int m);

int train_seg_mask_path(const char *image_path, const char *rule, const char *ext, char *out,
                  size_t size, char *err, size_t err_size)
{
    const char *comma = strchr(rule, ','), *at, *slash, *dot;
    char from[1024];
    size_t from_len, head, stem;
    if (!comma || comma == rule) {
        snprintf(err, err_size, "masks=%s: expected <from>,<to>", rule);
        return -1;
    }
    from_len = comma - rule;
    snprintf(from, sizeof(from), "%.*s", (int)from_len, rule);
    at = strstr(image_path, from);
    if (!at) {
        snprintf(err, err_size, "masks=%s: '%.*s' is not in the image path", rule, (int)from_len,
                 rule);
        return -1;
    }
    head = at - image_path;
    /* the extension: after the last '.' of the file name, if any */
    slash = strrchr(image_path, '/');
    dot = strrchr(slash ? slash : image_path, '.');
    stem = dot ? (size_t)(dot - image_path) : strlen(image_path);
    if (stem < head + from_len) stem = strlen(image_path); /* '.' inside <from>: keep all */
    if (snprintf(out, size, "%.*s%s%.*s%s", (int)head, image_path, comma + 1,
                 (int)(stem - head - from_len), image_path + head + from_len, ext) >= (int)size) {
        snprintf(err, err_size, "mask path too long");
        return -1;
    }
    return 0;
}

typedef struct {
    jmp_buf jump;
    char *err;
    size_t err_size;
} png_failure;

static void png_fail(png_structp png, png_const_charp msg)
{
    png_failure *f = png_get_error_ptr(png);
    snprintf(f->err, f->err_size, "corrupt PNG (%s)", msg);
    longjmp(f->jump, 1);
}

static void png_quiet_warning(png_structp png, png_const_charp msg)
{
    (void)png;
    (void)msg;
}

uint8_t *train_seg_read_png_mask(const char *path, int *w, int *h, char *err, size_t err_size)
{
    png_failure fail;
    png_structp png = 0;
    png_infop info = 0;
    uint8_t *volatile pixels = 0;
    png_bytep *volatile rows = 0;
    unsigned char sig[8];
    FILE *fp = fopen(path, "rb");
    int y, bit_depth, color;
    png_uint_32 pw, ph;
    if (!fp) {
        snprintf(err, err_size, "cannot open (%s)", strerror(errno));
        return 0;
    }
    if (fread(sig, 1, 8, fp) != 8 || png_sig_cmp(sig, 0, 8)) {
        fclose(fp);
        snprintf(err, err_size, "not a PNG file");
        return 0;
    }
    fail.err = err;
    fail.err_size = err_size;
    png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &fail, png_fail, png_quiet_warning);
    info = png ? png_create_info_struct(png) : 0;
    if (!info) {
        snprintf(err, err_size, "out of memory");
        if (png) png_destroy_read_struct(&png, 0, 0);
        fclose(fp);
        return 0;
    }
    if (setjmp(fail.jump)) {
        png_destroy_read_struct(&png, &info, 0);
        free(pixels);
        free(rows);
        fclose(fp);
        return 0;
    }
    png_init_io(png, fp);
    png_set_sig_bytes(png, 8);
    png_read_info(png, info);
    png_get_IHDR(png, info, &pw, &ph, &bit_depth, &color, 0, 0, 0);
    if ((color != PNG_COLOR_TYPE_GRAY && color != PNG_COLOR_TYPE_PALETTE) || bit_depth > 8) {
        snprintf(err, err_size,
                 "not a class-index mask: want one 8-bit channel (grayscale or palette), got %s%d bits",
                 color == PNG_COLOR_TYPE_RGB ? "RGB, " : color == PNG_COLOR_TYPE_RGB_ALPHA ? "RGBA, " :
                 color == PNG_COLOR_TYPE_GRAY_ALPHA ? "gray+alpha, " : "", bit_depth);
        png_destroy_read_struct(&png, &info, 0);
        fclose(fp);
        return 0;
    }
    if (pw == 0 || ph == 0 || pw > 65535 || ph > 65535) {
        snprintf(err, err_size, "implausible size %u x %u", (unsigned)pw, (unsigned)ph);
        png_destroy_read_struct(&png, &info, 0);
        fclose(fp);
        return 0;
    }
    /* palette and low-bit gray: unpack to one byte per pixel holding the raw index/value */
    if (bit_depth < 8) png_set_packing(png);
    png_set_interlace_handling(png); /* Adam7 files: all passes into the full rows */
    png_read_update_info(png, info);
    /* not tat_calloc: an image too large for memory is one more problem of that file, which
       `distill check` reports beside the others */
    pixels = malloc((size_t)pw * ph);
    rows = malloc(ph * sizeof(png_bytep));
    if (!pixels || !rows) {
        snprintf(err, err_size, "out of memory");
        longjmp(fail.jump, 1);
    }
    for (y = 0; y < (int)ph; ++y) rows[y] = pixels + (size_t)y * pw;
    png_read_image(png, rows);
    png_read_end(png, 0);
    png_destroy_read_struct(&png, &info, 0);
    free(rows);
    fclose(fp);
    *w = (int)pw;
    *h = (int)ph;
    return pixels;
}

long train_seg_find_bad_label(const uint8_t *labels, long n, int classes)
{
    long i;
    for (i = 0; i < n; ++i)
        if (labels[i] >= classes && labels[i] != SEG_IGNORE) return i;
    return -1;
}

void train_seg_rotate_crop_labels(const uint8_t *labels, int lw, int lh, float rad, float s, int w,
                            int h, float dx, float dy, float aspect, int div, uint8_t *out)
{
    /* the source coordinates rotate_crop_image computes for image pixel (xi, yi), taken at the
       centre of each div x div block, so that a flipped block is the mirror of a block */
    float cx = lw / 2., cy = lh / 2., c = cos(rad), sn = sin(rad), half = (div - 1) / 2.f;
    int x, y, ow = w / div, oh = h / div;
    for (y = 0; y < oh; ++y) {
        for (x = 0; x < ow; ++x) {
            float xi = x * div + half, yi = y * div + half;
            float u = (xi - w / 2.) / s * aspect + dx / s * aspect;
            float v = (yi - h / 2.) / s + dy / s;
            int rx = (int)floorf(c * u - sn * v + cx + .5f);
            int ry = (int)floorf(sn * u + c * v + cy + .5f);
            out[y * ow + x] = (rx < 0 || rx >= lw || ry < 0 || ry >= lh) ? SEG_IGNORE
                                                                           : labels[ry * lw + rx];
        }
    }
}

void train_seg_flip_labels(uint8_t *labels, int w, int h)
{
    int x, y;
    for (y = 0; y < h; ++y) {
        uint8_t *row = labels + (size_t)y * w;
        for (x = 0; x < w / 2; ++x) {
            uint8_t t = row[x];
            row[x] = row[w - 1 - x];
            row[w - 1 - x] = t;
        }
    }
}

void train_seg_labels_to_onehot(const uint8_t *labels, long n, int classes, float *out)
{
    long i;
    memset(out, 0, (size_t)n * classes * sizeof(float));
    for (i = 0; i < n; ++i)
        if (labels[i] < classes) out[labels[i] * n + i] = 1;
}

uint8_t *train_seg_load_mask(const char *image_path, const char *rule, const char *ext, int iw, int ih,
                       int classes, char *err, size_t err_size)
{
    char path[4096], why[512];
    int mw, mh;
    long bad;
    uint8_t *mask;
    if (train_seg_mask_path(image_path, rule, ext, path, sizeof(path), why, sizeof(why))) {
        snprintf(err, err_size, "%s: no mask path: %s", image_path, why);
        return 0;
    }
    mask = train_seg_read_png_mask(path, &mw, &mh, why, sizeof(why));
    if (!mask) {
        snprintf(err, err_size, "%s: mask of %s: %s", path, image_path, why);
        return 0;
    }
    if (mw != iw || mh != ih) {
        snprintf(err, err_size, "%s: mask is %d x %d, but its image %s is %d x %d", path, mw, mh,
                 image_path, iw, ih);
        free(mask);
        return 0;
    }
    bad = train_seg_find_bad_label(mask, (long)mw * mh, classes);
    if (bad >= 0) {
        snprintf(err, err_size, "%s: class %d at pixel (%ld, %ld), but classes=%d (255 = ignore)",
                 path, mask[bad], bad % mw, bad / mw, classes);
        free(mask);
        return 0;
    }
    return mask;
}

uint8_t *train_seg_load_mask_or_exit(const char *image_path, const char *rule, const char *ext, int iw,
                               int ih, int classes)
{
    char err[5000];
    uint8_t *mask = train_seg_load_mask(image_path, rule, ext, iw, ih, classes, err, sizeof(err));
    if (!mask) {
        tat_fail("%s", err);
    }
    return mask;
}

data train_load_seg_masks(load_args a, const char *masks, const char *mask_ext)
{
    char **paths = get_random_paths(a.paths, a.n, a.m);
    int div = a.scale > 0 ? a.scale : 1, ow = a.w / div, oh = a.h / div, i;
    uint8_t *crop = tat_calloc((size_t)ow * oh, 1);
    data d = {0};
    d.shallow = 0;
    d.X.rows = a.n;
    d.X.cols = a.h * a.w * 3;
    d.X.vals = tat_calloc(a.n, sizeof(float *));
    d.y.rows = a.n;
    d.y.cols = ow * oh * a.classes;
    d.y.vals = tat_calloc(a.n, sizeof(float *));
    for (i = 0; i < a.n; ++i) {
        image orig = load_image_color(paths[i], 0, 0);
        uint8_t *mask = train_seg_load_mask_or_exit(paths[i], masks, mask_ext, orig.w, orig.h,
                                              a.classes);
        augment_args g = random_augment_args(orig, a.angle, a.aspect, a.min, a.max, a.w, a.h);
        image sized = rotate_crop_image(orig, g.rad, g.scale, g.w, g.h, g.dx, g.dy, g.aspect);
        int flip = rand() % 2;
        if (flip) flip_image(sized);
        random_distort_image(sized, a.hue, a.saturation, a.exposure);
        d.X.vals[i] = sized.data;

        train_seg_rotate_crop_labels(mask, orig.w, orig.h, g.rad, g.scale, a.w, a.h, g.dx, g.dy,
                               g.aspect, div, crop);
        if (flip) train_seg_flip_labels(crop, ow, oh);
        d.y.vals[i] = tat_calloc(d.y.cols, sizeof(float));
        train_seg_labels_to_onehot(crop, (long)ow * oh, a.classes, d.y.vals[i]);
        free(mask);
        free_image(orig);
    }
    free(crop);
    free(paths);
    return d;
}
