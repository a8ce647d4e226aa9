/*
 * Synchronous data-parallel training: one process per rank (mpirun, srun), every rank trains
 * on its own mini-batches with its own frozen teacher, and before each update the accumulated
 * gradients of every learned parameter are averaged over the ranks in a few fused buffers
 * (distill_fused.c): MPI_Allreduce on host arrays, ncclAllReduce on device arrays. Every rank
 * then applies the same update, so the replicas stay identical.
 *
 * Darknet reaches the distill_mpi_* hooks through its plugin interface (train/plugin.c); outside an MPI launch, and in builds
 * without MPI=1, each is a no-op and Darknet runs as before.
 */
#include "distill_mpi.h"
#include "tat_fail.h"
#include "plugin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "distill_fused.h"
#include "distill_plugin.h"
#include "network.h" /* get_layer_string */

#ifndef DISTILL_MPI

int train_mpi_local_rank(void) { return -1; }

/* What Open MPI's mpirun, PMI / PMIx launchers and Slurm's srun say the job's size is. */
static const char *const size_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", 0};

unsigned train_mpi_start(network *net, const char *datacfg, unsigned data_seed)
{
    const char *const *name;
    (void)net;
    (void)datacfg;
    /* without MPI each process would train alone and all would write the same files */
    for (name = size_vars; *name; ++name) {
        const char *v = getenv(*name);
        if (v && atoi(v) > 1)
            tat_fail("distributed training: %s=%s: a launcher started %s processes, but this darknet is built without MPI (each would train alone, writing the same files): build it with make MPI=1 and launch build/cpu-mpi/darknet (build/gpu-mpi/darknet with GPU=1)",
                     *name, v, v);
    }
    return data_seed;
}
int train_mpi_agreed_stop(int local_signal) { return local_signal; }
float train_mpi_after_backward(network *net, float error, int update)
{
    (void)net;
    (void)update;
    return error;
}
int train_mpi_data_parts(int *parts, int images)
{
    (void)parts;
    (void)images;
    return 0;
}
void train_mpi_seed_data_part(int part) { (void)part; }
int train_mpi_writes_files(void) { return 1; }

#else /* DISTILL_MPI */

#include <mpi.h>
#include <sched.h>
#include <stdint.h>

#include <signal.h>

#include "train_loop.h" /* train_stop_requested */
#include "utils.h" /* what_time_is_it_now */

static const char *env_first(const char *const *names)
{
    for (; *names; ++names) {
        const char *v = getenv(*names);
        if (v && *v) return v;
    }
    return 0;
}

/* Open MPI's mpirun, PMIx and PMI launchers (srun among them) set these. */
static const char *const rank_vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", 0};
static const char *const local_rank_vars[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID",
                                              "MPI_LOCALRANKID", 0};

int train_mpi_local_rank(void)
{
    const char *v;
    if (!env_first(rank_vars)) return -1;
    v = env_first(local_rank_vars);
    return v ? atoi(v) : 0;
}
#ifdef GPU
#ifndef DISTILL_NCCL
#error "a GPU build with MPI=1 needs NCCL (DISTILL_NCCL)"
#endif
#include <nccl.h>

#include "blas.h" /* scal_gpu */
#include "cuda.h" /* check_error */
#endif

/* Large enough that a ResNet-18 student with its TaT embeddings (16.4M floats) takes four calls;
 * small enough to bound the extra memory to 16 MiB per side, and below the size where Open MPI
 * 4.1's all-reduce slowed down 15-fold on the 2-core test machine (docs/distributed.md). */
#define BUCKET_FLOATS ((size_t)4 << 20)
/* The replicas are compared (a hash of every parameter) at iterations that are multiples of this,
 * as Darknet's backups, and at the last one. */
#define CHECK_EVERY 100

