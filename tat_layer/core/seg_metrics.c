#include "seg_metrics.h"

long tat_seg_confusion_add(int64_t *conf, int classes, const uint8_t *truth, const uint8_t *pred,
                       long n)
{
    long i, counted = 0;
    for (i = 0; i < n; ++i) {
        if (truth[i] == SEG_IGNORE) continue;
        if (truth[i] >= classes || pred[i] >= classes) return -1;
    }
    for (i = 0; i < n; ++i) {
        if (truth[i] == SEG_IGNORE) continue;
        ++conf[truth[i] * classes + pred[i]];
        ++counted;
    }
    return counted;
}

double tat_seg_iou(const int64_t *conf, int classes, double *iou)
{
    int c, k, present = 0;
    double sum = 0;
    for (c = 0; c < classes; ++c) {
        int64_t tp = conf[c * classes + c], row = 0, col = 0, uni;
        for (k = 0; k < classes; ++k) {
            row += conf[c * classes + k]; /* truth c */
            col += conf[k * classes + c]; /* predicted c */
        }
        uni = row + col - tp;
        if (uni == 0) {
            iou[c] = -1;
            continue;
        }
        iou[c] = (double)tp / (double)uni;
        sum += iou[c];
        ++present;
    }
    return present ? sum / present : 0;
}

double tat_seg_pixel_accuracy(const int64_t *conf, int classes)
{
    int64_t correct = 0, total = 0;
    int c, k;
    for (c = 0; c < classes; ++c)
        for (k = 0; k < classes; ++k) {
            total += conf[c * classes + k];
            if (c == k) correct += conf[c * classes + k];
        }
    return total ? (double)correct / (double)total : 0;
}
