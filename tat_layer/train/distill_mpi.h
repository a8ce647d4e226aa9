#ifndef DISTILL_MPI_H
#define DISTILL_MPI_H
/*
 * Distributed training (distill_mpi.c): synchronous data-parallel training over MPI (and NCCL
 * for device buffers). Outside an MPI launch (and in builds without MPI=1) each training hook
 * is a no-op returning its input.
 */
#include "darknet.h"

/* The training-loop hooks (train/plugin.c). train_mpi_start: after the replicas are loaded,
 * compares what the ranks run (cfg and .data contents, iteration budget, batch, seen) and
 * refuses a mismatch, returns the data seed (rank 0's on every rank); in a build without MPI it
 * refuses a start by a launcher of more than one process; train_mpi_after_backward: every
 * mini-batch, before the update (gradients summed over the ranks), returns the loss to report;
 * train_mpi_data_parts: 1 when each mini-batch of a load is drawn in order from its own
 * stream (parts set), train_mpi_seed_data_part seeds one; train_mpi_writes_files: 0 on
 * every rank but rank 0. */
unsigned train_mpi_start(network *net, const char *datacfg, unsigned data_seed);
float train_mpi_after_backward(network *net, float error, int update);
int train_mpi_data_parts(int *parts, int images);
void train_mpi_seed_data_part(int part);
int train_mpi_writes_files(void);
/* The stop signal every rank acts on at the end of this iteration: under a launcher, the one
 * the ranks agreed in the iteration's reduction (any rank's signal stops every rank at the same
 * iteration), else local_signal (this process's own, 0 for none). */
int train_mpi_agreed_stop(int local_signal);

/* This process's rank on its machine when launched by mpirun or srun in an MPI=1 build (one
 * GPU per local rank), else -1. */
int train_mpi_local_rank(void);

#ifdef DISTILL_MPI
#include <stddef.h>
/* The fastest of `repeats` averagings of `floats` host floats over every rank, in seconds, by
 * the training path (fused buffers, MPI); sets *ranks. For make bench-mpi. */
double train_mpi_time_allreduce(size_t floats, int repeats, int *ranks);
#endif

#endif
