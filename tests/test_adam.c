/* Adam and AdamW (the Adam patch) against torch.optim.Adam / AdamW (tests/reference/
 * adam_reference.py): the same initial parameters and the same gradients for a few steps, then
 * the parameters must agree to <= 1e-5 relative. Each learned array of each kind of layer is
 * updated through the function training calls:
 *   - [convolutional] with BatchNorm: weights, biases, scales (update_convolutional_layer);
 *   - [connected]: weights, biases (update_connected_layer);
 *   - a distillation embedding (conv + BN of [tat_distill] / [anchor_distill] / the
 *     [fitnet_distill] projection): weights, scales, biases (distill_embedding_update, which
 *     those layers' CPU and GPU updates call).
 * Gradients are set as Darknet keeps them: the negative gradient summed over the batch.
 * And a small network (3x3 conv, ReLU, average pool, [connected], [softmax]) trained by
 * train_network_datum for a few steps on the same batches as its PyTorch twin, Adam and AdamW:
 * all its weights agree to <= 1e-5 relative.
 * The moments belong to the embedding: made with it when [net] asks for Adam, sized by it,
 * freed with it; a student with TaT and FitNet sections trains under Adam. */
/* the shared header's network helpers are not all used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "layer_test_helpers.h"

#include "distill_common.h"
#include "distill_plugin.h"

#define STEPS 5
#define BATCH 4
#define MAX_ARRAYS 3

typedef struct {
    const char *name;
    int decoupled;
    int n_arrays;
    float *params[MAX_ARRAYS], *grads[MAX_ARRAYS];
    int counts[MAX_ARRAYS];
    layer *l;          /* a Darknet layer: its own update */
    tat_embedding *e;  /* an embedding: distill_embedding_update */
} adam_case;

static update_args args_at(const adam_case *c, int t)
{
    update_args a = {0};
    a.batch = BATCH;
    a.learning_rate = 0.01f;
    a.decay = 0.05f; /* large, so that L2 vs decoupled decay matters */
    a.adam = 1;
    a.B1 = 0.9f;
    a.B2 = 0.999f;
    a.eps = 1e-8f;
    a.t = t;
    a.decoupled_decay = c->decoupled;
    return a;
}

static int total(const adam_case *c)
{
    int i, n = 0;
    for (i = 0; i < c->n_arrays; ++i) n += c->counts[i];
    return n;
}

static void write_floats(const char *path, const float *x, size_t n, const char *mode)
{
    FILE *fp = fopen(path, mode);
    fwrite(x, sizeof(float), n, fp);
    fclose(fp);
}

/* Runs the case in Darknet; writes the torch inputs; returns the final parameters. */
static float *run_case(adam_case *c)
{
    char path[600];
    int n = total(c), t, i, k;
    float *all = test_alloc(n * sizeof(float)), *g = test_alloc(n * sizeof(float));
    FILE *fp;
    update_args a = args_at(c, 1);
    for (i = 0, k = 0; i < c->n_arrays; k += c->counts[i++])
        memcpy(all + k, c->params[i], c->counts[i] * sizeof(float));
    snprintf(path, sizeof path, "%s/%s.init.bin", dir, c->name);
    write_floats(path, all, n, "wb");
    snprintf(path, sizeof path, "%s/%s.txt", dir, c->name);
    fp = fopen(path, "w");
    fprintf(fp, "%d %d %.9g %.9g %.9g %.9g %.9g %d\n", n, STEPS, a.learning_rate, a.decay, a.B1,
            a.B2, a.eps, c->decoupled);
    fclose(fp);
    snprintf(path, sizeof path, "%s/%s.grads.bin", dir, c->name);
    for (t = 1; t <= STEPS; ++t) {
        /* gradients of the mean loss, of varying size and sign */
        for (i = 0; i < n; ++i) g[i] = (float)(rng_normal() * (0.1 + 0.3 * (i % 7)));
        write_floats(path, g, n, t == 1 ? "wb" : "ab");
        for (i = 0, k = 0; i < c->n_arrays; k += c->counts[i++]) {
            int j;
            for (j = 0; j < c->counts[i]; ++j) c->grads[i][j] = -BATCH * g[k + j];
        }
        a = args_at(c, t);
        if (c->l) c->l->update(*c->l, a);
        else distill_embedding_update(c->e, &distill_blas_cpu, a, a.learning_rate);
    }
    for (i = 0, k = 0; i < c->n_arrays; k += c->counts[i++])
        memcpy(all + k, c->params[i], c->counts[i] * sizeof(float));
    free(g);
    return all;
}

