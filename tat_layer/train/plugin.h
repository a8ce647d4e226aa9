#ifndef TRAIN_PLUGIN_H
#define TRAIN_PLUGIN_H
/*
 * The plugin's side of Darknet's plugin interface (struct darknet_plugin in darknet.h): the
 * layer types, the teacher run beside the student, input normalisation, the training-loop
 * checks and stops, segmentation masks, grayscale loading, distributed training and the
 * checked weights saves, each reached through one member of the table.
 */
#include "darknet.h"

/* Fills every member of the table but the commands (cmd/ adds those). Programs that parse
 * cfgs with the plugin's sections without Darknet's main (tests, benchmarks) call it first. */
void train_plugin_hooks(struct darknet_plugin *plugin);

/* Set by a command for the networks it parses: runs once a network's [net] section is read,
 * before any layer is built (a teacher is attached there, which the layers then see). */
extern void (*train_parse_network_hook)(network *net);
/* Set by a command: runs after each progress line of the training loops (the distillation
 * terms next to the task loss). */
extern void (*train_progress_hook)(network *net);
/* Set by a command whose loop uses the .data file's unlabeled= (train/unlabeled.h); the plain
 * loops leave it 0 and refuse the field. */
extern int train_unlabeled_allowed;

#endif