static struct {
    int active, rank, size;
    network *net;       /* the one network this rank trains */
    unsigned run_seed;  /* rank 0's, the same on every rank */
    uint64_t load;      /* loads started so far (one per iteration) */
    int parts;          /* mini-batches in the current load */
    /* averaged before every update: gradients, BatchNorm rolling statistics, and the loss */
    tat_tensor_list reduce_host, reduce_device;
    /* every learned parameter and its gradient, BN statistics: broadcast at start, compared */
    tat_tensor_list state_host, state_device;
    /* this rank's summed loss over the iteration's mini-batches, then whether it got a SIGINT,
       a SIGTERM: averaged with the gradients, so that every rank learns of any rank's stop in
       the same iteration */
    float loss[3];
    int agreed_stop;    /* the signal every rank stops on after this iteration, or 0 */
    int agreed_exit;    /* every rank exits with the same error: finalise, no abort */
    float *host_bucket;
    double last_time, first_time;
    long iterations;
    float images_per_s, images_per_s_avg;
    float reduce_ms; /* the last iteration's averaging, wall time */
    void (*inner_progress)(network *net);
#ifdef GPU
    ncclComm_t nccl;
    float *device_bucket;
#endif
} dm;

/* One line naming the rank and the problem, exit 1 (at_exit stops the other ranks). */
static void fail(const char *fmt, ...) TAT_NORETURN TAT_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
    char who[96];
    va_list ap;
    snprintf(who, sizeof who, "distributed training: rank %d of %d: ", dm.rank, dm.size);
    va_start(ap, fmt);
    tat_vfail(who, fmt, ap);
}

/* ---- transports ---------------------------------------------------------------------------- */

static void host_copy(float *dst, const float *src, size_t n, void *ctx)
{
    (void)ctx;
    memcpy(dst, src, n * sizeof(float));
}

static void host_scale(float *buf, size_t n, float s, void *ctx)
{
    size_t i;
    (void)ctx;
    for (i = 0; i < n; ++i) buf[i] *= s;
}

static void mpi_sum(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static void mpi_bcast(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    MPI_Bcast(buf, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
}

static tat_transport host_transport(void (*reduce)(float *, size_t, void *))
{
    tat_transport t = {.reduce = reduce, .copy = host_copy, .scale = host_scale, .bucket = dm.host_bucket,
                       .bucket_floats = BUCKET_FLOATS};
    return t;
}

#ifdef GPU
static void nccl_check(ncclResult_t r, const char *what)
{
    if (r != ncclSuccess) fail("NCCL %s failed: error %d", what, (int)r);
}

/* Every device step of a reduction is queued on the default stream (where Darknet's kernels
 * run) without a host wait: the packing copies, the all-reduce and the scaling stay in order
 * there, and the host waits once per reduction, in nccl_wait. */
static void device_copy(float *dst, const float *src, size_t n, void *ctx)
{
    (void)ctx;
    check_error(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, 0));
}

static void device_scale(float *buf, size_t n, float s, void *ctx)
{
    (void)ctx;
    scal_gpu((int)n, s, buf, 1);
}

static void nccl_sum(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    nccl_check(ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, dm.nccl, 0), "all-reduce");
}

static void nccl_bcast(float *buf, size_t n, void *ctx)
{
    (void)ctx;
    nccl_check(ncclBroadcast(buf, buf, n, ncclFloat, 0, dm.nccl, 0), "broadcast");
}

/* Waits for the queued reduction while polling NCCL's asynchronous errors: a peer that died or
 * left makes NCCL report an error here, and the job ends (at_exit aborts the others), instead of
 * a blocking synchronize waiting until the launcher kills it. */
static void nccl_wait(const char *what)
{
    for (;;) {
        ncclResult_t async = ncclSuccess;
        cudaError_t e = cudaStreamQuery(0);
        if (e == cudaSuccess) return;
        if (e != cudaErrorNotReady) check_error(e);
        nccl_check(ncclCommGetAsyncError(dm.nccl, &async), "error query");
        if (async != ncclSuccess) {
            ncclCommAbort(dm.nccl);
            dm.nccl = 0;
            fail("NCCL %s: %s (error %d): a peer failed or left; stopping", what, ncclGetErrorString(async),
                 (int)async);
        }
        sched_yield();
    }
}

