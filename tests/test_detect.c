/* Detection pieces: the objectness-scaled KD term on [yolo] outputs (its gradient by finite
 * differences on an odd shape, zero at a perfect match, the box planes untouched) and the
 * detection metrics (hand-computed fixtures: no detections, a class without ground truth,
 * duplicate detections, tied scores, the IoU thresholds of the COCO average; and a random
 * set against the independent Python reference tests/reference/det_map_reference.py).
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "det_metrics.h"
#include "test_helpers.h"
#include "yolo_kd.h"

/* ---- the KD term --------------------------------------------------------------------------- */
typedef struct {
    float *s, *t;
    int batch, anchors, classes, cells;
} kd_case;

static double kd_loss_of(void *ctx)
{
    kd_case *c = ctx;
    return tat_yolo_kd_loss(c->s, c->t, c->batch, c->anchors, c->classes, c->cells);
}

static void test_yolo_kd(void)
{
    /* odd everywhere: 3 images, 3 anchors, 5 classes, a 3 x 5 map */
    kd_case c = {0, 0, 3, 3, 5, 15};
    size_t n = tat_yolo_kd_outputs(c.anchors, c.classes, c.cells) * c.batch, i;
    float *g = calloc(n, sizeof(float));
    double loss;
    int box_untouched = 1, a, b, p;
    c.s = rand_array(n, 3);
    c.t = test_alloc(n * sizeof(float));
    fill_uniform(c.t, n, 0, 1);
    tat_yolo_kd_backward(g, c.s, c.t, c.batch, c.anchors, c.classes, c.cells, 1);
    check_fd("yolo_kd_gradient_fd", c.s, n, g, kd_loss_of, &c, 0, 1e-3, 8, 2e-3);
    for (b = 0; b < c.batch; ++b)
        for (a = 0; a < c.anchors; ++a)
            for (p = 0; p < 4; ++p)
                for (i = 0; i < (size_t)c.cells; ++i)
                    if (g[((size_t)(b * c.anchors + a) * (5 + c.classes) + p) * c.cells + i] != 0) box_untouched = 0;
    report(box_untouched, "yolo_kd_box_planes_no_gradient", "a box plane got a gradient");

    /* the teacher = the student's own sigmoids: the term is 0 (up to rounding) */
    for (i = 0; i < n; ++i) c.t[i] = 1 / (1 + expf(-c.s[i]));
    loss = kd_loss_of(&c);
    report(fabs(loss) < 1e-4, "yolo_kd_zero_at_match", "loss %g at a perfect match", loss);

    /* the class term is weighted by the teacher's objectness: with o_T = 0 only objectness counts */
    {
        kd_case one = {0, 0, 1, 1, 2, 1};
        float s[7] = {0, 0, 0, 0, 0, 2, -1}, t[7] = {0, 0, 0, 0, 0, .9f, .1f};
        double want = log1p(exp(0.0)); /* KL(0 || sigmoid(0)) = log 2 */
        one.s = s, one.t = t;
        loss = kd_loss_of(&one);
        report(fabs(loss - want) < 1e-6, "yolo_kd_classes_weighted_by_teacher_objectness",
               "loss %.9f, want %.9f (objectness only)", loss, want);
    }
    free(g);
    free(c.s);
    free(c.t);
}

/* ---- the metrics --------------------------------------------------------------------------- */
static tat_det_box box(int image, int cls, float score, float x1, float y1, float x2, float y2)
{
    tat_det_box b = {image, cls, score, x1, y1, x2, y2};
    return b;
}

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

static void test_metrics_by_hand(void)
{
    double recall, ap;
    tat_det_class_metrics m[3];
    tat_det_summary s;
    /* no detections: AP 0, recall 0 */
    {
        tat_det_box gt[2] = {box(0, 0, 0, 0, 0, 10, 10), box(1, 0, 0, 5, 5, 9, 9)};
        ap = tat_det_ap(0, 0, gt, 2, 0, .5f, 0, &recall);
        report(ap == 0 && recall == 0, "det_ap_no_detections", "AP %g recall %g, want 0 0", ap, recall);
    }
    /* duplicates: image 0's box found twice (second a false positive), image 1's once.
       precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1; envelope 1, 2/3, 2/3:
       all-point AP = 1/2 * 1 + 1/2 * 2/3 = 5/6; 101-point: 51 levels at 1, 50 at 2/3 */
    {
        tat_det_box gt[2] = {box(0, 0, 0, 0, 0, 10, 10), box(1, 0, 0, 2, 2, 8, 8)};
        tat_det_box d[3] = {box(0, 0, .9f, 0, 0, 10, 10), box(0, 0, .8f, 0, 0, 10, 10),
                            box(1, 0, .7f, 2, 2, 8, 8)};
        ap = tat_det_ap(d, 3, gt, 2, 0, .5f, 0, &recall);
        report(near(ap, 5. / 6) && near(recall, 1), "det_ap_duplicates_all_point", "AP %.9f recall %g, want 5/6 1", ap, recall);
        ap = tat_det_ap(d, 3, gt, 2, 0, .5f, 101, &recall);
        report(near(ap, (51 + 50 * 2. / 3) / 101), "det_ap_duplicates_101_point", "AP %.9f, want %.9f", ap,
               (51 + 50 * 2. / 3) / 101);
    }
    /* tied scores keep their input order: a miss listed first halves the AP */
    {
        tat_det_box gt[1] = {box(0, 0, 0, 0, 0, 10, 10)};
        tat_det_box miss_first[2] = {box(1, 0, .5f, 0, 0, 10, 10), box(0, 0, .5f, 0, 0, 10, 10)};
        tat_det_box hit_first[2] = {box(0, 0, .5f, 0, 0, 10, 10), box(1, 0, .5f, 0, 0, 10, 10)};
        double a1 = tat_det_ap(miss_first, 2, gt, 1, 0, .5f, 0, &recall);
        double a2 = tat_det_ap(hit_first, 2, gt, 1, 0, .5f, 0, &recall);
        report(near(a1, .5) && near(a2, 1), "det_ap_ties_input_order", "AP %g and %g, want 0.5 and 1", a1, a2);
    }
    /* IoU 0.62: a match at 0.50, 0.55, 0.60 only: COCO-style AP 3/10; a class without ground
       truth (1, detected) has no AP and stays out of the means; class 2 has neither */
    {
        tat_det_box gt[1] = {box(0, 0, 0, 0, 0, 10, 10)};
        tat_det_box d[2] = {box(0, 0, .9f, 0, 0, 10, 6.2f), box(0, 1, .8f, 0, 0, 10, 10)};
        s = tat_det_evaluate(d, 2, gt, 1, 3, m);
        report(near(m[0].ap50, 1) && near(m[0].ap50_95, .3) && m[1].ap50 == -1 && m[1].ap50_95 == -1 &&
                   m[1].detections == 1 && m[2].ap50 == -1 && s.classes_with_truth == 1 &&
                   near(s.map50, 1) && near(s.map50_95, .3) && near(s.recall50, 1),
               "det_evaluate_thresholds_and_absent_classes",
               "class 0 AP %g / %g, class 1 %g, classes with truth %d, mAP %g / %g",
               m[0].ap50, m[0].ap50_95, m[1].ap50, s.classes_with_truth, s.map50, s.map50_95);
    }
}

