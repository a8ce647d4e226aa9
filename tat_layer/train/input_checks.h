#ifndef INPUT_CHECKS_H
#define INPUT_CHECKS_H
/*
 * Checks of what a user hands the commands (files, directories, the .data file), made before
 * any work starts: each failure is one line on stderr naming the file and the field, exit 1.
 * Library code: Darknet's classifier loop calls train_check_data (train_start, train/plugin.c), the
 * `darknet distill` commands the rest.
 */
#include "darknet.h"

/* The longest path Darknet's training loops format into their 256-byte buffers. */
#define DARKNET_PATH_BUFFER 256

/* Exits unless path is a regular file that can be opened for reading (a directory or a
   device such as /dev/zero is refused by name). what: e.g. "the teacher weights". */
void train_need_readable(const char *path, const char *what);

/* Exits unless a file can be created in dir (a probe file is created and removed), with
   "<who>: cannot create a file in <dir>: <reason>"; who names where dir came from
   (e.g. "x.data: backup"). */
void train_need_writable_dir(const char *dir, const char *who);

/* The directory part of path ("." when it has none), in a buffer the caller frees. */
char *train_dir_of(const char *path);

/* 1 when a and b name the same file: the same inode when both exist, else the same
   canonical path (symbolic links and ./ resolved in the directory part). */
int train_same_file(const char *a, const char *b);

/* One file or folder a command reads, for train_refuse_output: its path and what it is
   ("the student weights", "the mask folder"). */
typedef struct {
    const char *path, *what;
} train_input;

/* The one check of a path a command is about to write, made before anything is written. Exits
   with one line naming path when it is the same file as one of inputs[0..n) (train_same_file),
   or lies directly in one of them that is a folder (an image or mask folder the data lives in).
   named_by_user: the user gave this exact path as an output (it may replace a file of theirs
   that is no input); 0 for a name the command makes up (e.g. <-out folder>/<image>.png): a file
   already there was not created by this command and is refused too. what: e.g. "the output
   PNG"; who: the command, for the message. */
void train_refuse_output(const char *path, const char *what, const train_input *inputs, int n,
                         int named_by_user, const char *who);

/* A temporary name beside path for an atomic write (write it, then rename it over path):
   "<path>.<pid>-<random>.tmp", so that two processes writing the same path never share one
   and a user's own "<path>.tmp" is never touched. The caller frees it. */
char *train_temp_path(const char *path);

/* Exits unless the .data file is a regular text file of key=value lines (Darknet's reader
   skips any other line and falls back on its defaults). */
void train_check_data_file(const char *datacfg);

/* The file that field names in the .data file's options (or def when the field is absent;
   none when def is NULL) must be readable; returns its name (NULL: absent, no default). */
char *train_need_field_file(list *options, const char *datacfg, const char *field, const char *def);

/* The .data file is checked (train_check_data_file) and every file its fields train=, valid=,
   labels=, names=, tree=, map= name, where given, must be readable. */
void train_check_data_field_files(const char *datacfg);

/* Lines in a text file, counted as Darknet's get_paths counts them (a label or path each). */
int train_count_lines(const char *path);

/* Frees what Darknet's read_data_cfg returned (its keys own the lines). */
void train_free_data_options(list *options);

/* The training loops' start-up check of the .data file: the files its fields name can be
   read (train; for a classifier labels, and tree), the labels count equals classes, the
   backup directory can be written and its paths fit Darknet's buffers for this cfg's name;
   with net, classes must equal the network's outputs per image (classifier). segmentation:
   the segmenter's fields. */
void train_check_data(const char *datacfg, const char *cfgfile, const network *net,
                         int segmentation);

/* What Darknet's classifier validations (valid, validmulti, valid10, validcrop, validfull)
   read from the .data file, checked before they run: classes >= 1, top in 1..classes, a
   labels file of classes lines, a readable, non-empty valid list (Darknet's defaults where
   absent) whose every path holds exactly one label. */
void train_check_valid_data(const char *datacfg);

/* The names of every file a training run with cfgfile and datacfg may write: 1 when path is
   one of them (<backup>/<cfg name>.weights, .backup, _<N>.weights, _final.weights). */
int train_is_output(const char *datacfg, const char *cfgfile, const char *path);

/* The byte offset of the first NaN or Inf float after the header of the weights file at path
 * (*kind: "NaN" or "Inf"), 0 when every float is finite, -1 when the header cannot be read. */
long train_weights_first_nonfinite(const char *path, const char **kind);

#endif