/* ---- a small network trained on the same batches as in PyTorch ----------------------------- */
#define NET_STEPS 4
static const char *net_cfg_fmt =
    "[net]\nbatch=4\nwidth=6\nheight=5\nchannels=3\n%s=1\nB1=0.9\nB2=0.999\neps=0.00000001\n"
    "learning_rate=0.01\ndecay=0.05\nmomentum=0.9\npolicy=constant\nmax_batches=100\n"
    "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=relu\n"
    "[avgpool]\n[connected]\noutput=3\nactivation=linear\n[softmax]\n";

/* float arrays of the network in the order the reference reads them */
static int net_params(network *net, float **arrays, int *counts)
{
    layer *conv = &net->layers[0], *fc = &net->layers[2];
    arrays[0] = conv->weights, counts[0] = conv->nweights;
    arrays[1] = conv->biases, counts[1] = conv->n;
    arrays[2] = fc->weights, counts[2] = fc->inputs * fc->outputs;
    arrays[3] = fc->biases, counts[3] = fc->outputs;
    return 4;
}

static void network_case(const char *name, int decoupled)
{
    char cfg[1024], path[600], cmd[800], label[128];
    float *arrays[4], *x, *y, *got, *ref;
    int counts[4], n_arrays, i, k, t, total_n = 0, per_batch;
    network *net;
    FILE *fp;
    double e;
    size_t read;
    snprintf(cfg, sizeof cfg, net_cfg_fmt, decoupled ? "adamw" : "adam");
    snprintf(path, sizeof path, "%s.cfg", name);
    net = parse_network_cfg(write_cfg(path, cfg));
    n_arrays = net_params(net, arrays, counts);
    for (i = 0; i < n_arrays; ++i) total_n += counts[i];
    got = test_alloc(total_n * sizeof(float));
    for (i = 0, k = 0; i < n_arrays; k += counts[i++]) memcpy(got + k, arrays[i], counts[i] * sizeof(float));
    snprintf(path, sizeof path, "%s/%s.init.bin", dir, name);
    write_floats(path, got, total_n, "wb");
    snprintf(path, sizeof path, "%s/%s.net", dir, name);
    fp = fopen(path, "w");
    fprintf(fp, "%d %d %.9g %.9g %.9g %.9g %.9g %d\n", NET_STEPS, net->batch, net->learning_rate,
            net->decay, net->B1, net->B2, net->eps, decoupled);
    fclose(fp);
    per_batch = net->inputs * net->batch;
    x = test_alloc(per_batch * sizeof(float));
    y = test_alloc(net->batch * sizeof(float));
    for (t = 0; t < NET_STEPS; ++t) {
        for (i = 0; i < per_batch; ++i) x[i] = (float)rng_uniform();
        memset(net->truth, 0, net->truths * net->batch * sizeof(float));
        for (i = 0; i < net->batch; ++i) {
            int c = (int)(rng_uniform() * 3) % 3;
            y[i] = (float)c;
            net->truth[i * net->truths + c] = 1;
        }
        snprintf(path, sizeof path, "%s/%s.x.bin", dir, name);
        write_floats(path, x, per_batch, t ? "ab" : "wb");
        snprintf(path, sizeof path, "%s/%s.y.bin", dir, name);
        write_floats(path, y, net->batch, t ? "ab" : "wb");
        memcpy(net->input, x, per_batch * sizeof(float));
        train_network_datum(net);
    }
    for (i = 0, k = 0; i < n_arrays; k += counts[i++]) memcpy(got + k, arrays[i], counts[i] * sizeof(float));
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/adam_reference.py '%s'", dir);
    ref = test_alloc(total_n * sizeof(float));
    snprintf(path, sizeof path, "%s/%s.torch.bin", dir, name);
    fp = system(cmd) ? 0 : fopen(path, "rb");
    read = fp ? fread(ref, sizeof(float), total_n, fp) : 0;
    if (fp) fclose(fp);
    e = read == (size_t)total_n ? rel_err(got, ref, total_n) : INFINITY;
    printf("INFO %s: %d weights after %d training steps, max |darknet - torch| / max |torch| = %.3g\n",
           name, total_n, NET_STEPS, e);
    snprintf(label, sizeof label, "%s_trains_as_torch", name);
    check_err(label, e, 1e-5);
    /* remove this case's files: the per-layer cases reuse the directory */
    snprintf(cmd, sizeof cmd, "rm -f '%s/%s'.*", dir, name);
    if (system(cmd)) {}
    free(x), free(y), free(got), free(ref);
    free_network(net);
}

