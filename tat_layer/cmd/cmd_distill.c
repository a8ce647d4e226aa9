/* `./darknet distill ...`: Darknet's own training loops with a frozen teacher attached. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "darknet.h"
#include "tat_fail.h"
#include "distill_commands.h"
#include "distill_mpi.h"
#include "distill_plugin.h"
#include "plugin.h"
#include "list.h"
#include "option_list.h"
#include "parser.h"

/* train_progress_hook: the distillation terms under Darknet's progress line. */
static void print_distill_progress(network *net)
{
    static float *avg;
    static int first = 1;
    int i;
    if (first) {
        size_t params = 0;
        double flops = 0;
        first = 0;
        avg = tat_calloc(net->n, sizeof(float));
        for (i = 0; i < net->n; ++i) {
            if (!distill_is_layer(&net->layers[i])) continue;
            params += distill_layer_params(&net->layers[i]);
            flops += distill_layer_flops(&net->layers[i]);
            avg[i] = -1;
        }
        printf("distill: %zu extra learned parameters, %.4f BFLOPs per image forward\n", params,
               flops / 1e9);
    }
    printf("distill:");
    for (i = 0; i < net->n; ++i) {
        float loss;
        if (!distill_is_layer(&net->layers[i])) continue;
        loss = distill_layer_loss(&net->layers[i]);
        avg[i] = avg[i] < 0 ? loss : avg[i] * .9f + loss * .1f;
        printf(" %s[%d] %f, %f avg;", get_layer_string(net->layers[i].type), i, loss, avg[i]);
    }
    printf("\n");
}

typedef struct {
    char **lines;
    int n_lines;
    int *section_of_line; /* -1 before the first section */
    int n_sections;
    int *dropped;         /* per section */
} cfg_text;

static cfg_text read_cfg_text(const char *path);
static void free_cfg_text(cfg_text *t);

static int is_distill_section(const char *line)
{
    return distill_layer_type_of_section(line) != BLANK;
}

/* task: "classifier", "segmenter" or "detector", whose Darknet training loop runs */
static void train_distill(int argc, char **argv, const char *task)
{
    char command[64];
    char *gpu_list, *seed;
    int clear, ngpus, nargs = 0, i;
    int *gpus;
    char *args[8];
    snprintf(command, sizeof(command), "distill %s train", task);
    gpu_list = cmd_option_value(argc, argv, "-gpus", command);
    seed = cmd_option_value(argc, argv, "-seed", command);
    clear = cmd_flag(argc, argv, "-clear", command);
    gpus = read_intlist(gpu_list, &ngpus, gpu_index);
    for (i = 3; i < argc && argv[i]; ++i) {
        if (argv[i][0] == '-') {
            tat_fail("distill %s train: unknown option %s", task, argv[i]);
        }
        if (nargs == 5) {
            tat_fail("distill %s train: unexpected argument %s", task, argv[i]);
        }
        args[nargs++] = argv[i];
    }
    if (nargs < 4) cmd_usage("darknet", task);
#ifndef GPU
    /* Darknet would run one CPU replica per listed id, with the learning rate multiplied by
       their number */
    if (gpu_list) {
        tat_fail("distill %s train: -gpus %s: this darknet is a CPU build (make GPU=1 builds one for GPUs)",
                task, gpu_list);
    }
#endif
    if (seed) {
        char *end;
        long v = strtol(seed, &end, 10);
        if (end == seed || *end || v < 0 || v > 2147483646L) {
            tat_fail("distill %s train: -seed %s: must be an integer 0..2147483646", task, seed);
        }
        train_seed = (int)v;
    }
#ifdef GPU
    int local_rank = train_mpi_local_rank();
    if (local_rank >= 0 && ngpus > 1) {
        tat_fail("distill %s train: -gpus %s: one GPU per rank under mpirun or srun", task, gpu_list);
    }
    /* one process per GPU: the local rank picks the device unless -gpus names one */
    if (local_rank >= 0 && !gpu_list) {
        int devices = 0;
        if (cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0) gpus[0] = local_rank % devices;
    }
    /* The first CUDA call that creates a context (the teacher's load below, Darknet's loop) must
       find this process's device current already; main selects none unless -i names one. */
    cuda_set_device(gpus[0]);
#endif
    train_need_readable(args[0], "the data file");
    train_need_readable(args[1], "the student cfg");
    train_need_readable(args[2], "the teacher cfg");
    train_need_readable(args[3], "the teacher weights");
    if (nargs > 4) train_need_readable(args[4], "the student weights");
    /* the loop's saves must not replace an input (the student weights may: that is a resume) */
    for (i = 0; i < 4; ++i) {
        static const char *names[4] = {"the data file", "the student cfg", "the teacher cfg",
                                       "the teacher weights"};
        if (train_is_output(args[0], args[1], args[i])) {
            tat_fail("%s: %s would be overwritten by the student's saves (backup= in %s, named after %s): choose another backup directory",
                    args[i], names[i], args[0], args[1]);
        }
    }
    /* the classifier loop checks its data itself (train_start), with the network's outputs */
    if (!strcmp(task, "segmenter")) train_check_data(args[0], args[1], 0, 1);
    cfg_text student = read_cfg_text(args[1]);
    int distill_sections = 0;
    for (i = 0; i < student.n_lines; ++i) distill_sections += is_distill_section(student.lines[i]);
    if (!distill_sections) {
        tat_fail("%s: no distillation section ([tat_distill], [anchor_distill], [kd_distill], [fitnet_distill], [yolo_distill]): nothing to distill", args[1]);
    }
    free_cfg_text(&student);
    cmd_attach_teacher(args[2], args[3], 0);
    train_progress_hook = print_distill_progress;
    train_unlabeled_allowed = 1;
    if (!strcmp(task, "segmenter"))
        train_segmenter(args[0], args[1], nargs > 4 ? args[4] : 0, gpus, ngpus, clear, 0);
    else if (!strcmp(task, "detector"))
        train_detector(args[0], args[1], nargs > 4 ? args[4] : 0, gpus, ngpus, clear);
    else
        train_classifier(args[0], args[1], nargs > 4 ? args[4] : 0, gpus, ngpus, clear);
    free(gpus);
}

