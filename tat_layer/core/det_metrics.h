#ifndef TAT_DET_METRICS_H
#define TAT_DET_METRICS_H
/*
 * Detection metrics over a set of images, pure math on raw arrays:
 * - AP at one IoU threshold for one class, VOC 2010+ rule: detections of the class sorted by
 *   score (equal scores keep their input order), each matched to the ground-truth box of its
 *   image and class with the highest IoU; IoU >= threshold and that box not yet taken: a true
 *   positive, else a false positive (a duplicate of a taken box is a false positive); AP is the
 *   area under the precision envelope at every recall step (all-point interpolation);
 * - COCO-style AP: the same matching at IoU 0.50, 0.55, ..., 0.95, each AP the mean of the
 *   precision envelope at the 101 recalls 0, 0.01, ..., 1 (as pycocotools samples it), averaged
 *   over the ten thresholds;
 * - recall: true positives at the threshold over the ground-truth boxes, all detections kept.
 * Boxes are corners (x1, y1, x2, y2) in any one unit, IoU on continuous coordinates (no +1).
 * A class without ground truth has no AP (excluded from the means, reported as absent).
 */
typedef struct {
    int image, cls;
    float score;          /* ignored for ground truth */
    float x1, y1, x2, y2;
} tat_det_box;

float tat_det_iou(const tat_det_box *a, const tat_det_box *b);

typedef struct {
    int ground_truth;     /* boxes of this class                     */
    int detections;       /* detections of this class                */
    double ap50;          /* AP at IoU 0.5, all-point (-1: no ground truth) */
    double ap50_95;       /* COCO-style AP over 0.5:0.95 (-1: no ground truth) */
    double recall50;      /* recall at IoU 0.5 (-1: no ground truth) */
} tat_det_class_metrics;

typedef struct {
    double map50, map50_95, recall50; /* means over the classes with ground truth (-1: none) */
    int classes_with_truth;
} tat_det_summary;

/* AP of class cls at IoU threshold `iou` with all-point (points = 0) or 101-point (points =
 * 101) interpolation; *recall gets the final recall. -1 (and *recall -1) when the class has no
 * ground truth. */
double tat_det_ap(const tat_det_box *dets, int ndets, const tat_det_box *truth, int ntruth,
                  int cls, float iou, int points, double *recall);

/* Every class 0..classes-1 into per_class (classes entries) and the summary. */
tat_det_summary tat_det_evaluate(const tat_det_box *dets, int ndets, const tat_det_box *truth,
                                 int ntruth, int classes, tat_det_class_metrics *per_class);

#endif