static tat_transport device_transport(void (*reduce)(float *, size_t, void *))
{
    tat_transport t = {.reduce = reduce, .copy = device_copy, .scale = device_scale,
                       .bucket = dm.device_bucket, .bucket_floats = BUCKET_FLOATS};
    return t;
}
#endif

/* Sums (then scales) or broadcasts both lists: host arrays over MPI, device arrays over NCCL. */
static void reduce_lists(tat_tensor_list *host, tat_tensor_list *device, int broadcast, float scale)
{
    tat_transport h = host_transport(broadcast ? mpi_bcast : mpi_sum);
    tat_fused_reduce(host, &h, scale);
#ifdef GPU
    if (device->n) {
        tat_transport d = device_transport(broadcast ? nccl_bcast : nccl_sum);
        tat_fused_reduce(device, &d, scale);
        nccl_wait(broadcast ? "broadcast" : "all-reduce");
    }
#else
    (void)device;
#endif
}

/* ---- what a network learns ----------------------------------------------------------------- */

/* Appends layer l's tensors: parameters (grads = 0) or gradients (grads = 1), and the BatchNorm
 * rolling statistics either way (averaged with the gradients, broadcast with the parameters). */
static void add_layer(const network *net, int i, int grads, tat_tensor_list *host,
                      tat_tensor_list *device)
{
    const layer *l = &net->layers[i];
    size_t n;
    tat_tensor_list *to = host;
    int on_device = 0;
    if (distill_is_layer(l)) {
        distill_layer_tensors(l, grads, host, device);
        return;
    }
    if (l->type != CONVOLUTIONAL && l->type != DECONVOLUTIONAL && l->type != CONNECTED) {
        if (l->update)
            fail("%s: layer %d [%s]: no distributed training for this layer type (convolutional, deconvolutional, connected and the distillation layers have it)",
                 net->cfgfile ? net->cfgfile : "cfg", i, get_layer_string(l->type));
        return;
    }
    n = l->type == CONNECTED ? (size_t)l->outputs : (size_t)l->n;
#ifdef GPU
    on_device = net->gpu_index >= 0;
    if (on_device) to = device;
#endif
    if (!on_device) {
        tat_tensor_list_add(to, grads ? l->weight_updates : l->weights, l->nweights);
        tat_tensor_list_add(to, grads ? l->bias_updates : l->biases, n);
        if (l->batch_normalize) {
            tat_tensor_list_add(to, grads ? l->scale_updates : l->scales, n);
            tat_tensor_list_add(to, l->rolling_mean, n);
            tat_tensor_list_add(to, l->rolling_variance, n);
        }
    }
#ifdef GPU
    else {
        tat_tensor_list_add(to, grads ? l->weight_updates_gpu : l->weights_gpu, l->nweights);
        tat_tensor_list_add(to, grads ? l->bias_updates_gpu : l->biases_gpu, n);
        if (l->batch_normalize) {
            tat_tensor_list_add(to, grads ? l->scale_updates_gpu : l->scales_gpu, n);
            tat_tensor_list_add(to, l->rolling_mean_gpu, n);
            tat_tensor_list_add(to, l->rolling_variance_gpu, n);
        }
    }
#endif
}

static void collect(network *net)
{
    int i, grads;
    for (i = 0; i < net->n; ++i) {
        /* a connected layer's nweights is not set by Darknet */
        if (net->layers[i].type == CONNECTED)
            net->layers[i].nweights = net->layers[i].inputs * net->layers[i].outputs;
        for (grads = 0; grads < 2; ++grads) add_layer(net, i, grads, &dm.state_host, &dm.state_device);
        add_layer(net, i, 1, &dm.reduce_host, &dm.reduce_device);
    }
    tat_tensor_list_add(&dm.reduce_host, dm.loss, 3);
}

