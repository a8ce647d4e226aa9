#ifndef TRAIN_UNLABELED_H
#define TRAIN_UNLABELED_H
/*
 * Images without labels for the distillation terms (`darknet distill classifier|segmenter
 * train` only). Two optional fields of the .data file:
 *   unlabeled=<list>            one image path a line, as train=
 *   unlabeled_fraction=<f>      0 < f <= 1, default 0.5: of every mini-batch of B images,
 *                               round(f * B) come from this list, the rest from train=
 * Each mini-batch of a load holds its B - k labelled images first, then its k unlabelled
 * ones, both drawn at random (the loader's rand(), seeded by -seed, per rank under MPI) and
 * augmented as the loop augments its images. An unlabelled image's truth is all zero: the
 * task loss ([softmax], the classifier's or the segmenter's spatial one) and its gradient
 * are zero for it, while the distillation terms, which read only the teacher, see it as any
 * other image. The task loss Darknet prints is the mean over all B images.
 * Plain `classifier train` and `segmenter train` refuse the fields (one line).
 */
#include "darknet.h"

typedef struct {
    char *list;      /* the unlabeled= file, or NULL: the fields are absent */
    char **paths;
    int m;           /* entries in the list */
    float fraction;
} train_unlabeled;

/* The fields of the .data file's options: absent -> u->list NULL. A missing or empty list, a
   fraction that is not a number in (0, 1], or unlabeled_fraction= without unlabeled= is one
   line naming the .data file and the field, exit 1. With read_paths the list is read. */
void train_unlabeled_read(list *options, const char *datacfg, int read_paths, train_unlabeled *u);
/* A plain training loop (`loop` train): the fields are refused with one line, exit 1. */
void train_unlabeled_refuse(list *options, const char *datacfg, const char *loop);
void train_unlabeled_free(train_unlabeled *u);

/* Unlabelled images in a mini-batch of n: round(fraction * n). */
int train_unlabeled_count(int n, float fraction);

/* One load of a.n images (whole mini-batches of `batch`) of a.type CLASSIFICATION_DATA or
   SEGMENTATION_DATA, each mini-batch mixed as above. masks: the segmenter's PNG mask rule
   (train_load_seg_masks) or NULL (Darknet's own mask files). */
data train_load_with_unlabeled(load_args a, int batch, const train_unlabeled *u, const char *masks,
                               const char *mask_ext);

/* The networks' non-spatial [softmax] layers (the classifier's task loss) leave an image whose
   truth is all zero out of the loss and the gradient, as the spatial one does per pixel. The
   task loss must come from [softmax] layers: any other layer with a cost (a [cost] layer, a
   softmax tree) is refused with one line naming the cfg, exit 1. */
void train_unlabeled_mask_task_loss(network *net);

#endif
