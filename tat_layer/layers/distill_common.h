#ifndef DISTILL_COMMON_H
#define DISTILL_COMMON_H
/*
 * What every distillation layer type shares (tat_distill_layer.c, kd_distill_layer.c,
 * fitnet_distill_layer.c): cfg fields read through one context, the pass-through layer they
 * all are, the teacher-layer checks, the finite-loss stop, the embedding update and its
 * weights record, the type names, and one checked allocator. Depends on Darknet and tat.h
 * only; the plugin entry point (distill_plugin.c) depends on the layer types, never the
 * reverse.
 */
#include <stddef.h>
#include <stdio.h>

#include "darknet.h"
#include "distill_layer_types.h"
#include "tat_fail.h"  /* tat_fail, tat_calloc: the one error function and allocator */
#include "distill_fused.h"
#include "list.h"
#include "tat.h"

/* ---- allocation ------------------------------------------------------------------------- */

/* ---- type names --------------------------------------------------------------------------- */
/* "kd_distill" for KD_DISTILL (no brackets); "?" for a type that is not one of ours. */
const char *distill_layer_type_name(LAYER_TYPE t);
/* "[kd_distill]" -> KD_DISTILL; BLANK for a section that is not one of ours. */
LAYER_TYPE distill_layer_type_of_section(const char *section);
int distill_is_layer_type(LAYER_TYPE t);

/* ---- cfg fields ------------------------------------------------------------------------- */
/* Where a field is read: the section's options (NULL once parsing is done), the network being
 * parsed, this layer's index and type. Every problem is reported as one line
 * "<cfg>: [<section>] (layer N) <field>: <problem>", exit 1. */
typedef struct {
    list *options;
    network *net;
    int index;
    LAYER_TYPE type;
} distill_cfg;

void distill_cfg_fail(const distill_cfg *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), noreturn));
/* Fails on a field given twice in one section (Darknet's reader would take the first and
 * ignore the second): "<cfgfile>: <section> <field>: given twice (...)". section: e.g. "[net]". */
void distill_refuse_repeated_fields(const list *options, const char *cfgfile, const char *section);
/* Fails on a field given twice, or neither in `known` (NULL-terminated), nor one of Darknet's
 * own, nor one every distillation section has (tf32); then reads those (distill_cfg_read_tf32). */
void distill_cfg_check_fields(const distill_cfg *c, const char **known);
/* tf32=1 in any distillation section lets every GEMM of the plugin in this process use TF32
 * tensor cores (tat_gpu_set_tf32); 0 (the default) leaves them fp32; ignored by a CPU build. */
void distill_cfg_read_tf32(const distill_cfg *c);
int distill_cfg_has(const distill_cfg *c, const char *field);
int distill_cfg_int(const distill_cfg *c, const char *field, int def, int required);
float distill_cfg_float(const distill_cfg *c, const char *field, float def);
/* "rows,cols"; both def when absent */
void distill_cfg_pair(const distill_cfg *c, const char *field, int def, int *a, int *b);
/* 0 for `zero` (or absent), 1 for `one` */
int distill_cfg_choice(const distill_cfg *c, const char *field, const char *zero, const char *one);
/* loss_weight: a finite number >= 0, default 1 */
float distill_cfg_loss_weight(const distill_cfg *c);

/* ---- checks made when a layer is built ------------------------------------------------- */
/* A student layer index, as written in the cfg (negative counts back from this layer): must
 * name an earlier layer; returns it absolute. */
int distill_student_layer(const distill_cfg *c, int v);
/* The teacher layer index as written (negative counts back from the teacher's end), resolved
 * against the attached teacher; fails when out of range. Needs c->net->teacher. */
int distill_teacher_layer(const distill_cfg *c, int v);
/* Teacher layer tl must have teacher_c channels and the student layer from's h x w. */
void distill_check_teacher_map(const distill_cfg *c, int tl, int teacher_c, int from);

/* Everything of a layer type that Darknet and the commands call, one table per type (each
 * type's file defines its own; distill_plugin.c lists them). NULL: the type has nothing of that
 * kind (no update, no weights, nothing to synchronise, no parameters or FLOPs). */
