#include "plugin.h"

#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"
#include "blas_core.h"
#include "distill_mpi.h"
#include "distill_common.h"
#include "distill_fused.h"
#include "distill_plugin.h"
#include "input_checks.h"
#include "input_normalization.h"
#include "seg_data.h"
#include "train_loop.h"
#include "unlabeled.h"

void (*train_parse_network_hook)(network *net);
void (*train_progress_hook)(network *net);
int train_unlabeled_allowed;

/* ---- networks ------------------------------------------------------------------------------ */
static void parse_net(list *options, network *net)
{
    distill_refuse_repeated_fields(options, net->cfgfile, "[net]");
    train_read_input_normalization(options, net);
    if (train_parse_network_hook) train_parse_network_hook(net);
}

/* Darknet's forward: the backend swaps in its layers on a network's first forward (the [net]
   hook runs before any layer is parsed), then the input normalisation */
static float *network_input(network *net, int fresh)
{
    if (fresh) backend_attach(net);
    return train_network_input(net, fresh);
}

/* The BLAS core and the threads' wait policies (OpenMP's, OpenBLAS's) each need the program
   re-executed with a variable set (the libraries read them when they load): all are set before
   one re-execution. */
static void startup(int argc, char **argv)
{
    int reexec = backend_wait_policy_set();
    tat_blas_select(argv);
    if (reexec) backend_reexec(argv);
    tat_blas_startup(argc, argv);
    backend_set_threads();
    /* a file-size limit (ulimit -f) below a save's size would kill the process with SIGXFSZ,
       without a word and with the temporary file left; ignored, the write fails with EFBIG
       and the save says "cannot write weights: File too large" and removes it */
    signal(SIGXFSZ, SIG_IGN);
}

static void free_network_state(network *net)
{
    backend_release(net);
    if (net->teacher) free_network(net->teacher);
    net->teacher = 0;
    train_free_input_normalization(net);
}

/* ---- weights files ---------------------------------------------------------------------- */
static int may_save(network *net, const char *filename)
{
    (void)net, (void)filename;
    return train_mpi_writes_files();
}

/* The files this process has saved, by the inode each save left there: a later save that
   finds another inode there knows another process replaced the file in between. */
#define SAVED_FILES_KEPT 16
static struct {
    char *path;
    dev_t dev;
    ino_t ino;
} saved_files[SAVED_FILES_KEPT];

/* A diverged run's NaN or Inf weights must never replace a good file, nor a run's saves the
   file another run saved since (two runs with the same cfg name and backup directory). */
static int commit_saved(const char *tmpname, const char *filename)
{
    const char *kind;
    struct stat written, there;
    long at = train_weights_first_nonfinite(tmpname, &kind);
    int i, slot = -1;
    if (at < 0 || stat(tmpname, &written) != 0) {
        fprintf(stderr, "%s: the temporary file %s just written cannot be read back (removed by another process?); not saved, the previous file is unchanged\n",
                filename, tmpname);
        return 0;
    }
    if (at > 0) {
        fprintf(stderr, "%s: the weights hold NaN or Inf (training diverged); not saved, the previous file is unchanged\n",
                filename);
        return 0;
    }
    for (i = 0; i < SAVED_FILES_KEPT && saved_files[i].path && slot < 0; ++i)
        if (!strcmp(saved_files[i].path, filename)) slot = i;
    if (slot >= 0 && stat(filename, &there) == 0 &&
        (there.st_dev != saved_files[slot].dev || there.st_ino != saved_files[slot].ino)) {
        fprintf(stderr, "%s: replaced by another process since this run saved it (two runs with the same cfg name and backup directory?); not overwriting it, this run stops\n",
                filename);
        return 0;
    }
    if (slot < 0 && i < SAVED_FILES_KEPT) saved_files[slot = i].path = tat_strdup(filename);
    if (slot >= 0) {
        saved_files[slot].dev = written.st_dev; /* rename keeps the inode */
        saved_files[slot].ino = written.st_ino;
    }
    return 1;
}

/* ---- training loops ----------------------------------------------------------------------- */
/* What the loaders of the current run need (load_args.plugin_state points here): one training
   run per process. */
static struct {
    int channels;          /* 1: grayscale network, the loaded images become one plane */
    char *masks, *mask_ext; /* segmenter: PNG class-index masks by this path rule, or NULL */
    train_unlabeled unlabeled; /* unlabeled= (distill loops only), list NULL when absent */
    int batch;             /* the mini-batch the unlabelled share is taken of */
} loader;

/* unlabeled=: read for the distill loops (their task loss then leaves images without labels
   out), refused by the plain ones */
static void start_unlabeled(darknet_train_run *run)
{
    list *options = read_data_cfg(run->datacfg);
    int i;
    train_unlabeled_free(&loader.unlabeled);
    if (!train_unlabeled_allowed) train_unlabeled_refuse(options, run->datacfg, run->loop);
    train_unlabeled_read(options, run->datacfg, 1, &loader.unlabeled);
    train_free_data_options(options);
    if (!loader.unlabeled.list) return;
    for (i = 0; i < run->n; ++i) train_unlabeled_mask_task_loss(run->nets[i]);
}

/* the run's data seed, the same on every rank (rank 0's) */
static unsigned run_seed;

