#ifndef CMD_DISTILL_H
#define CMD_DISTILL_H
/* Shared by the `./darknet distill ...` command files (tat_layer/cmd_*.c). */
#include "darknet.h"

/* Exits with one line naming the file when it cannot be read. */
void need_readable(const char *path, const char *what);
/* Parses the student cfg with its frozen teacher (cfg + weights, all layers checked) attached,
 * as `distill ... train` does, both with the given batch. */
network *parse_student_with_teacher(char *student_cfg, char *teacher_cfg, char *teacher_weights,
                                    int batch);
void run_distill_attention(int argc, char **argv);

#endif
