#ifndef BLAS_CORE_H
#define BLAS_CORE_H
/*
 * Which kernels the BLAS library runs. OpenBLAS's dynamic-arch builds pick their kernels (the
 * "core") once, when the library loads, from the CPU model; a model newer than the library
 * gets a generic SSE3 core (Prescott) even on a CPU with AVX2 or AVX-512, and trains 2-5x
 * slower. At start-up we detect that and re-execute the program with OPENBLAS_CORETYPE set to
 * the core the CPU supports. A user's own OPENBLAS_CORETYPE always wins, and the re-executed
 * process sees the variable set, so it never re-executes again.
 * No Darknet types: the benchmark programs link this file too.
 */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Set in the re-executed process: the core the library had picked by itself. */
#define TAT_BLAS_LIBRARY_CHOICE_ENV "DISTILL_BLAS_LIBRARY_CORE"

/* The OpenBLAS core to use instead of `core` on a CPU with AVX2 + FMA (avx2_fma) and the
 * AVX-512 subsets OpenBLAS's SkylakeX kernels use (avx512), or NULL when `core` already
 * uses AVX2 or the CPU has nothing better. */
const char *tat_blas_upgrade(const char *core, int avx2_fma, int avx512);

/* Call first in main: re-executes the program (argv as given) with a better core when the
 * library runs a generic one and the user did not choose. Returns only when nothing is to be
 * done or the re-execution failed. */
void tat_blas_select(char **argv);

/* One line naming the BLAS library, its core (and how it was chosen) and its threads. */
void tat_blas_describe(char *line, size_t size);

/* Darknet's start-up: tat_blas_select, then the line on stderr for training commands (a
 * "train" among the first three arguments). */
void tat_blas_startup(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
