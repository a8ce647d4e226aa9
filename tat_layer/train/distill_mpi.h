#ifndef DISTILL_MPI_H
#define DISTILL_MPI_H
/*
 * Distributed training (distill_mpi.c). The hooks Darknet calls are declared in darknet.h
 * (patch 0070); this is what the plugin's commands use besides.
 */

/* This process's rank on its machine when launched by mpirun or srun in an MPI=1 build (one
 * GPU per local rank), else -1. */
int distill_mpi_local_rank(void);

#ifdef DISTILL_MPI
#include <stddef.h>
/* The fastest of `repeats` averagings of `floats` host floats over every rank, in seconds, by
 * the training path (fused buffers, MPI); sets *ranks. For make bench-mpi. */
double distill_mpi_time_allreduce(size_t floats, int repeats, int *ranks);
#endif

#endif