/* ---- the moments belong to the embedding ------------------------------------------------ */

/* Steps of embedding e under Adam with gradients from `seed` (the same for the same seed). */
static void adam_steps(tat_embedding *e, int steps, unsigned long long seed)
{
    adam_case c = {"moments", 0, 0, {0}, {0}, {0}, 0, e};
    size_t nw = (size_t)e->out_c * e->in_c * e->ksize * e->ksize, j;
    int t;
    rng_seed(seed);
    for (t = 1; t <= steps; ++t) {
        update_args a = args_at(&c, t);
        for (j = 0; j < nw; ++j) e->weight_grads[j] = (float)rng_normal();
        for (j = 0; j < (size_t)e->out_c; ++j)
            e->scale_grads[j] = (float)rng_normal(), e->bias_grads[j] = (float)rng_normal();
        distill_embedding_update(e, &distill_blas_cpu, a, a.learning_rate);
    }
}

/* distill_embedding_init gives moments exactly when [net] asks for Adam, zeroed and sized by the
   embedding; tat_embedding_free frees them. An embedding made again in the same place (a later
   layer's state where a freed one was) starts from zero moments of its own size: its Adam steps
   equal, to the bit, those of an embedding of the same values made elsewhere. */
static void moments_follow_the_embedding(void)
{
    network net;
    tat_embedding e, fresh;
    tat_rng rng = tat_rng_seeded(17);
    size_t n, j;
    int zero = 1, same;
    memset(&net, 0, sizeof(net));
    distill_embedding_init(&e, &net, 3, 4, 1, &rng);
    report(!e.adam_m && !e.adam_v, "embedding_no_moments_without_adam", "SGD: moments %p %p",
           (void *)e.adam_m, (void *)e.adam_v);
    tat_embedding_free(&e);
    net.adam = 1;
    distill_embedding_init(&e, &net, 2, 3, 1, &rng);
    n = tat_embedding_num_params(&e);
    for (j = 0; e.adam_m && e.adam_v && j < n; ++j) zero = zero && e.adam_m[j] == 0 && e.adam_v[j] == 0;
    report(e.adam_m && e.adam_v && zero, "embedding_moments_with_adam", "%zu parameters: moments missing or not zero", n);
    adam_steps(&e, 3, 5);
    tat_embedding_free(&e);
    report(!e.adam_m && !e.adam_v, "embedding_moments_freed_with_it", "moments %p %p after the free",
           (void *)e.adam_m, (void *)e.adam_v);
    /* larger, in the same place */
    distill_embedding_init(&e, &net, 5, 6, 3, &rng);
    distill_embedding_init(&fresh, &net, 5, 6, 3, &rng);
    n = (size_t)6 * 5 * 3 * 3;
    memcpy(fresh.weights, e.weights, n * sizeof(float));
    adam_steps(&e, 2, 9);
    adam_steps(&fresh, 2, 9);
    same = !memcmp(e.weights, fresh.weights, n * sizeof(float)) &&
           !memcmp(e.scales, fresh.scales, 6 * sizeof(float)) && !memcmp(e.biases, fresh.biases, 6 * sizeof(float));
    report(same, "embedding_made_again_has_its_own_moments", "the embedding made where a smaller one was steps otherwise than a fresh one");
    tat_embedding_free(&e);
    tat_embedding_free(&fresh);
}

