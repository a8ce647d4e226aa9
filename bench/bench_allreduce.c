/* make bench-mpi: the time to average a given number of floats over every rank, through the
 * training path's fused buffers (tat_layer/train/distill_mpi.c), as the cost model in
 * docs/distributed.md needs it. Run under mpirun; prints one line on rank 0:
 *   <floats> floats (<MB> MB) over <ranks> ranks: <ms> ms, <GB/s> GB/s bus bandwidth */
#include <stdio.h>
#include <stdlib.h>

#include "distill_mpi.h"

int main(int argc, char **argv)
{
    size_t floats = argc > 1 ? (size_t)atof(argv[1]) : 16419752; /* ResNet-18 + TaT, docs */
    int repeats = argc > 2 ? atoi(argv[2]) : 5, ranks = 1, rank = 0;
    double s = train_mpi_time_allreduce(floats, repeats, &ranks);
    const char *r = getenv("OMPI_COMM_WORLD_RANK");
    if (r) rank = atoi(r);
    /* a ring all-reduce moves 2 (p - 1) / p of the data over each rank's link */
    if (rank == 0)
        printf("%zu floats (%.1f MB) over %d ranks: %.3f ms, %.2f GB/s bus bandwidth\n", floats,
               floats * 4 / 1e6, ranks, s * 1e3, ranks > 1 ? 2.0 * (ranks - 1) / ranks * floats * 4 / s / 1e9 : 0);
    return 0;
}
