/* Segmentation pieces with known answers: IoU / pixel accuracy on hand-made masks, the ignore
 * label in the metrics and in [softmax] spatial=1, PNG mask decoding (gray, palette, errors),
 * the mask path rule, and image/mask alignment through the training loader's augmentation.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "darknet.h"
#include "seg_data.h"
#include "seg_metrics.h"
#include "softmax_layer.h"
#include "test_helpers.h"

static char dir[256];

/* PASS/FAIL through the shared reporter; `why` is a message, not a format */
static void check(int ok, const char *name, const char *why) { report(ok, name, "%s", why); }

static int near(double a, double b) { return fabs(a - b) < 1e-9; }

static void test_metrics(void)
{
    /* classes 0..2 (+ an unused class 3); the last pixel is ignored although predicted 2 */
    const uint8_t truth[] = {0, 0, 1, 1, 2, 255};
    const uint8_t pred[] = {0, 1, 1, 1, 0, 2};
    int64_t conf[16] = {0};
    double iou[4], miou;
    char why[256];
    long counted = tat_seg_confusion_add(conf, 4, truth, pred, 6);
    /* by hand: class 0: TP 1, FN 1 (0->1), FP 1 (2->0): 1/3; class 1: TP 2, FP 1: 2/3;
       class 2: TP 0, FN 1: 0; class 3: absent from both, no IoU. mIoU = 1/3, accuracy 3/5 */
    miou = tat_seg_iou(conf, 4, iou);
    snprintf(why, sizeof(why), "counted %ld, IoU %.4f %.4f %.4f %.4f, mIoU %.4f", counted, iou[0],
             iou[1], iou[2], iou[3], miou);
    check(counted == 5 && near(iou[0], 1. / 3) && near(iou[1], 2. / 3) && near(iou[2], 0) &&
              iou[3] == -1 && near(miou, 1. / 3),
          "seg_iou_known_answer", why);
    snprintf(why, sizeof(why), "pixel accuracy %.4f, want 0.6", tat_seg_pixel_accuracy(conf, 4));
    check(near(tat_seg_pixel_accuracy(conf, 4), 0.6), "seg_pixel_accuracy_known_answer", why);

    /* the ignored pixel must not count anywhere: the same data without it gives the same matrix */
    {
        int64_t conf2[16] = {0};
        tat_seg_confusion_add(conf2, 4, truth, pred, 5);
        check(!memcmp(conf, conf2, sizeof(conf)), "seg_ignore_pixels_not_counted",
              "the 255 pixel changed the confusion matrix");
    }
    /* perfect prediction: every present class 1, accuracy 1 */
    {
        int64_t c3[9] = {0};
        const uint8_t t[] = {2, 2, 0, 255, 0};
        double io[3];
        tat_seg_confusion_add(c3, 3, t, t, 5);
        check(near(tat_seg_iou(c3, 3, io), 1) && io[1] == -1 && near(tat_seg_pixel_accuracy(c3, 3), 1),
              "seg_iou_perfect", "perfect prediction did not give mIoU 1");
    }
    /* a label >= classes (not 255) is refused and nothing is added */
    {
        int64_t c2[4] = {0};
        const uint8_t t[] = {0, 2}, p[] = {0, 0};
        long r = tat_seg_confusion_add(c2, 2, t, p, 2);
        check(r == -1 && c2[0] == 0, "seg_bad_label_refused", "class 2 with classes=2 accepted");
        check(train_seg_find_bad_label(t, 2, 2) == 1 && train_seg_find_bad_label(truth, 6, 3) == -1,
              "train_seg_find_bad_label", "wrong index of the first bad label");
    }
}

/* [softmax] spatial=1 (the softmax spatial patch): per-pixel softmax over channels; the ignored pixel (all
   zero truth) has zero delta and loss; the loss is -sum log p(true class) over the others. */