/* A hash of every parameter, gradient and statistic this rank holds. */
static uint64_t state_hash(void)
{
    uint64_t h = TAT_HASH_START;
    int i;
    for (i = 0; i < dm.state_host.n; ++i)
        h = tat_hash_bytes(h, dm.state_host.t[i].data, dm.state_host.t[i].n * sizeof(float));
#ifdef GPU
    for (i = 0; i < dm.state_device.n; ++i) {
        size_t off;
        for (off = 0; off < dm.state_device.t[i].n; off += BUCKET_FLOATS) {
            size_t k = dm.state_device.t[i].n - off < BUCKET_FLOATS ? dm.state_device.t[i].n - off : BUCKET_FLOATS;
            check_error(cudaMemcpy(dm.host_bucket, dm.state_device.t[i].data + off, k * sizeof(float),
                                   cudaMemcpyDeviceToHost));
            h = tat_hash_bytes(h, dm.host_bucket, k * sizeof(float));
        }
    }
#endif
    return h;
}

/* Every rank compares its hash with the others'; a difference stops the job. */
static void check_identical(int iteration)
{
    uint64_t mine = state_hash(), *all = tat_calloc(dm.size, sizeof(uint64_t));
    int r;
    MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (r = 1; r < dm.size; ++r)
        if (all[r] != all[0]) {
            /* rank 0 says it once; every rank stops */
            if (dm.rank == 0)
                tat_fail("distributed training: iteration %d: rank %d's parameters differ from rank 0's; stopping",
                         iteration, r);
            exit(1);
        }
    if (dm.rank == 0)
        printf("mpi: iteration %d: parameters bit-identical on all %d ranks (hash %016llx)\n", iteration,
               dm.size, (unsigned long long)all[0]);
    free(all);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

/* A rank that exits non-zero (bad data, a NaN loss, a failed allocation) takes the job down at
 * once rather than leaving the others waiting in a collective; a clean exit finalises. */
static void at_exit(int status, void *arg)
{
    int done = 0;
    (void)arg;
    MPI_Finalized(&done);
    if (done) return;
#ifdef GPU
    if (dm.nccl) {
        /* a failing rank must not wait for its peers: abort, which never blocks */
        if (status) ncclCommAbort(dm.nccl);
        else ncclCommDestroy(dm.nccl);
        dm.nccl = 0;
    }
    if (dm.device_bucket) cudaFree(dm.device_bucket);
    dm.device_bucket = 0;
#endif
    tat_tensor_list_free(&dm.reduce_host);
    tat_tensor_list_free(&dm.reduce_device);
    tat_tensor_list_free(&dm.state_host);
    tat_tensor_list_free(&dm.state_device);
    free(dm.host_bucket);
    dm.host_bucket = 0;
    if (status && !dm.agreed_exit) {
        fprintf(stderr, "distributed training: rank %d of %d failed (exit status %d, cause above); stopping every rank\n",
                dm.rank, dm.size, status);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, status);
    }
    MPI_Finalize();
}

/* Rank 0 prints the job's throughput under each progress line. */
static void progress(network *net)
{
    if (dm.inner_progress) dm.inner_progress(net);
    printf("mpi: %d ranks, global batch %d, %.1f images/s (%.1f images/s since the first iteration), all-reduce %.3f ms\n",
           dm.size, dm.size * net->batch * net->subdivisions, dm.images_per_s, dm.images_per_s_avg, dm.reduce_ms);
}

/* ---- what the ranks run ---------------------------------------------------------------- */

static uint64_t file_hash(const char *path)
{
    FILE *fp = path ? fopen(path, "rb") : 0;
    uint64_t h = TAT_HASH_START;
    char buf[65536];
    size_t n;
    if (!fp) return 0;
    while ((n = fread(buf, 1, sizeof buf, fp)) > 0) h = tat_hash_bytes(h, buf, n);
    fclose(fp);
    return h;
}

/* Ranks that run different cfgs, data or budgets would hang in a collective (one rank done,
   the others waiting) or average unrelated gradients: every rank compares with rank 0 before
   anything is exchanged, and a mismatch stops every rank with one line from rank 0. */