/* ---- export: the deployable student, without the distillation layers ------------------- */

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t') ++s;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) *--e = 0;
    return s;
}

static cfg_text read_cfg_text(const char *path)
{
    cfg_text t = {0};
    FILE *fp = fopen(path, "r");
    char buf[4096];
    int cap = 64, section = -1;
    if (!fp) {
        tat_fail("%s: cannot open the cfg: %s", path, strerror(errno));
    }
    t.lines = tat_calloc(cap, sizeof(char *));
    t.section_of_line = tat_calloc(cap, sizeof(int));
    while (fgets(buf, sizeof(buf), fp)) {
        char *s = trim(buf);
        if (t.n_lines == cap) {
            cap *= 2;
            t.lines = tat_realloc(t.lines, cap, sizeof(char *));
            t.section_of_line = tat_realloc(t.section_of_line, cap, sizeof(int));
        }
        if (s[0] == '[') ++section;
        t.lines[t.n_lines] = tat_strdup(s);
        t.section_of_line[t.n_lines++] = section;
    }
    fclose(fp);
    t.n_sections = section + 1;
    t.dropped = tat_calloc(t.n_sections + 1, sizeof(int));
    return t;
}

static void free_cfg_text(cfg_text *t)
{
    int i;
    for (i = 0; i < t->n_lines; ++i) free(t->lines[i]);
    free(t->lines);
    free(t->section_of_line);
    free(t->dropped);
}

/* Section k > 0 is layer k - 1. A dropped layer passes its input through, so a reference to
   it means its input: walk back to a kept layer. */
static int kept_layer(const cfg_text *t, int layer)
{
    while (layer >= 0 && t->dropped[layer + 1]) --layer;
    return layer;
}

static int new_index(const cfg_text *t, int layer)
{
    int i, n = 0;
    for (i = 0; i < layer; ++i) n += !t->dropped[i + 1];
    return n;
}

/* Rewrites a comma list of layer references of `layer` for the new numbering. */
static void remap_refs(const cfg_text *t, int layer, const char *val, char *out, size_t size,
                       const char *cfgfile, const char *key)
{
    char copy[1024], *tok, *save = 0;
    size_t used = 0;
    snprintf(copy, sizeof(copy), "%s", val);
    out[0] = 0;
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(0, ",", &save)) {
        char *end;
        long v = strtol(trim(tok), &end, 10);
        int target, mapped;
        if (end == trim(tok) || *end) {
            tat_fail("%s: layer %d %s: '%s' is not a layer index", cfgfile, layer, key, val);
        }
        target = kept_layer(t, v < 0 ? layer + (int)v : (int)v);
        mapped = v < 0 ? new_index(t, target) - new_index(t, layer) : new_index(t, target);
        used += snprintf(out + used, size - used, "%s%d", used ? "," : "", mapped);
    }
}

