#ifndef TRAIN_STOP_H
#define TRAIN_STOP_H
/*
 * A clean stop of Darknet's training loops (classifier, segmenter) on SIGINT or SIGTERM: the
 * iteration under way finishes, the weights go to <backup>/<cfg name>.backup (atomically, as
 * every save), one line says how to resume, exit 0. Called from the loops (patch 0043).
 */
#include "darknet.h"

/* From now on the first SIGINT or SIGTERM asks for a stop; a second one kills as usual. */
void train_stop_on_signals(void);
/* After each iteration: if a stop was asked for, saves and exits 0. */
void train_stop_if_requested(network *net, const char *backup_directory, const char *base);

#endif
