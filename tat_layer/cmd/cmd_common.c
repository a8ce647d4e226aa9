/* What the `./darknet distill ...` subcommands share: the frozen teacher attached to every
   student network parsed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "distill_commands.h"
#include "distill_common.h"
#include "parser.h"
#include "plugin.h"
#include "teacher_inference.h"

static char *teacher_cfg, *teacher_weights;
static int teacher_batch = -1; /* >= 0 while the teacher itself is being parsed */
static int student_batch;      /* > 0: overrides the student cfg's batch */

/* An option given twice is refused as such: Darknet's readers would take the first and leave
   the second behind, to be reported as a missing value or an unknown option. */
static void refuse_repeated(int argc, char **argv, const char *name, const char *command)
{
    int i, count = 0;
    for (i = 0; i < argc && argv[i]; ++i) count += !strcmp(argv[i], name);
    if (count > 1) tat_fail("%s: %s given %d times: give it once", command, name, count);
}

int cmd_flag(int argc, char **argv, const char *name, const char *command)
{
    refuse_repeated(argc, argv, name, command);
    return find_arg(argc, argv, (char *)name);
}

char *cmd_option_value(int argc, char **argv, const char *name, const char *command)
{
    char *value;
    int i;
    refuse_repeated(argc, argv, name, command);
    value = find_char_arg(argc, argv, (char *)name, 0);
    /* Darknet's find_char_arg leaves a trailing option without its value in argv */
    for (i = 0; i < argc && argv[i]; ++i) {
        if (!strcmp(argv[i], name)) {
            tat_fail("%s: %s needs a value", command, name);
        }
    }
    return value;
}

/* Every float of a weights file after its header must be finite: a teacher holding NaN or Inf
   would make the student's distillation loss non-finite and the stop would name the student's
   section. The header: major, minor, revision (int32), then seen (size_t from version 0.2 on,
   as Darknet reads it). */
static void need_finite_weights(const char *path, const char *what)
{
    const char *kind;
    long at = train_weights_first_nonfinite(path, &kind);
    if (at < 0) {
        tat_fail("%s: cannot read %s", path, what);
    }
    if (at > 0) {
        tat_fail("%s: %s hold %s (the float at byte %ld): refusing to distill from them",
                path, what, kind, at);
    }
}

/* train_parse_network_hook: every student network parsed (one per GPU replica, on that replica's
   device) gets its own frozen teacher, batch for batch. */
static void attach_teacher(network *net)
{
    network *teacher;
    int loaded;
    if (teacher_batch >= 0) {
        net->batch = teacher_batch;
        return;
    }
    if (student_batch > 0) net->batch = student_batch;
    need_finite_weights(teacher_weights, "the teacher weights");
    fprintf(stderr, "teacher %s:\n", teacher_cfg);
    teacher_batch = net->batch;
    teacher = parse_network_cfg(teacher_cfg);
    teacher_batch = -1;
    loaded = load_weights(teacher, teacher_weights);
    if (loaded < teacher->n) {
        tat_fail("%s: holds weights for layers 0-%d only, the teacher %s has %d layers",
                teacher_weights, loaded - 1, teacher_cfg, teacher->n);
    }
    if (teacher->w != net->w || teacher->h != net->h || teacher->c != net->c) {
        tat_fail("%s: [net] input %d x %d x %d, but the student %s takes %d x %d x %d: both must see the same images",
                teacher_cfg, teacher->w, teacher->h, teacher->c, net->cfgfile, net->w, net->h, net->c);
    }
    /* it only ever predicts: BatchNorm folded, no backward buffers */
    train_teacher_for_inference(teacher);
    net->teacher = teacher;
    fprintf(stderr, "student %s:\n", net->cfgfile);
}

void cmd_attach_teacher(char *tcfg, char *tweights, int batch)
{
    teacher_cfg = tcfg;
    teacher_weights = tweights;
    student_batch = batch;
    train_parse_network_hook = attach_teacher;
}

network *cmd_parse_student_with_teacher(char *student_cfg, char *tcfg, char *tweights, int batch)
{
    network *net;
    cmd_attach_teacher(tcfg, tweights, batch);
    net = parse_network_cfg(student_cfg);
    train_parse_network_hook = 0;
    student_batch = 0;
    return net;
}