typedef struct {
    LAYER_TYPE type;
    layer (*parse)(list *options, network *net, int index);
    void (*forward)(struct layer, struct network);
    void (*backward)(struct layer, struct network);
    void (*update)(struct layer, update_args);
#ifdef GPU
    void (*forward_gpu)(struct layer, struct network);
    void (*backward_gpu)(struct layer, struct network);
    void (*update_gpu)(struct layer, update_args);
    /* averages layer j's learned parameters over the n GPU replicas */
    void (*sync)(network **nets, int n, int j);
#endif
    void (*save_weights)(layer l, FILE *fp);
    void (*load_weights)(layer l, FILE *fp);
    void (*free_layer)(layer l);
    float (*loss)(const layer *l);    /* weighted loss of the last forward, per image */
    size_t (*params)(const layer *l); /* learned parameters the layer owns */
    double (*flops)(const layer *l);  /* forward FLOPs per image */
    /* appends the learned parameters (grads = 0) or their accumulated gradients (grads = 1) to
       `host` or `device`, where they live (distributed training sums or broadcasts them) */
    void (*tensors)(const layer *l, int grads, tat_tensor_list *host, tat_tensor_list *device);
} distill_type_ops;

/* Every distillation layer passes its input through: output and delta alias the previous
 * layer's (as [dropout] does), the functions are the type's, `state` goes to plugin_state. */
layer distill_make_passthrough(const distill_cfg *c, const distill_type_ops *ops, void *state);

#ifdef GPU
/* Names layer `index` of type `type` in the one-line message of a device allocation that fails
 * ("<cfg>: [<section>] (layer N)", tat_gpu_set_alloc_context): call before its allocations. */
void distill_gpu_alloc_context(const network *net, LAYER_TYPE type, int index);
/* Multi-GPU: the device arrays replica[i] (n floats on device[i]) all become their mean,
 * through the host as Darknet's sync_layer does for its own layers. */
void distill_average_device_arrays(float **replica, const int *device, int nrep, int n);
/* The same for every parameter array of one embedding held by each replica. */
void distill_average_embeddings(tat_embedding **replica, const int *device, int nrep);
#endif

/* ---- training --------------------------------------------------------------------------- */
/* 0 for NaN and +-Inf; reliable under -ffast-math, unlike isfinite(). */
int distill_finite(float x);
/* A section computes its term in a training pass with a teacher, once its buffers exist
 * (active); otherwise it only passes its input through. */
int distill_training(int active, const network *net);
/* A non-finite loss stops training before this step's update and before any save, so the
 * backups on disk stay the last good ones: one line naming the cfg, the layer (section name)
 * and the iteration, exit 1. Used for the distillation terms and the task loss alike. */
void distill_stop_if_not_finite(const network *net, const char *section, int index, float loss);
/* Darknet's axpy, scal and Adam step (the Adam patch) of the host (axpy_cpu, ...), or of the
 * device (axpy_gpu, ..., and the same Adam rule as one fused kernel, tat_gpu_adam_update). */
typedef struct {
    void (*axpy)(int n, float alpha, float *x, int incx, float *y, int incy);
    void (*scal)(int n, float alpha, float *x, int incx);
    void (*adam)(float *w, float *d, float *m, float *v, float B1, float B2, float eps, float decay,
                 float rate, int n, int batch, int t, int decoupled);
} distill_blas;
extern const distill_blas distill_blas_cpu;
#ifdef GPU
extern const distill_blas distill_blas_gpu;
#endif
/* A distillation layer's learned embedding (tat_embedding_init, weights drawn from rng), with
 * Adam moments when net's [net] asks for Adam (adam=1 or adamw=1), as Darknet's layers have
 * theirs; the device twin (tat_gpu_embedding_init) then gets its own. Freed by
 * tat_embedding_free. */
void distill_embedding_init(tat_embedding *e, const network *net, int in_c, int out_c, int ksize,
                            tat_rng *rng);
/* The generator the layers initialise their embeddings from: the C library's rand(), the
 * sequence that -seed sets and that Darknet's own layers draw from, in parse order. A seeded
 * run initialises as it always has. */
tat_rng distill_init_rng(void);
/* One step of an embedding (host or device arrays, as `b` says) as Darknet's convolution with
 * batch_normalize does it: SGD with momentum, or with `adam` (adamw) in [net] the Adam (AdamW)
 * step of Darknet's layers, on the embedding's own moments (it must have them). */
void distill_embedding_update(const tat_embedding *e, const distill_blas *b, update_args a,
                              float learning_rate);
/* Weights file record of an embedding: BN biases, BN scales, conv weights. Returns 1 when every
 * float was read (written); a short read stops there with end-of-file set on fp, which the
 * weights loader reports naming the file and the layer. */
int distill_embedding_io(tat_embedding *e, FILE *fp, int save);
/* An embedding's conv weights, BN scales and biases (grads = 0), or their gradients (1). */
void distill_embedding_tensors(const tat_embedding *e, int grads, tat_tensor_list *to);

#endif
