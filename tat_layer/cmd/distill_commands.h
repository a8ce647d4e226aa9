#ifndef DISTILL_COMMANDS_H
#define DISTILL_COMMANDS_H
/*
 * `./darknet distill ...`: the subcommand entry points (the .c files of tat_layer/cmd, linked
 * into the executable only) and what they share (cmd_common.c).
 */
#include "darknet.h"
#include "input_checks.h"

/* ---- subcommands -------------------------------------------------------------------------- */
/* darknet distill ... (run_command of the plugin interface, cmd/plugin_main.c); dispatches to the others */
void cmd_distill(int argc, char **argv);
/* darknet distill segmenter valid|test|demo ... (cmd_segment.c) */
void cmd_segmenter(int argc, char **argv);
/* darknet distill attention ... (cmd_attention.c) */
void cmd_attention(int argc, char **argv);
/* darknet distill detector map|test|valid|... (cmd_detect.c; train is cmd_distill.c's) */
void cmd_detector(int argc, char **argv);
/* darknet distill check <data> [cfg] (cmd_check.c) */
void cmd_check(int argc, char **argv);
/* Before Darknet's classifier validations (argv as `darknet classifier valid <data> <cfg>
 * <weights>`; any other command returns at once): the weights are given and readable, and the
 * .data file holds what they read (train_check_valid_data). (cmd_valid.c) */
void cmd_check_classifier_validation(int argc, char **argv);
/* Exit 1 after the usage of a subcommand on one line of stderr, or, for NULL, every form of
 * every subcommand. */
void cmd_usage(const char *prog, const char *subcommand) __attribute__((noreturn));

/* ---- shared by the subcommands (cmd_common.c) --------------------------------------------- */
/* The value of option `name` (removed from argv with it), or NULL when absent; exits with
 * "<command>: <name> needs a value" when it is the last argument. */
char *cmd_option_value(int argc, char **argv, const char *name, const char *command);
/* 1 when the flag `name` is given (removed from argv), 0 when not; an option given twice
 * (either kind) exits with "<command>: <name> given N times". */
int cmd_flag(int argc, char **argv, const char *name, const char *command);
/* From now on every student network parsed (one per GPU replica in training) gets its own
 * frozen teacher (cfg + weights, all layers checked), parsed with the student's batch;
 * student_batch > 0 overrides the student cfg's batch. */
void cmd_attach_teacher(char *teacher_cfg, char *teacher_weights, int student_batch);
/* Parses the student cfg with its teacher attached, both with the given batch. */
network *cmd_parse_student_with_teacher(char *student_cfg, char *teacher_cfg, char *teacher_weights,
                                    int batch);

/* ---- Darknet's example programs (its examples directory has no header) ---------------------- */
void train_classifier(char *datacfg, char *cfgfile, char *weightfile, int *gpus, int ngpus, int clear);
void run_classifier(int argc, char **argv);
void train_segmenter(char *datacfg, char *cfgfile, char *weightfile, int *gpus, int ngpus, int clear,
                     int display);
void run_segmenter(int argc, char **argv);
void train_detector(char *datacfg, char *cfgfile, char *weightfile, int *gpus, int ngpus, int clear);
void run_detector(int argc, char **argv);
/* stb_image_write, compiled into Darknet's image.c; called directly to see its status */
int stbi_write_png(char const *filename, int w, int h, int comp, const void *data, int stride_in_bytes);
/* stb_image, compiled into Darknet's image.c: decoding without Darknet's exit on failure */
unsigned char *stbi_load(char const *filename, int *x, int *y, int *comp, int req_comp);
const char *stbi_failure_reason(void);
void stbi_image_free(void *retval_from_stbi_load);

#endif
