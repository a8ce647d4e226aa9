#ifndef TAT_YOLO_KD_H
#define TAT_YOLO_KD_H
/*
 * Detection KD on YOLOv3 outputs: objectness-scaled distillation (Mehta and Ozturk, "Object
 * detection at 200 Frames Per Second", ECCV 2018 workshops, arXiv 1805.06361). Per anchor and
 * cell, with the teacher's objectness o_T and class probabilities p_T (its [yolo] outputs) and
 * the student's logits z (the convolution feeding its [yolo]):
 *
 *   term = KL(o_T || sigmoid(z_obj)) + o_T * sum_c KL(p_T,c || sigmoid(z_c))
 *
 * with KL the binary relative entropy (YOLOv3's logistic cross-entropy minus the target's
 * entropy: the same gradient, and 0 at a perfect match). The class term counts only where the
 * teacher sees an object; the box coordinates are not distilled.
 *
 * Layout: Darknet's [yolo] map, per image `anchors` blocks of (4 + 1 + classes) planes of
 * `cells` floats: box x, y, w, h, objectness, classes.
 */
#include <stddef.h>

/* The floats per image of that layout. */
size_t tat_yolo_kd_outputs(int anchors, int classes, int cells);
/* Sum of the terms over every anchor, cell and image of the batch. */
double tat_yolo_kd_loss(const float *student_logits, const float *teacher_probs, int batch,
                        int anchors, int classes, int cells);
/* grad += scale * d(sum of terms) / d(student_logits): (sigmoid(z) - o_T) for objectness and
 * o_T * (sigmoid(z_c) - p_T,c) for each class; the box planes get nothing. */
void tat_yolo_kd_backward(float *grad, const float *student_logits, const float *teacher_probs,
                          int batch, int anchors, int classes, int cells, float scale);

#endif