/* Refuses, before anything is written, an output that is an input or the other output. */
static void check_export_paths(char *cfgfile, char *weightfile, char *out_cfg, char *out_weights)
{
    char *const files[4] = {cfgfile, weightfile, out_cfg, out_weights};
    static const char *names[4] = {"the student cfg", "the student weights", "the output cfg",
                                   "the output weights"};
    train_input inputs[4];
    int out;
    train_need_readable(cfgfile, names[0]);
    train_need_readable(weightfile, names[1]);
    for (out = 0; out < 4; ++out) inputs[out].path = files[out], inputs[out].what = names[out];
    for (out = 2; out < 4; ++out) {
        char *dir = train_dir_of(files[out]), who[4200];
        /* the first output counts as an input of the second: the two must differ */
        train_refuse_output(files[out], names[out], inputs, out, 1, "distill export");
        snprintf(who, sizeof(who), "%.4000s (%s)", files[out], names[out]);
        train_need_writable_dir(dir, who);
        free(dir);
    }
}

static void export_student(char *cfgfile, char *weightfile, char *out_cfg, char *out_weights)
{
    cfg_text t;
    char *tmp;
    FILE *fp;
    network *net;
    int i, kept = 0;
    check_export_paths(cfgfile, weightfile, out_cfg, out_weights);
    t = read_cfg_text(cfgfile);
    for (i = 0; i < t.n_lines; ++i)
        if (is_distill_section(t.lines[i]))
            t.dropped[t.section_of_line[i]] = 1;

    /* weights first: loading also validates the cfg and the weights against each other;
       save_weights writes through a temporary file itself (Darknet's atomic save patch) */
    net = load_network(cfgfile, weightfile, 0);
    for (i = 0; i < net->n; ++i)
        if (distill_is_layer(&net->layers[i])) net->layers[i].dontsave = 1;
        else ++kept;
    save_weights(net, out_weights);

    tmp = train_temp_path(out_cfg);
    fp = fopen(tmp, "w");
    if (!fp) {
        tat_fail("%s: cannot write: %s", out_cfg, strerror(errno));
    }
    for (i = 0; i < t.n_lines; ++i) {
        int section = t.section_of_line[i], layer = section - 1;
        char *line = t.lines[i], *eq = strchr(line, '=');
        if (section >= 0 && t.dropped[section]) continue;
        if (eq && layer >= 0) {
            char key[256], fixed[1024];
            const char *type = 0;
            int j;
            for (j = i; j >= 0 && t.lines[j][0] != '['; --j) {}
            type = t.lines[j];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - line), line);
            if ((!strcmp(type, "[route]") && !strcmp(trim(key), "layers")) ||
                (!strcmp(type, "[shortcut]") && !strcmp(trim(key), "from"))) {
                remap_refs(&t, layer, eq + 1, fixed, sizeof(fixed), cfgfile, trim(key));
                fprintf(fp, "%s=%s\n", trim(key), fixed);
                continue;
            }
        }
        fprintf(fp, "%s\n", line);
    }
    if (fclose(fp) || rename(tmp, out_cfg)) {
        const char *why = strerror(errno);
        unlink(tmp);
        tat_fail("%s: cannot write: %s", out_cfg, why);
    }
    free(tmp);
    fprintf(stderr, "exported %s + %s: %d layers, the distillation layers removed\n", out_cfg,
            out_weights, kept);
    free_network(net);
    free_cfg_text(&t);
}

/* Darknet's `classifier` verbs (run_classifier ignores any other one and exits 0). */
static int is_classifier_verb(const char *verb)
{
    static const char *verbs[] = {"predict", "fout", "try", "train", "demo", "gun", "threat",
                                  "test", "csv", "label", "valid", "validmulti", "valid10",
                                  "validcrop", "validfull", 0};
    int i;
    for (i = 0; verbs[i]; ++i)
        if (!strcmp(verb, verbs[i])) return 1;
    return 0;
}

static void run_classifier_command(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[3], "train")) {
        /* shift so that argv[2] is the verb, as in `classifier train` */
        train_distill(argc - 1, argv + 1, "classifier");
    } else if (argc >= 6 && is_classifier_verb(argv[3])) {
        /* evaluation and prediction need no teacher: the layers are inert without one */
        train_check_data_field_files(argv[4]);
        cmd_check_classifier_validation(argc - 1, argv + 1);
        run_classifier(argc - 1, argv + 1);
    } else if (argc >= 4 && !is_classifier_verb(argv[3])) {
        tat_fail("%s distill classifier: '%s' is not a classifier command; usage: %s distill classifier train|valid|predict|test|... <data> <cfg> ...",
                 argv[0], argv[3], argv[0]);
    } else {
        cmd_usage(argv[0], "classifier");
    }
}

