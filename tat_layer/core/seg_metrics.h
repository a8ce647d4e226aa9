/* Segmentation metrics in pure C: a confusion matrix over class-index maps and the scores
   derived from it. No Darknet types; label maps are bytes, as PNG masks store them. */
#ifndef SEG_METRICS_H
#define SEG_METRICS_H

#include <stdint.h>

#define SEG_IGNORE 255 /* label of pixels left out of the loss and the metrics */

/* conf[t * classes + p] += 1 for every pixel i with truth[i] = t != SEG_IGNORE and
   pred[i] = p. Returns the number of pixels counted, or -1 when a truth or prediction is
   >= classes (and not SEG_IGNORE in the truth); then nothing is added. */
long tat_seg_confusion_add(int64_t *conf, int classes, const uint8_t *truth, const uint8_t *pred,
                       long n);

/* iou[c] = TP / (TP + FP + FN) of class c; -1 for a class absent from both the truth and the
   prediction (no union: it has no IoU and is left out of the mean). Returns the mean IoU over
   the classes that have one (0 if none). */
double tat_seg_iou(const int64_t *conf, int classes, double *iou);

/* Correct pixels / counted pixels (0 if none). */
double tat_seg_pixel_accuracy(const int64_t *conf, int classes);

#endif