static void check_same_run(const network *net, const char *datacfg)
{
    enum { MAX_BATCHES, BATCH, SUBDIVISIONS, SEEN, CFG, TEACHER_CFG, DATA, FIELDS };
    static const char *names[FIELDS] = {"max_batches", "batch", "subdivisions",
                                        "seen (the iteration count of the weights file)",
                                        "the cfg file's contents", "the teacher cfg file's contents",
                                        "the .data file's contents"};
    uint64_t mine[FIELDS], *all = tat_calloc((size_t)dm.size * FIELDS, sizeof(uint64_t));
    int r, f;
    mine[MAX_BATCHES] = (uint64_t)net->max_batches;
    mine[BATCH] = (uint64_t)net->batch;
    mine[SUBDIVISIONS] = (uint64_t)net->subdivisions;
    mine[SEEN] = (uint64_t)*net->seen;
    mine[CFG] = file_hash(net->cfgfile);
    mine[TEACHER_CFG] = net->teacher ? file_hash(net->teacher->cfgfile) : 0;
    mine[DATA] = file_hash(datacfg);
    MPI_Allgather(mine, FIELDS, MPI_UINT64_T, all, FIELDS, MPI_UINT64_T, MPI_COMM_WORLD);
    for (r = 1; r < dm.size; ++r)
        for (f = 0; f < FIELDS; ++f) {
            char values[96] = "";
            if (all[r * FIELDS + f] == all[f]) continue;
            if (f <= SEEN)
                snprintf(values, sizeof values, " (%llu on rank %d, %llu on rank 0)",
                         (unsigned long long)all[r * FIELDS + f], r, (unsigned long long)all[f]);
            dm.agreed_exit = 1;
            if (dm.rank == 0)
                tat_fail("distributed training: rank %d differs from rank 0 in %s%s (%s, %s): every rank must run the same cfg, .data file, weights and budget; stopping",
                         r, names[f], values, net->cfgfile ? net->cfgfile : "cfg", datacfg);
            exit(1);
        }
    free(all);
}

unsigned train_mpi_start(network *net, const char *datacfg, unsigned data_seed)
{
    int ok = 0, provided;
    if (!env_first(rank_vars)) return data_seed;
    MPI_Initialized(&ok);
    if (!ok) MPI_Init_thread(0, 0, MPI_THREAD_MULTIPLE, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &dm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dm.size);
    on_exit(at_exit, 0);
    dm.active = 1;
    dm.net = net;
    check_same_run(net, datacfg);
    /* one progress report: rank 0's */
    if (dm.rank && !freopen("/dev/null", "w", stdout)) fail("cannot silence stdout");
    dm.host_bucket = tat_calloc(BUCKET_FLOATS, sizeof(float));
    collect(net);
#ifdef GPU
    if (net->gpu_index >= 0) {
        ncclUniqueId id;
        if (dm.rank == 0) nccl_check(ncclGetUniqueId(&id), "unique id");
        MPI_Bcast(&id, sizeof(id), MPI_BYTE, 0, MPI_COMM_WORLD);
        cuda_set_device(net->gpu_index);
        nccl_check(ncclCommInitRank(&dm.nccl, dm.size, id, dm.rank), "communicator");
        check_error(cudaMalloc((void **)&dm.device_bucket, BUCKET_FLOATS * sizeof(float)));
    } else if (dm.state_device.n) {
        fail("parameters on a device, but the network is on the host");
    }
#endif
    /* rank 0's seed and parameters: identical replicas whatever each rank's clock said */
    dm.run_seed = data_seed;
    MPI_Bcast(&dm.run_seed, 1, MPI_UNSIGNED, 0, MPI_COMM_WORLD);
    reduce_lists(&dm.state_host, &dm.state_device, 1, 1);
    dm.inner_progress = train_progress_hook;
    train_progress_hook = progress;
    dm.first_time = dm.last_time = what_time_is_it_now();
    if (dm.rank == 0)
        printf("mpi: %d ranks; global batch %d (%d per rank, %d mini-batches of %d); %zu floats averaged per iteration in %d fused buffers\n",
               dm.size, dm.size * net->batch * net->subdivisions, net->batch * net->subdivisions,
               net->subdivisions, net->batch,
               tat_tensor_list_floats(&dm.reduce_host) + tat_tensor_list_floats(&dm.reduce_device),
               (int)((tat_tensor_list_floats(&dm.reduce_host) + BUCKET_FLOATS - 1) / BUCKET_FLOATS +
                     (tat_tensor_list_floats(&dm.reduce_device) + BUCKET_FLOATS - 1) / BUCKET_FLOATS));
    return dm.run_seed;
}

