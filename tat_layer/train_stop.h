#ifndef TRAIN_STOP_H
#define TRAIN_STOP_H
/*
 * How Darknet's training loops (classifier, segmenter; plain and distill alike) stop, checked
 * after every iteration (patch 0043):
 * - a non-finite task loss (the softmax's log is clamped, so only non-finite outputs give one):
 *   one line naming the cfg, the layer and the iteration, exit 1, backups untouched;
 * - SIGINT or SIGTERM: the iteration under way finishes, the weights go to
 *   <backup>/<cfg name>.backup (atomically, as every save), one line says how to resume, exit 0.
 */
#include "darknet.h"

/* From now on the first SIGINT or SIGTERM asks for a stop; a second one kills as usual. */
void train_stop_on_signals(void);
/* After each iteration (after its progress line, before the loop's backups). */
void train_stop_check(network *net, const char *backup_directory, const char *base);

#endif
