#ifndef TRAIN_LOOP_H
#define TRAIN_LOOP_H
/*
 * What the plugin adds to Darknet's training loops (classifier, segmenter, detector).
 *
 * How the loops (classifier, segmenter; plain and distill alike) stop, checked
 * after every iteration (train_iteration_end, train/plugin.c):
 * - divergence: a non-finite task loss (the softmax's log is clamped, so only non-finite
 *   outputs give one) or non-finite weights (on the CPU): one line naming the cfg, the layer
 *   and the iteration, exit 1, backups untouched;
 * - SIGINT or SIGTERM: the iteration under way finishes, the weights go to
 *   <backup>/<cfg name>.backup (atomically, as every save), one line says how to resume, exit 0.
 */
#include "darknet.h"

/* From now on the first SIGINT or SIGTERM asks for a stop; a second one kills as usual. */
void train_stop_on_signals(void);
/* The signal (SIGINT, SIGTERM) that asked this process for a stop, 0 for none. */
int train_stop_requested(void);
/* After each iteration (after its progress line, before the loop's backups). */
void train_stop_check(network *net, const char *backup_directory, const char *base);

/* Grayscale networks (data_loaded, train/plugin.c): the loaders know colour only, so they load, augment and
 * jitter in colour, and a network with channels=1 gets the mean of the three planes (the image
 * itself for a gray file, which the loaders replicate). */
/* The channel count the loaders deliver for this network: 1 or 3; any other count is one line
 * naming the cfg, exit 1. */
int train_loader_channels(const network *net);
/* Each image row of X (3 planes of cols/3 floats) becomes its one-plane mean. */
void train_images_to_gray(matrix *X);

/* Checks at the start of a loop (train_start and train_loader, train/plugin.c), one line and exit 1 on the first problem, where
 * Darknet trained on an all-zero target: */
/* No line of a list (list_name) may be empty or blanks only: Darknet would try to open an image
 * named "" (or " ") when the loader draws it. Names the list and the line. */
void train_check_no_blank_paths(char **paths, int n, const char *list_name);

/* Darknet finds an image's class as the label that occurs in its path: every path of the train
 * list (list_name) must contain exactly one of the k labels. */
void train_check_labels(char **paths, int n, char **labels, int k, const char *list_name);
/* The segmenter learns per-pixel masks: a network whose output map is 1 x 1 (a classifier cfg)
 * is refused. */
void train_check_segmentation_map(const network *net, int out_w, int out_h);
/* The detector loop (YOLOv3): the last layer is a [yolo] layer (the loop reads classes, jitter
 * and max boxes from it), every [yolo] has its classes, and those of the .data file where given,
 * and no max= other than 90 (the truths are laid out for 90 boxes);
 * with a teacher attached no [yolo] asks for random=1 (resize_network cannot resize the
 * distillation layers and the teacher). */
void train_check_detector(const network *net, const char *datacfg);

#endif
