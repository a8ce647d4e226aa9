#ifndef LAYER_TEST_HELPERS_H
#define LAYER_TEST_HELPERS_H
/* Shared by the tests that run distillation layers inside real Darknet networks (one .c file
 * each, so everything here is static; the helpers a test may not call are inline, which keeps
 * -Wall quiet about them): PASS/FAIL lines, cfg files in a scratch directory, a
 * student parsed with a given teacher attached, Darknet's distillation loss, and a
 * finite-difference check of it through Darknet's backward. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "distill_plugin.h"
#include "plugin.h"
#include "test_helpers.h"

static char dir[256];

/* The plugin's hooks (these programs have no Darknet main), then the scratch directory the
   cfg and weights files go to (under TMPDIR); 0 when it cannot be made. */
static int make_scratch_dir(void)
{
    train_plugin_hooks(&darknet_plugin);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/tat-test-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(dir)) return 1;
    perror("mkdtemp");
    return 0;
}

/* main's return value, after removing the scratch directory: non-zero iff a check failed or
   the directory could not be removed. */
static int finish_layer_test(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) ? 1 : test_exit_status();
}

/* report() with the two figures a failure explains itself with */
static void check(int ok, const char *name, const char *fmt, double a, double b)
{
    char why[512];
    snprintf(why, sizeof(why), fmt, a, b);
    report(ok, name, "%s", why);
}

static char *write_cfg(const char *name, const char *text)
{
    static char paths[16][512];
    static int n;
    char *p = paths[n++ % 16];
    FILE *fp;
    snprintf(p, 512, "%s/%s", dir, name);
    fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    return p;
}

static float urand(void) { return 2.f * rand() / (float)RAND_MAX - 1.f; }

/* train_parse_network_hook used here: attach a prepared teacher to the next student parsed */
static network *pending_teacher;
static void attach_pending(network *net)
{
    if (pending_teacher) {
        net->teacher = pending_teacher;
        pending_teacher = 0;
    }
}

static network *parse_with_teacher(char *cfg, network *teacher)
{
    network *net;
    pending_teacher = teacher;
    train_parse_network_hook = attach_pending;
    net = parse_network_cfg(cfg);
    train_parse_network_hook = 0;
    return net;
}

/* Non-zero: reseeds rand() before every forward, so that a [dropout] draws the same mask at
   every evaluation of the loss; the caller's numbers go on from a seed drawn before. */
static unsigned forward_seed;

/* Darknet's loss as the layers define it: per-image losses summed over the batch. */
static double distill_loss(network *net)
{
    double sum = 0;
    int i;
    unsigned callers_seed = forward_seed ? (unsigned)rand() : 0;
    if (forward_seed) srand(forward_seed);
    network_predict(net->teacher, net->input);
    net->train = 1;
    forward_network(net);
    if (forward_seed) srand(callers_seed);
    for (i = 0; i < net->n; ++i)
        if (distill_is_layer(&net->layers[i])) sum += distill_layer_loss(&net->layers[i]) * net->batch;
    return sum;
}

static void fill_input(network *net, unsigned seed)
{
    int i;
    srand(seed);
    for (i = 0; i < net->inputs * net->batch; ++i) net->input[i] = urand();
}


static inline double distill_loss_of(void *net) { return distill_loss(net); }

/* L = sum(r * output of layer 0) in double, training mode (batch statistics); the _of form,
   for the finite differences, takes r from output_weights */
static const float *output_weights;
static inline double weighted_output(network *net, const float *r)
{
    layer *l = &net->layers[0];
    double sum = 0;
    int i;
    net->train = 1;
    forward_network(net);
    for (i = 0; i < l->outputs * net->batch; ++i) sum += (double)r[i] * l->output[i];
    return sum;
}
static inline double weighted_output_of(void *net) { return weighted_output(net, output_weights); }

/* Directional finite differences (fd_directional) of the distillation loss w.r.t. layer 0's
   weights against -weight_updates (Darknet keeps negative gradients) after one backward.
   The loss is float32 through Darknet's forward: a step of 3e-3 x rms(weights) keeps the float
   noise divided by the step near 1e-3 of the gradient's scale; 1e-2 leaves room, while a lost
   or doubled gradient path is off by O(1e-1..1). */
#define LAYER_FD_STEP 3e-3
#define LAYER_FD_TOL 1e-2
static inline void fd_check(const char *name, const char *teacher_text, const char *student_head,
                     const char *student_tail)
{
    char cfg_text[4096], label[256];
    network *teacher, *net;
    layer *l0;
    float *g;
    int i, nw;
    snprintf(cfg_text, sizeof(cfg_text), "%s%s", student_head, student_tail);
    srand(1);
    teacher = parse_network_cfg(write_cfg("teacher.cfg", teacher_text));
    net = parse_with_teacher(write_cfg("student.cfg", cfg_text), teacher);
    fill_input(net, 7);
    l0 = &net->layers[0];
    nw = l0->nweights;
    g = test_alloc(nw * sizeof(float));

    memset(l0->weight_updates, 0, nw * sizeof(float));
    distill_loss(net);
    backward_network(net);
    for (i = 0; i < nw; ++i) g[i] = -l0->weight_updates[i];
    rng_seed(7);
    snprintf(label, sizeof(label), "fd_%s", name);
    check_fd(label, l0->weights, nw, g, distill_loss_of, net, 0, LAYER_FD_STEP, 3, LAYER_FD_TOL);
    free(g);
    free_network(net); /* frees the teacher too */
}

/* Without a teacher the layers change nothing: outputs are bit-identical to the same cfg
   without them (with_cfg minus its distillation sections), given the same weights. The check
   names start with `prefix`. */