static void test_softmax_spatial_ignore(void)
{
    enum { C = 3, W = 2, H = 2, B = 2, N = C * W * H };
    float input[B * N], truth[B * N] = {0}, delta_net[B * N] = {0};
    const int labels[B][W * H] = {{0, 1, 2, 255}, {2, 255, 1, 0}};
    network net = {0};
    layer l = make_softmax_layer(B, N, 1);
    int b, i, k, sums_ok = 1, ignore_ok = 1;
    double want = 0;
    char why[256];
    l.w = W;
    l.h = H;
    l.c = C;
    l.spatial = 1;
    l.temperature = 1; /* as parse_softmax sets it */
    srand(5);
    for (i = 0; i < B * N; ++i) input[i] = 4.f * rand() / RAND_MAX - 2.f;
    for (b = 0; b < B; ++b)
        for (i = 0; i < W * H; ++i)
            if (labels[b][i] != 255) truth[b * N + labels[b][i] * W * H + i] = 1;
    net.input = input;
    net.truth = truth;
    net.delta = delta_net;
    l.forward(l, net);
    for (b = 0; b < B; ++b)
        for (i = 0; i < W * H; ++i) {
            double s = 0, z = 0, m = -1e30;
            for (k = 0; k < C; ++k) s += l.output[b * N + k * W * H + i];
            if (fabs(s - 1) > 1e-5) sums_ok = 0;
            for (k = 0; k < C; ++k) m = fmax(m, input[b * N + k * W * H + i]);
            for (k = 0; k < C; ++k) z += exp(input[b * N + k * W * H + i] - m);
            if (labels[b][i] == 255) {
                for (k = 0; k < C; ++k)
                    if (l.delta[b * N + k * W * H + i] != 0) ignore_ok = 0;
            } else {
                want += -(input[b * N + labels[b][i] * W * H + i] - m - log(z));
            }
        }
    check(sums_ok, "softmax_spatial_per_pixel", "probabilities over channels do not sum to 1 per pixel");
    check(ignore_ok, "softmax_ignore_no_gradient", "an all-zero-truth pixel got a delta");
    snprintf(why, sizeof(why), "loss %f, want %f", l.cost[0], want);
    check(fabs(l.cost[0] - want) < 1e-4 * fabs(want), "softmax_ignore_no_loss", why);
    free_layer(l);
}

static int interlace = PNG_INTERLACE_NONE;

static void write_png(const char *path, int w, int h, int color, int depth, const uint8_t *pix)
{
    FILE *fp = fopen(path, "wb");
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, 0, 0, 0);
    png_infop info = png_create_info_struct(png);
    png_bytep *rows = malloc(h * sizeof(png_bytep));
    int y, ch = color == PNG_COLOR_TYPE_RGB ? 3 : 1;
    png_init_io(png, fp);
    png_set_IHDR(png, info, w, h, depth, color, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[256];
        int i;
        for (i = 0; i < 256; ++i) pal[i].red = pal[i].green = pal[i].blue = (png_byte)(255 - i);
        png_set_PLTE(png, info, pal, 1 << depth);
    }
    png_write_info(png, info);
    if (depth == 4) png_set_packing(png);
    if (interlace != PNG_INTERLACE_NONE) png_set_interlace_handling(png);
    for (y = 0; y < h; ++y) rows[y] = (png_bytep)(pix + (size_t)y * w * ch);
    png_write_image(png, rows);
    png_write_end(png, 0);
    png_destroy_write_struct(&png, &info);
    free(rows);
    fclose(fp);
}

