/* Objectness-scaled detection KD on YOLOv3 outputs (yolo_kd.h). */
#include "yolo_kd.h"

#include <math.h>

#define OBJ_PLANE 4
#define CLASS_PLANE 5

size_t tat_yolo_kd_outputs(int anchors, int classes, int cells)
{
    return (size_t)anchors * (CLASS_PLANE + classes) * cells;
}

static double sigmoid(double z) { return 1 / (1 + exp(-z)); }

/* t log t + (1 - t) log(1 - t), with 0 log 0 = 0 */
static double neg_entropy(double t)
{
    double h = 0;
    if (t > 0) h += t * log(t);
    if (t < 1) h += (1 - t) * log(1 - t);
    return h;
}

/* KL(t || sigmoid(z)) = softplus(z) - t z + t log t + (1 - t) log(1 - t), overflow-free */
static double binary_kl(double t, double z)
{
    double softplus = z > 0 ? z + log1p(exp(-z)) : log1p(exp(z));
    double kl = softplus - t * z + neg_entropy(t);
    return kl > 0 ? kl : 0;
}

static double clamp01(float t) { return t < 0 ? 0 : t > 1 ? 1 : t; }

double tat_yolo_kd_loss(const float *s, const float *t, int batch, int anchors, int classes,
                        int cells)
{
    size_t per_anchor = (size_t)(CLASS_PLANE + classes) * cells;
    double sum = 0;
    int b, a, c, i;
    for (b = 0; b < batch; ++b)
        for (a = 0; a < anchors; ++a) {
            size_t base = (size_t)b * anchors * per_anchor + (size_t)a * per_anchor;
            for (i = 0; i < cells; ++i) {
                size_t obj = base + (size_t)OBJ_PLANE * cells + i;
                double o_t = clamp01(t[obj]), cls = 0;
                for (c = 0; c < classes; ++c) {
                    size_t k = base + (size_t)(CLASS_PLANE + c) * cells + i;
                    cls += binary_kl(clamp01(t[k]), s[k]);
                }
                sum += binary_kl(o_t, s[obj]) + o_t * cls;
            }
        }
    return sum;
}

void tat_yolo_kd_backward(float *grad, const float *s, const float *t, int batch, int anchors,
                          int classes, int cells, float scale)
{
    size_t per_anchor = (size_t)(CLASS_PLANE + classes) * cells;
    int b, a, c, i;
    for (b = 0; b < batch; ++b)
        for (a = 0; a < anchors; ++a) {
            size_t base = (size_t)b * anchors * per_anchor + (size_t)a * per_anchor;
            for (i = 0; i < cells; ++i) {
                size_t obj = base + (size_t)OBJ_PLANE * cells + i;
                double o_t = clamp01(t[obj]);
                grad[obj] += (float)(scale * (sigmoid(s[obj]) - o_t));
                for (c = 0; c < classes; ++c) {
                    size_t k = base + (size_t)(CLASS_PLANE + c) * cells + i;
                    grad[k] += (float)(scale * o_t * (sigmoid(s[k]) - clamp01(t[k])));
                }
            }
        }
}