static inline void passthrough_invariance(const char *prefix, const char *with_cfg, const char *without_cfg)
{
    char *wpath = write_cfg("plain.weights", ""), name[256];
    network *with, *without;
    float *a, *b;
    int i, n;
    with = parse_network_cfg(write_cfg("with.cfg", with_cfg));
    for (i = 0; i < with->n; ++i)
        if (distill_is_layer(&with->layers[i])) with->layers[i].dontsave = 1;
    save_weights(with, wpath);
    without = parse_network_cfg(write_cfg("without.cfg", without_cfg));
    snprintf(name, sizeof(name), "%spassthrough_weights_fit_plain_cfg", prefix);
    check(load_weights(without, wpath) == without->n, name, "loaded %g of %g layers", 0, without->n);
    fill_input(with, 3);
    memcpy(without->input, with->input, with->inputs * with->batch * sizeof(float));
    n = with->outputs * with->batch;
    a = calloc(n, sizeof(float));
    b = calloc(n, sizeof(float));
    memcpy(a, network_predict(with, with->input), n * sizeof(float));
    memcpy(b, network_predict(without, without->input), n * sizeof(float));
    snprintf(name, sizeof(name), "%spassthrough_outputs_bit_identical", prefix);
    check(with->outputs == without->outputs && !memcmp(a, b, n * sizeof(float)), name,
          "outputs %g vs %g floats, or values differ", with->outputs, without->outputs);
    free(a);
    free(b);
    free_network(with);
    free_network(without);
}

/* A student (cfg `student`) to train, its teacher (cfg tcfg) initialised at random and saved to
   tw for check_weights_round_trip. */
static inline network *trainable_student(char *student, char *tcfg, char *tw)
{
    network *t, *a;
    srand(5);
    t = parse_network_cfg(tcfg);
    save_weights(t, tw);
    a = parse_with_teacher(student, t);
    a->learning_rate = .01f;
    a->momentum = .9f;
    a->decay = .0005f;
    return a;
}

static inline void train_steps(network *a, int steps)
{
    int step;
    for (step = 0; step < steps; ++step) {
        fill_input(a, 11 + step);
        train_network_datum(a);
    }
}

/* The weights `a` saved to w1, loaded into a fresh student (cfg `student`, teacher cfg tcfg with
   weights tw, another random initialisation): the same distillation loss on a new input, and
   the same bytes when saved again to w2. The check names start with `prefix`. */
static inline int files_equal(const char *p, const char *q);
static inline void check_weights_round_trip(const char *prefix, network *a, char *student, char *tcfg,
                                     char *tw, char *w1, char *w2)
{
    char name[256];
    network *t, *b;
    double la, lb;
    srand(99); /* a different initialisation, overwritten by the load */
    t = parse_network_cfg(tcfg);
    load_weights(t, tw);
    b = parse_with_teacher(student, t);
    load_weights(b, w1);
    fill_input(a, 42);
    memcpy(b->input, a->input, a->inputs * a->batch * sizeof(float));
    la = distill_loss(a);
    lb = distill_loss(b);
    snprintf(name, sizeof(name), "%sweights_round_trip_same_loss", prefix);
    check(la == lb && la > 0, name, "loss %.9g vs %.9g", la, lb);
    save_weights(b, w2);
    snprintf(name, sizeof(name), "%sweights_round_trip_same_bytes", prefix);
    check(files_equal(w1, w2), name, "%g %g", 0, 0);
    free_network(b);
}

/* make_*_layer from an options struct builds the layer its cfg section parses to: with the same
   random initialisation and input, the same loss to the bit, the same parameter count and FLOPs.
   `section` (one distillation section) follows `head` in the parsed cfg; make(b, k) builds the
   same layer as layer k (the first after the head) of a network parsed from `head` alone. */
static inline void make_equals_parse(const char *name, const char *teacher_text, const char *head,
                              const char *section, layer (*make)(network *net, int index))
{
    char cfg_text[4096], label[256];
    network *a, *b;
    layer made;
    double la, lb;
    int k;
    snprintf(cfg_text, sizeof(cfg_text), "%s%s", head, section);
    srand(5);
    a = parse_with_teacher(write_cfg("parsed.cfg", cfg_text), parse_network_cfg(write_cfg("teacher.cfg", teacher_text)));
    srand(5);
    b = parse_with_teacher(write_cfg("head.cfg", head), parse_network_cfg(write_cfg("teacher.cfg", teacher_text)));
    /* b's parse drew the same random numbers as a's up to layer k: the same initial values */
    k = b->n;
    made = make(b, k);
    fill_input(a, 21);
    memcpy(b->input, a->input, a->inputs * a->batch * sizeof(float));
    la = distill_loss(a);
    network_predict(b->teacher, b->input);
    b->train = 1;
    forward_network(b);
    made.forward(made, *b);
    lb = distill_layer_loss(&made) * b->batch;
    snprintf(label, sizeof(label), "make_equals_parse_%s", name);
    check(la == lb && la > 0 && distill_layer_params(&made) == distill_layer_params(&a->layers[k]) &&
              distill_layer_flops(&made) == distill_layer_flops(&a->layers[k]),
          label, "loss %.9g (parsed) vs %.9g (made), or parameters/FLOPs differ", la, lb);
    distill_free_section(made);
    free_network(a);
    free_network(b);
}

static inline int files_equal(const char *p, const char *q)
{
    FILE *a = fopen(p, "rb"), *b = fopen(q, "rb");
    int ca, cb, same = a && b;
    while (same) {
        ca = fgetc(a);
        cb = fgetc(b);
        if (ca != cb) same = 0;
        if (ca == EOF) break;
    }
    if (a) fclose(a);
    if (b) fclose(b);
    return same;
}

#endif