/* a random set with tied scores, misses, duplicates and a class without ground truth, against
   the Python reference */
static void test_metrics_against_reference(void)
{
    enum { NGT = 24, NDET = 70, CLASSES = 4 };
    tat_det_box gt[NGT], d[NDET];
    tat_det_class_metrics m[CLASSES];
    tat_det_summary s;
    char dir[] = "/tmp/test_detect_XXXXXX", path[128], cmd[512], line[256];
    FILE *fp;
    int i, worst_ok = 1, lines = 0;
    double worst = 0;
    if (!mkdtemp(dir)) {
        report(0, "det_metrics_vs_reference", "mkdtemp failed");
        return;
    }
    for (i = 0; i < NGT; ++i) {
        float x = (float)(rng_uniform() * 80), y = (float)(rng_uniform() * 80);
        float w = (float)(8 + rng_uniform() * 20), h = (float)(8 + rng_uniform() * 20);
        gt[i] = box((int)(rng_uniform() * 5), (int)(rng_uniform() * 3), 0, x, y, x + w, y + h);
    }
    for (i = 0; i < NDET; ++i) {
        const tat_det_box *g = &gt[(int)(rng_uniform() * NGT)];
        float j = (float)(rng_uniform() * 8 - 4);
        d[i] = *g;
        d[i].score = (float)((int)(rng_uniform() * 10)) / 10; /* many ties */
        d[i].x1 += j, d[i].x2 += (float)(rng_uniform() * 8 - 4), d[i].y2 += j;
        if (rng_uniform() < .2) d[i].cls = 3;                 /* no ground truth for class 3 */
        if (rng_uniform() < .15) d[i].image = (d[i].image + 1) % 5; /* a miss */
    }
    snprintf(path, sizeof(path), "%s/boxes.txt", dir);
    fp = fopen(path, "w");
    for (i = 0; i < NGT; ++i)
        fprintf(fp, "gt %d %d %.9g %.9g %.9g %.9g\n", gt[i].image, gt[i].cls, gt[i].x1, gt[i].y1, gt[i].x2, gt[i].y2);
    for (i = 0; i < NDET; ++i)
        fprintf(fp, "det %d %d %.9g %.9g %.9g %.9g %.9g\n", d[i].image, d[i].cls, d[i].score, d[i].x1,
                d[i].y1, d[i].x2, d[i].y2);
    fclose(fp);
    s = tat_det_evaluate(d, NDET, gt, NGT, CLASSES, m);
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 tests/reference/det_map_reference.py '%s'", path);
    fp = popen(cmd, "r");
    while (fp && fgets(line, sizeof(line), fp)) {
        int c;
        double a, b, r;
        if (sscanf(line, "class %d %lf %lf %lf", &c, &a, &b, &r) == 4 && c >= 0 && c < CLASSES) {
            double e = fmax(fabs(a - m[c].ap50), fmax(fabs(b - m[c].ap50_95), fabs(r - m[c].recall50)));
            worst = fmax(worst, e);
            ++lines;
        } else if (sscanf(line, "class %d none", &c) == 1 && c >= 0 && c < CLASSES) {
            worst_ok &= m[c].ap50 == -1;
            ++lines;
        } else if (sscanf(line, "map %lf %lf %lf", &a, &b, &r) == 3) {
            worst = fmax(worst, fmax(fabs(a - s.map50), fmax(fabs(b - s.map50_95), fabs(r - s.recall50))));
            ++lines;
        }
    }
    if (fp) pclose(fp);
    report(lines == CLASSES + 1 && worst_ok && worst < 1e-6 && s.map50 > 0 && s.map50 < 1,
           "det_metrics_vs_reference", "%d lines of %d, worst difference %g, mAP@0.5 %g", lines,
           CLASSES + 1, worst, s.map50);
    printf("INFO det_metrics_vs_reference: mAP@0.5 %.6f, AP 0.5:0.95 %.6f, worst difference %.3g\n",
           s.map50, s.map50_95, worst);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    test_yolo_kd();
    test_metrics_by_hand();
    test_metrics_against_reference();
    return test_exit_status();
}