float train_mpi_after_backward(network *net, float error, int update)
{
    float before;
    double now;
    int iteration;
    if (!dm.active) return error;
    if (net != dm.net)
        fail("one network per rank: use one GPU per rank (-gpus with one device, or none)");
    before = dm.loss[0];
    dm.loss[0] += error;
    if (!update) return error;
    /* read once: a signal arriving after this is acted on in the next iteration */
    {
        int sig = train_stop_requested();
        dm.loss[1] = sig == SIGINT;
        dm.loss[2] = sig == SIGTERM;
    }
    now = what_time_is_it_now();
    reduce_lists(&dm.reduce_host, &dm.reduce_device, 0, 1.0f / dm.size);
    dm.reduce_ms = (float)(1000 * (what_time_is_it_now() - now));
    if (!dm.agreed_stop) dm.agreed_stop = dm.loss[1] > 0 ? SIGINT : dm.loss[2] > 0 ? SIGTERM : 0;
    /* the iteration's mini-batch losses add up to the ranks' mean */
    error = dm.loss[0] - before;
    dm.loss[0] = dm.loss[1] = dm.loss[2] = 0;
    now = what_time_is_it_now();
    ++dm.iterations;
    dm.images_per_s = dm.size * net->batch * net->subdivisions / (now - dm.last_time);
    dm.images_per_s_avg = dm.iterations * dm.size * net->batch * net->subdivisions / (now - dm.first_time);
    dm.last_time = now;
    iteration = (int)get_current_batch(net);
    if (iteration % CHECK_EVERY == 0 || iteration == net->max_batches) check_identical(iteration);
    return error;
}

int train_mpi_data_parts(int *parts, int images)
{
    if (!dm.active) return 0;
    if (images % dm.net->batch)
        fail("a load of %d images is not whole mini-batches of %d", images, dm.net->batch);
    *parts = dm.parts = images / dm.net->batch;
    ++dm.load;
    return 1;
}

void train_mpi_seed_data_part(int part)
{
    /* the global index of this mini-batch: loads x (ranks x parts) + rank's parts + part */
    uint64_t g = (dm.load - 1) * (uint64_t)(dm.size * dm.parts) + (uint64_t)dm.rank * dm.parts + part;
    srand(tat_stream_seed(dm.run_seed, g));
}

int train_mpi_writes_files(void) { return !dm.active || dm.rank == 0; }

int train_mpi_agreed_stop(int local_signal) { return dm.active ? dm.agreed_stop : local_signal; }

double train_mpi_time_allreduce(size_t floats, int repeats, int *ranks)
{
    tat_tensor_list l = {0};
    float *grads = tat_calloc(floats, sizeof(float));
    double start, best = 1e30;
    int ok = 0, provided, i;
    MPI_Initialized(&ok);
    if (!ok) {
        MPI_Init_thread(0, 0, MPI_THREAD_MULTIPLE, &provided);
        on_exit(at_exit, 0);
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &dm.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dm.size);
    if (!dm.host_bucket) dm.host_bucket = tat_calloc(BUCKET_FLOATS, sizeof(float));
    tat_tensor_list_add(&l, grads, floats);
    for (i = 0; i < repeats; ++i) {
        MPI_Barrier(MPI_COMM_WORLD); /* time the reduction, not the ranks' skew */
        start = what_time_is_it_now();
        reduce_lists(&l, &dm.reduce_device, 0, 1.0f / dm.size);
        if (what_time_is_it_now() - start < best) best = what_time_is_it_now() - start;
    }
    *ranks = dm.size;
    tat_tensor_list_free(&l);
    free(grads);
    return best;
}

#endif /* DISTILL_MPI */