static char *path_in(const char *name)
{
    static char paths[8][512];
    static int n;
    char *p = paths[n++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

static void test_png_masks(void)
{
    uint8_t pix[5 * 3], rgb[5 * 3 * 3] = {0};
    int i, w, h;
    char err[512], *p;
    uint8_t *m;
    for (i = 0; i < 15; ++i) pix[i] = i == 7 ? 255 : (uint8_t)(i % 4);

    p = path_in("gray.png");
    write_png(p, 5, 3, PNG_COLOR_TYPE_GRAY, 8, pix);
    m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
    check(m && w == 5 && h == 3 && !memcmp(m, pix, 15), "png_mask_gray", m ? "values differ" : err);
    free(m);

    /* palette: the raw indices are the classes (VOC), whatever colours the palette holds */
    p = path_in("palette.png");
    write_png(p, 5, 3, PNG_COLOR_TYPE_PALETTE, 8, pix);
    m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
    check(m && w == 5 && h == 3 && !memcmp(m, pix, 15), "png_mask_palette_indices",
          m ? "indices differ (colours returned?)" : err);
    free(m);

    {
        uint8_t small[15];
        for (i = 0; i < 15; ++i) small[i] = (uint8_t)(i % 16);
        p = path_in("palette4.png");
        write_png(p, 5, 3, PNG_COLOR_TYPE_PALETTE, 4, small);
        m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
        check(m && !memcmp(m, small, 15), "png_mask_palette_4bit", m ? "indices differ" : err);
        free(m);
    }

    {
        uint8_t big[13 * 11];
        for (i = 0; i < 13 * 11; ++i) big[i] = (uint8_t)(i * 7 % 251);
        interlace = PNG_INTERLACE_ADAM7;
        p = path_in("interlaced.png");
        write_png(p, 13, 11, PNG_COLOR_TYPE_GRAY, 8, big);
        interlace = PNG_INTERLACE_NONE;
        m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
        check(m && w == 13 && h == 11 && !memcmp(m, big, sizeof(big)), "png_mask_interlaced",
              m ? "values differ" : err);
        free(m);
    }

    p = path_in("rgb.png");
    write_png(p, 5, 3, PNG_COLOR_TYPE_RGB, 8, rgb);
    m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
    check(!m && strstr(err, "RGB"), "png_mask_rgb_refused", m ? "an RGB PNG was accepted" : err);
    free(m);

    /* truncated: the first 40 bytes of a valid PNG */
    {
        FILE *in = fopen(path_in("gray.png"), "rb"), *out = fopen(p = path_in("cut.png"), "wb");
        char buf[40];
        size_t got = fread(buf, 1, sizeof(buf), in);
        fwrite(buf, 1, got, out);
        fclose(in);
        fclose(out);
        m = train_seg_read_png_mask(p, &w, &h, err, sizeof(err));
        check(!m && strstr(err, "corrupt"), "png_mask_truncated_refused", m ? "accepted" : err);
        free(m);
    }
    m = train_seg_read_png_mask(path_in("missing.png"), &w, &h, err, sizeof(err));
    check(!m && strstr(err, "cannot open"), "png_mask_missing", m ? "accepted" : err);
}

static void test_mask_path(void)
{
    char out[512], err[256];
    int r = train_seg_mask_path("VOC2012/JPEGImages/2007_000032.jpg", "JPEGImages,SegmentationClass",
                          ".png", out, sizeof(out), err, sizeof(err));
    check(!r && !strcmp(out, "VOC2012/SegmentationClass/2007_000032.png"), "mask_path_voc", out);
    r = train_seg_mask_path("d.v1/images/a.b.jpg", "/images/,/masks/", ".png", out, sizeof(out), err,
                      sizeof(err));
    check(!r && !strcmp(out, "d.v1/masks/a.b.png"), "mask_path_dots", out);
    r = train_seg_mask_path("x/a.jpg", "/images/,/masks/", ".png", out, sizeof(out), err, sizeof(err));
    check(r == -1 && strstr(err, "not in the image path"), "mask_path_rule_not_matching", err);
    r = train_seg_mask_path("x/a.jpg", "nocomma", ".png", out, sizeof(out), err, sizeof(err));
    check(r == -1, "mask_path_rule_malformed", "accepted a rule without a comma");
}

/* The loader's augmentation: an image whose gray level encodes the class of each pixel
   (vertical stripes 0..3, 8 px wide, level (c+1)*50) and its mask. After crop/scale/flip
   (and rotation), wherever the bilinear image value is exactly a class level, the nearest-
   neighbour mask must hold that class: a flip or crop applied to one and not the other, or a
   blended mask, fails. With div > 1 a label stands for a div x div block: checked where both
   corners of the block hold the same pure level. Returns the fraction of labelled pixels whose image level agrees. */
static double augmented_agreement(float angle, int div, long *pure_mismatch, int *not_onehot)
{
    enum { S = 32, CLASSES = 4, N = 60 };
    uint8_t img[S * S], mask[S * S];
    char *paths[1];
    load_args a = {0};
    data d;
    int i, x, y, ow = S / div;
    long agree = 0, labelled = 0;
    for (y = 0; y < S; ++y)
        for (x = 0; x < S; ++x) {
            int c = x / 8;
            img[y * S + x] = (uint8_t)((c + 1) * 50);
            mask[y * S + x] = (uint8_t)c;
        }
    mkdir(path_in("images"), 0755);
    mkdir(path_in("masks"), 0755);
    write_png(path_in("images/stripes.png"), S, S, PNG_COLOR_TYPE_GRAY, 8, img);
    write_png(path_in("masks/stripes.png"), S, S, PNG_COLOR_TYPE_GRAY, 8, mask);
    paths[0] = path_in("images/stripes.png");
    a.paths = paths;
    a.n = N;
    a.m = 1;
    a.w = a.h = S;
    a.classes = CLASSES;
    a.min = S;
    a.max = S * 3 / 2;
    a.angle = angle;
    a.aspect = 1;
    a.exposure = a.saturation = 1;
    a.scale = div;
    srand(11);
    d = train_load_seg_masks(a, "/images/,/masks/", ".png");
    *pure_mismatch = 0;
    *not_onehot = 0;
    for (i = 0; i < N; ++i)
        for (y = 0; y < ow; ++y)
            for (x = 0; x < ow; ++x) {
                /* two opposite corners of the block (the same pixel when div = 1) */
                float v = d.X.vals[i][(y * div) * S + x * div] * 255; /* channel 0 */
                float v2 = d.X.vals[i][(y * div + div - 1) * S + x * div + div - 1] * 255;
                int c, label = -1, ones = 0;
                for (c = 0; c < CLASSES; ++c) {
                    float t = d.y.vals[i][c * ow * ow + y * ow + x];
                    if (t != 0 && t != 1) *not_onehot = 1;
                    if (t == 1) label = c, ++ones;
                }
                if (ones > 1) *not_onehot = 1;
                if (label < 0) continue;
                ++labelled;
                for (c = 0; c < CLASSES; ++c)
                    if (fabsf(v - (c + 1) * 50) < 0.05f && fabsf(v2 - (c + 1) * 50) < 0.05f) {
                        if (c == label) ++agree;
                        else ++*pure_mismatch;
                    }
            }
    free_data(d);
    return labelled ? (double)agree / labelled : 0;
}

static void test_augmentation_alignment(void)
{
    long mismatch;
    int not_onehot;
    char why[256];
    double f = augmented_agreement(0, 1, &mismatch, &not_onehot);
    snprintf(why, sizeof(why), "agreement %.3f, %ld pure-level mismatches, one-hot %s", f, mismatch,
             not_onehot ? "broken" : "ok");
    check(f > 0.75 && mismatch == 0 && !not_onehot, "augment_crop_flip_aligned", why);
    f = augmented_agreement(0, 2, &mismatch, &not_onehot);
    snprintf(why, sizeof(why), "agreement %.3f, %ld mismatches", f, mismatch);
    check(f > 0.75 && mismatch == 0 && !not_onehot, "augment_aligned_at_stride_2", why);
    /* rotation: blends with the black outside can mimic a darker level at the borders */
    f = augmented_agreement(20, 1, &mismatch, &not_onehot);
    snprintf(why, sizeof(why), "agreement %.3f, %ld mismatches", f, mismatch);
    check(f > 0.6 && mismatch < 0.01 * 60 * 32 * 32 && !not_onehot, "augment_rotation_aligned", why);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/test_seg.XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_metrics();
    test_softmax_spatial_ignore();
    test_png_masks();
    test_mask_path();
    test_augmentation_alignment();
    {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd)) {}
    }
    return test_exit_status();
}