/* A student with a learned-key [tat_distill], an [anchor_distill] on its embeddings and a
   [fitnet_distill], trained under adam=1 and adamw=1: every learned distillation parameter
   moves, every one stays finite. */
static const char *distill_teacher_cfg =
    "[net]\nbatch=2\nwidth=6\nheight=6\nchannels=3\n"
    "[convolutional]\nfilters=5\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[avgpool]\n[softmax]\n";
static const char *distill_student_fmt =
    "[net]\nbatch=2\nwidth=6\nheight=6\nchannels=3\n%s=1\nB1=0.9\nB2=0.999\neps=0.00000001\n"
    "learning_rate=0.01\ndecay=0.0005\nmomentum=0.9\npolicy=constant\nmax_batches=100\n"
    "[convolutional]\nfilters=3\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[tat_distill]\nfrom=-1\nteacher_layer=0\nteacher_channels=5\nsize=3\nkey=learned\n"
    "[anchor_distill]\nembeddings=-1\nanchors=3,3\n"
    "[fitnet_distill]\nfrom=0\nteacher_layer=0\nteacher_channels=5\n"
    "[avgpool]\n[softmax]\n";

static void distill_layers_train_under_adam(const char *mode)
{
    char cfg[2048], name[128];
    network *teacher, *net;
    tat_tensor_list params = {0};
    float *before;
    size_t total_n, k, moved = 0, finite = 0;
    int i, t;
    snprintf(cfg, sizeof cfg, distill_student_fmt, mode);
    srand(3);
    teacher = parse_network_cfg(write_cfg("adam-teacher.cfg", distill_teacher_cfg));
    net = parse_with_teacher(write_cfg("adam-student.cfg", cfg), teacher);
    for (i = 0; i < net->n; ++i)
        if (distill_is_layer(&net->layers[i])) distill_layer_tensors(&net->layers[i], 0, &params, 0);
    total_n = tat_tensor_list_floats(&params);
    before = test_alloc(total_n * sizeof(float));
    for (i = 0, k = 0; i < params.n; k += params.t[i++].n) memcpy(before + k, params.t[i].data, params.t[i].n * sizeof(float));
    for (t = 0; t < 3; ++t) {
        fill_input(net, 30 + t);
        memset(net->truth, 0, net->truths * net->batch * sizeof(float));
        for (i = 0; i < net->batch; ++i) net->truth[i * net->truths + i % net->truths] = 1;
        train_network_datum(net);
    }
    for (i = 0, k = 0; i < params.n; ++i) {
        size_t j;
        for (j = 0; j < params.t[i].n; ++j, ++k) {
            moved += params.t[i].data[j] != before[k];
            finite += distill_finite(params.t[i].data[j]);
        }
    }
    snprintf(name, sizeof name, "distill_layers_train_under_%s", mode);
    /* the BN scales start at 1 and the biases at 0: Adam moves every one from its first step */
    report(total_n > 0 && moved == total_n && finite == total_n, name,
           "%zu of %zu parameters moved, %zu finite", moved, total_n, finite);
    tat_tensor_list_free(&params);
    free(before);
    free_network(net); /* and its teacher */
}

