/* Segmentation data: PNG class-index masks (Pascal VOC / COCOStuff layout), their path rule,
   and augmentation that moves the mask exactly with its image.

   Mask format: one 8-bit channel (grayscale, or palette whose indices are the classes, as
   VOC's SegmentationClass PNGs are), the same width and height as the image, value = class
   index 0..classes-1 or 255 = ignore (no loss, no metric).
   Path rule (.data file): masks=<from>,<to> and mask_ext=<.ext> (default .png): the mask of an
   image is the image path with its first <from> replaced by <to> and its extension replaced
   by <.ext>, e.g. masks=JPEGImages,SegmentationClass turns VOC2012/JPEGImages/x.jpg into
   VOC2012/SegmentationClass/x.png. */
#ifndef SEG_DATA_H
#define SEG_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "darknet.h"

/* The mask path of image_path under rule "<from>,<to>" and extension ext. Returns 0, or -1
   with a reason in err when the rule is malformed or <from> is not in the path. */
int train_seg_mask_path(const char *image_path, const char *rule, const char *ext, char *out,
                  size_t size, char *err, size_t err_size);

/* Reads an 8-bit single-channel PNG (grayscale or palette: raw indices). Returns a w*h array
   (free() it) or NULL with a reason in err. */
uint8_t *train_seg_read_png_mask(const char *path, int *w, int *h, char *err, size_t err_size);

/* Index of the first label that is >= classes and not SEG_IGNORE, or -1. */
long train_seg_find_bad_label(const uint8_t *labels, long n, int classes);

/* The label map seen through rotate_crop_image's geometry with the image's arguments (crop
   w x h), at 1/div of its resolution ((w/div) x (h/div) labels, each the label under the centre
   of its div x div block), sampled nearest-neighbour: a class is never blended. Positions
   outside the map get SEG_IGNORE. (Darknet's RLE path samples block corners, so its flipped
   masks are off by div-1 pixels.) */
void train_seg_rotate_crop_labels(const uint8_t *labels, int lw, int lh, float rad, float s, int w,
                            int h, float dx, float dy, float aspect, int div, uint8_t *out);

void train_seg_flip_labels(uint8_t *labels, int w, int h);

/* classes one-hot planes of w*h (out: classes*n floats); SEG_IGNORE -> all zero, which
   [softmax] spatial=1 leaves out of the loss. */
void train_seg_labels_to_onehot(const uint8_t *labels, long n, int classes, float *out);

/* Loads the mask of an image: checks it exists, decodes, has the image's size (iw x ih) and
   valid labels; otherwise NULL with one line naming the file in err. */
uint8_t *train_seg_load_mask(const char *image_path, const char *rule, const char *ext, int iw, int ih,
                       int classes, char *err, size_t err_size);
/* The same, with that line on stderr and exit(1) instead of NULL. */
uint8_t *train_seg_load_mask_or_exit(const char *image_path, const char *rule, const char *ext, int iw,
                               int ih, int classes);

/* SEGMENTATION_DATA with PNG masks found by the rule masks=<from>,<to> and mask_ext: the image
   is augmented as Darknet's load_data_seg does, the mask with the same crop, scale, rotation
   and flip at the output resolution (1/a.scale), nearest-neighbour. */
data train_load_seg_masks(load_args a, const char *masks, const char *mask_ext);

#endif
