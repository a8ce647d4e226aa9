/* Detection AP, VOC 2010+ and COCO-style (det_metrics.h). */
#include "det_metrics.h"

#include <stdlib.h>

#include "tat_fail.h"

float tat_det_iou(const tat_det_box *a, const tat_det_box *b)
{
    float w = (a->x2 < b->x2 ? a->x2 : b->x2) - (a->x1 > b->x1 ? a->x1 : b->x1);
    float h = (a->y2 < b->y2 ? a->y2 : b->y2) - (a->y1 > b->y1 ? a->y1 : b->y1);
    float inter, uni;
    if (w <= 0 || h <= 0) return 0;
    inter = w * h;
    uni = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - inter;
    return uni > 0 ? inter / uni : 0;
}

typedef struct {
    const tat_det_box *box;
    int order;
} ranked;

/* score descending; equal scores in input order (qsort is not stable) */
static int by_score(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->box->score != b->box->score) return a->box->score > b->box->score ? -1 : 1;
    return a->order - b->order;
}

double tat_det_ap(const tat_det_box *dets, int ndets, const tat_det_box *truth, int ntruth,
                  int cls, float iou, int points, double *recall)
{
    ranked *r = tat_calloc(ndets ? ndets : 1, sizeof(*r));
    int *taken = tat_calloc(ntruth ? ntruth : 1, sizeof(int));
    double *prec = tat_calloc(ndets + 2, sizeof(double)), *rec = tat_calloc(ndets + 2, sizeof(double));
    int n = 0, npos = 0, tp = 0, i, j;
    double ap = 0;
    for (j = 0; j < ntruth; ++j) npos += truth[j].cls == cls;
    if (!npos) {
        free(r), free(taken), free(prec), free(rec);
        *recall = -1;
        return -1;
    }
    for (i = 0; i < ndets; ++i)
        if (dets[i].cls == cls) r[n].box = &dets[i], r[n].order = i, ++n;
    qsort(r, n, sizeof(*r), by_score);
    for (i = 0; i < n; ++i) {
        float best = -1;
        int at = -1;
        for (j = 0; j < ntruth; ++j) {
            float o;
            if (truth[j].cls != cls || truth[j].image != r[i].box->image) continue;
            o = tat_det_iou(r[i].box, &truth[j]);
            if (o > best) best = o, at = j;
        }
        if (at >= 0 && best >= iou && !taken[at]) taken[at] = 1, ++tp;
        /* points 1..n; 0 and n + 1 are the sentinels of the envelope */
        prec[i + 1] = (double)tp / (i + 1);
        rec[i + 1] = (double)tp / npos;
    }
    *recall = (double)tp / npos;
    /* the envelope: precision at recall r is the best precision at any recall >= r */
    for (i = n - 1; i >= 1; --i)
        if (prec[i + 1] > prec[i]) prec[i] = prec[i + 1];
    if (points == 0) {
        for (i = 1; i <= n; ++i) ap += (rec[i] - rec[i - 1]) * prec[i];
    } else {
        int k;
        for (k = 0, i = 1; k < points; ++k) {
            double level = (double)k / (points - 1);
            /* rounding-robust: the first point whose recall reaches the level */
            while (i <= n && rec[i] < level - 1e-12) ++i;
            if (i <= n) ap += prec[i];
        }
        ap /= points;
    }
    free(r), free(taken), free(prec), free(rec);
    return ap;
}

tat_det_summary tat_det_evaluate(const tat_det_box *dets, int ndets, const tat_det_box *truth,
                                 int ntruth, int classes, tat_det_class_metrics *per_class)
{
    tat_det_summary s = {0, 0, 0, 0};
    int c, i, t;
    for (c = 0; c < classes; ++c) {
        tat_det_class_metrics *m = &per_class[c];
        double sum = 0, unused;
        m->ground_truth = m->detections = 0;
        for (i = 0; i < ntruth; ++i) m->ground_truth += truth[i].cls == c;
        for (i = 0; i < ndets; ++i) m->detections += dets[i].cls == c;
        m->ap50 = tat_det_ap(dets, ndets, truth, ntruth, c, .5f, 0, &m->recall50);
        if (m->ap50 < 0) {
            m->ap50_95 = -1;
            continue;
        }
        for (t = 0; t < 10; ++t) sum += tat_det_ap(dets, ndets, truth, ntruth, c, .5f + .05f * t, 101, &unused);
        m->ap50_95 = sum / 10;
        s.map50 += m->ap50;
        s.map50_95 += m->ap50_95;
        s.recall50 += m->recall50;
        ++s.classes_with_truth;
    }
    if (s.classes_with_truth) {
        s.map50 /= s.classes_with_truth;
        s.map50_95 /= s.classes_with_truth;
        s.recall50 /= s.classes_with_truth;
    } else {
        s.map50 = s.map50_95 = s.recall50 = -1;
    }
    return s;
}