static const char *conv_cfg =
    "[net]\nbatch=4\nwidth=5\nheight=4\nchannels=3\nadam=1\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"
    "[connected]\noutput=5\nactivation=linear\n";

int main(void)
{
    adam_case cases[6];
    float *result[6];
    network *nets[2];
    tat_embedding emb[2];
    char cmd[800];
    int i, n_cases = 0;
    if (!make_scratch_dir()) return 1;
    rng_seed(11);
    srand(5);
    network_case("network_adam", 0);
    network_case("network_adamw", 1);
    moments_follow_the_embedding();
    distill_layers_train_under_adam("adam");
    distill_layers_train_under_adam("adamw");
    for (i = 0; i < 2; ++i) {
        layer *conv, *fc;
        adam_case *c;
        nets[i] = parse_network_cfg(write_cfg(i ? "adamw.cfg" : "adam.cfg", conv_cfg));
        conv = &nets[i]->layers[0];
        fc = &nets[i]->layers[1];
        /* BN scales away from 1 and biases away from 0, so decay acts on them too */
        {
            int j;
            for (j = 0; j < conv->n; ++j) conv->scales[j] = 1 + 0.5f * urand(), conv->biases[j] = urand();
            for (j = 0; j < fc->outputs; ++j) fc->biases[j] = urand();
        }
        c = &cases[n_cases++];
        *c = (adam_case){i ? "conv_bn_adamw" : "conv_bn_adam", i, 3,
                         {conv->weights, conv->biases, conv->scales},
                         {conv->weight_updates, conv->bias_updates, conv->scale_updates},
                         {conv->nweights, conv->n, conv->n}, conv, 0};
        c = &cases[n_cases++];
        *c = (adam_case){i ? "connected_adamw" : "connected_adam", i, 2,
                         {fc->weights, fc->biases},
                         {fc->weight_updates, fc->bias_updates},
                         {fc->inputs * fc->outputs, fc->outputs}, fc, 0};
        tat_rng rng = tat_rng_from_rand();
        tat_embedding_init(&emb[i], 3, 4, 3, &rng);
        tat_embedding_alloc_moments(&emb[i]);
        {
            int j;
            for (j = 0; j < 4; ++j) emb[i].scales[j] = 1 + 0.5f * urand(), emb[i].biases[j] = urand();
        }
        c = &cases[n_cases++];
        *c = (adam_case){i ? "embedding_adamw" : "embedding_adam", i, 3,
                         {emb[i].weights, emb[i].scales, emb[i].biases},
                         {emb[i].weight_grads, emb[i].scale_grads, emb[i].bias_grads},
                         {4 * 3 * 3 * 3, 4, 4}, 0, &emb[i]};
    }
    for (i = 0; i < n_cases; ++i) result[i] = run_case(&cases[i]);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/adam_reference.py '%s'", dir);
    if (system(cmd)) {
        report(0, "adam_reference", "%s failed", cmd);
        return finish_layer_test();
    }
    for (i = 0; i < n_cases; ++i) {
        char path[600], name[128];
        int n = total(&cases[i]);
        float *ref = test_alloc(n * sizeof(float));
        FILE *fp;
        size_t got;
        double e;
        snprintf(path, sizeof path, "%s/%s.torch.bin", dir, cases[i].name);
        fp = fopen(path, "rb");
        got = fp ? fread(ref, sizeof(float), n, fp) : 0;
        if (fp) fclose(fp);
        e = got == (size_t)n ? rel_err(result[i], ref, n) : INFINITY;
        printf("INFO %s: %d parameters after %d steps, max |darknet - torch| / max |torch| = %.3g\n",
               cases[i].name, n, STEPS, e);
        snprintf(name, sizeof name, "%s_equals_torch_optim", cases[i].name);
        check_err(name, e, 1e-5);
        free(ref);
        free(result[i]);
    }
    for (i = 0; i < 2; ++i) {
        tat_embedding_free(&emb[i]);
        free_network(nets[i]);
    }
    return finish_layer_test();
}
