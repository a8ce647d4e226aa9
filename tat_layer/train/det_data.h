#ifndef DET_DATA_H
#define DET_DATA_H
/*
 * Detection data as Darknet's detector loader finds it: an image's label file by Darknet's
 * path rule, and its boxes (one line each: class x_center y_center width height, relative to
 * the image).
 */
#include <stddef.h>

/* The label file of an image (fill_truth_detection's rule: "images" and "JPEGImages" and "raw"
 * become "labels", .jpg .png .JPG .JPEG become .txt) into out; 0 when it does not fit. */
int train_detection_label_path(const char *image, char *out, size_t size);

#endif