static void train_start(darknet_train_run *run)
{
    network *net = run->nets[0];
    run->data_seed = train_mpi_start(net, run->datacfg, run->data_seed);
    run_seed = run->data_seed;
    train_check_data_file(run->datacfg);
    start_unlabeled(run);
    if (!strcmp(run->loop, "classifier")) {
        /* before anything runs: the files the data cfg names, labels against classes and the
           network's outputs, a writable backup directory whose paths fit the loop's buffers */
        train_check_data(run->datacfg, run->cfgfile, net, 0);
    } else if (!strcmp(run->loop, "detector")) {
        train_check_data(run->datacfg, run->cfgfile, 0, 1);
        train_check_detector(net, run->datacfg);
    } else {
        image pred = get_network_image(net);
        train_check_segmentation_map(net, pred.w, pred.h);
    }
}

static void train_loader(darknet_train_run *run)
{
    load_args *a = run->args;
    network *net = run->nets[0];
    train_check_no_blank_paths(a->paths, a->m, run->train_list);
    /* after the data checks: weights already trained to this cfg's budget (e.g. by plain
       training of the same cfg) would run no iteration and be saved again as if trained */
    if (get_current_batch(net) >= (size_t)net->max_batches)
        tat_fail("%s: the weights given are at iteration %zu (seen=%zu images), max_batches=%d: nothing left to train; -clear starts at iteration 0 with these weights (or raise max_batches)",
                 run->cfgfile, get_current_batch(net), *net->seen, net->max_batches);
    if (!strcmp(run->loop, "classifier")) {
        if (a->labels && !a->hierarchy) train_check_labels(a->paths, a->m, a->labels, a->classes, run->train_list);
        loader.masks = 0;
    } else if (!strcmp(run->loop, "detector")) {
        loader.masks = 0;
        /* the loader threads draw from one rand() in whatever order they run */
        if (train_seed >= 0) a->threads = 1;
    } else {
        loader.masks = option_find_str(run->options, "masks", 0);
        loader.mask_ext = loader.masks ? option_find_str(run->options, "mask_ext", ".png") : 0;
    }
    loader.channels = train_loader_channels(net);
    loader.batch = net->batch;
    /* each loader thread's part whole mini-batches, so that each holds its unlabelled share */
    if (loader.unlabeled.list && a->threads > 1) a->threads = a->n / net->batch;
    a->plugin_state = &loader;
    train_stop_on_signals();
}

/* the teacher sees exactly the augmented batch the student is about to see */
static void train_step_begin(network *net)
{
    if (net->teacher) network_predict(net->teacher, net->input);
}

static void train_iteration_end(network *net, const char *backup_directory, const char *base)
{
    if (train_progress_hook) train_progress_hook(net);
    train_stop_check(net, backup_directory, base);
}

/* The detector's random=1 input size: a function of the run's seed and the iteration, so that
   every rank resizes alike at the same iteration, as one process with the ranks' batches does,
   and a seeded run repeats; Darknet's rand() there would take a number from the loader
   threads' stream (reseeded per mini-batch under MPI), in whatever order the threads ran. */
static int train_rand(network *net)
{
    return (int)(tat_stream_seed(run_seed, (1ULL << 63) | get_current_batch(net)) & 0x7fffffff);
}

/* ---- data loading -------------------------------------------------------------------------- */
static int load_masks_or_unlabeled(load_args a)
{
    if (a.plugin_state != &loader) return 0;
    if (loader.unlabeled.list && (a.type == CLASSIFICATION_DATA || a.type == SEGMENTATION_DATA)) {
        *a.d = train_load_with_unlabeled(a, loader.batch, &loader.unlabeled,
                                         a.type == SEGMENTATION_DATA ? loader.masks : 0, loader.mask_ext);
        return 1;
    }
    if (a.type != SEGMENTATION_DATA || !loader.masks) return 0;
    *a.d = train_load_seg_masks(a, loader.masks, loader.mask_ext);
    return 1;
}

/* a grayscale network: loaded, augmented and jittered in colour, then one plane */
static void data_loaded(load_args a)
{
    if (a.plugin_state == &loader && loader.channels == 1 &&
        (a.type == CLASSIFICATION_DATA || a.type == SEGMENTATION_DATA || a.type == DETECTION_DATA))
        train_images_to_gray(&a.d->X);
}

void train_plugin_hooks(struct darknet_plugin *p)
{
    p->startup = startup;
    p->layer_type = distill_layer_type_of_section;
    p->layer_name = distill_layer_name;
    p->parse_layer = distill_parse_section;
    p->save_layer = distill_save_section_weights;
    p->load_layer = distill_load_section_weights;
    p->free_layer = distill_free_section;
#ifdef GPU
    p->sync_layer = distill_sync_section;
#endif
    p->skip_plugin_layers = distill_skip_weights;
    p->may_save = may_save;
    p->commit_saved = commit_saved;
    p->parse_net = parse_net;
    p->network_input = network_input;
    p->free_network = free_network_state;
    p->train_start = train_start;
    p->train_loader = train_loader;
    p->train_step_begin = train_step_begin;
    p->train_step_end = train_mpi_after_backward;
    p->train_iteration_end = train_iteration_end;
    p->train_rand = train_rand;
    p->load_in_parts = train_mpi_data_parts;
    p->seed_part = train_mpi_seed_data_part;
    p->load_data = load_masks_or_unlabeled;
    p->data_loaded = data_loaded;
}