static void run_segmenter_command(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[3], "train"))
        train_distill(argc - 1, argv + 1, "segmenter");
    else
        cmd_segmenter(argc, argv);
}

static void run_detector_command(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[3], "train"))
        train_distill(argc - 1, argv + 1, "detector");
    else
        cmd_detector(argc, argv);
}

static void run_export_command(int argc, char **argv)
{
    if (argc != 7) cmd_usage(argv[0], "export");
    export_student(argv[3], argv[4], argv[5], argv[6]);
}

/* The subcommands (argv[2]): their forms for the usage listing, after "<prog> distill ", and
   the one line a wrong call of the subcommand gets. */
typedef struct {
    const char *name;
    const char *summary;
    const char *forms[4];
    void (*run)(int argc, char **argv);
} distill_subcommand;

static const distill_subcommand subcommands[] = {
    {.name = "classifier",
     .summary = "classifier train|valid|predict|test|... <data> <cfg> ...",
     .forms = {"classifier train <data> <student.cfg> <teacher.cfg> <teacher.weights> [student.weights] [-gpus 0,1] [-clear] [-seed N]",
               "classifier valid|predict|test|... <data> <student.cfg> <student.weights>   (any `classifier` command)"},
     .run = run_classifier_command},
    {.name = "segmenter",
     .summary = "segmenter train|valid|test|demo <data> <cfg> ...",
     .forms = {"segmenter train <data> <student.cfg> <teacher.cfg> <teacher.weights> [student.weights] [-gpus 0,1] [-clear] [-seed N]",
               "segmenter valid <data> <cfg> <weights> [-out dir]   (mIoU, per-class IoU, pixel accuracy)",
               "segmenter test|demo <data> <cfg> <weights> ...   (Darknet's segmenter commands)"},
     .run = run_segmenter_command},
    {.name = "detector",
     .summary = "detector train|map|test|valid <data> <cfg> ...",
     .forms = {"detector train <data> <student.cfg> <teacher.cfg> <teacher.weights> [student.weights] [-gpus 0,1] [-clear] [-seed N]",
               "detector map <data> <cfg> <weights> [-thresh 0.005] [-nms 0.45]   (mAP@0.5, AP@0.5:0.95, per-class AP, recall on valid=)",
               "detector test|valid|recall <data> <cfg> <weights> ...   (Darknet's detector commands)"},
     .run = run_detector_command},
    {.name = "check",
     .summary = "check <data> [cfg]",
     .forms = {"check <data> [cfg]   (reads every train and valid entry before a run)"},
     .run = cmd_check},
    {.name = "export",
     .summary = "export <student.cfg> <student.weights> <out.cfg> <out.weights>",
     .forms = {"export <student.cfg> <student.weights> <out.cfg> <out.weights>   (the student without its distillation sections)"},
     .run = run_export_command},
    {.name = "attention",
     .summary = "attention <student.cfg> <student.weights> <teacher.cfg> <teacher.weights> <image> <out.png> [-layer N] [-at y,x[,y,x...]]",
     .forms = {"attention <student.cfg> <student.weights> <teacher.cfg> <teacher.weights> <image> <out.png> [-layer N] [-at y,x[,y,x...]]"},
     .run = cmd_attention},
};
#define N_SUBCOMMANDS ((int)(sizeof(subcommands) / sizeof(subcommands[0])))

void cmd_usage(const char *prog, const char *subcommand)
{
    int i, j;
    for (i = 0; subcommand && i < N_SUBCOMMANDS; ++i)
        if (!strcmp(subcommand, subcommands[i].name))
            tat_fail("usage: %s distill %s   (%s distill: all commands)", prog, subcommands[i].summary, prog);
    for (i = 0; i < N_SUBCOMMANDS; ++i)
        for (j = 0; j < 4 && subcommands[i].forms[j]; ++j)
            fprintf(stderr, "%s %s distill %s\n", i + j ? "      " : "usage:", prog, subcommands[i].forms[j]);
    exit(1);
}

void cmd_distill(int argc, char **argv)
{
    int i;
    for (i = 0; argc >= 3 && i < N_SUBCOMMANDS; ++i)
        if (!strcmp(argv[2], subcommands[i].name)) {
            subcommands[i].run(argc, argv);
            return;
        }
    if (argc >= 3) {
        char names[256] = "";
        for (i = 0; i < N_SUBCOMMANDS; ++i)
            snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? "|" : "",
                     subcommands[i].name);
        tat_fail("%s distill: '%s' is not a command; usage: %s distill %s ... (`%s distill` lists every form)",
                 argv[0], argv[2], argv[0], names, argv[0]);
    }
    cmd_usage(argv[0], 0);
}
