/* BLAS kernel selection at start-up: see blas_core.h. */
#include "blas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef CBLAS
#include <cblas.h>
#endif

/* OpenBLAS x86-64 cores whose kernels use AVX2 (and FMA) or more. */
static int core_has_avx2(const char *core)
{
    static const char *cores[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids", 0};
    int i;
    for (i = 0; cores[i]; ++i)
        if (!strcmp(core, cores[i])) return 1;
    return 0;
}

const char *tat_blas_upgrade(const char *core, int avx2_fma, int avx512)
{
    if (!core || core_has_avx2(core) || !avx2_fma) return NULL;
    return avx512 ? "SkylakeX" : "Haswell";
}

#if defined(CBLAS) && (defined(__x86_64__) || defined(__i386__))
/* __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 registers. */
static int cpu_avx2_fma(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
static int cpu_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
#else
static int cpu_avx2_fma(void) { return 0; }
static int cpu_avx512(void) { return 0; }
#endif

void tat_blas_select(char **argv)
{
#ifdef CBLAS
    const char *core = openblas_get_corename(), *better;
    if (getenv("OPENBLAS_CORETYPE")) return; /* the user's choice, or ours after re-executing */
    better = tat_blas_upgrade(core, cpu_avx2_fma(), cpu_avx512());
    if (!better) return;
    setenv(TAT_BLAS_LIBRARY_CHOICE_ENV, core, 1);
    setenv("OPENBLAS_CORETYPE", better, 1);
    execv("/proc/self/exe", argv);
    /* not re-executed: go on with the generic core, and let the line say so */
    unsetenv("OPENBLAS_CORETYPE");
    fprintf(stderr, "BLAS: could not re-execute with OPENBLAS_CORETYPE=%s; staying on %s\n", better, core);
#else
    (void)argv;
#endif
}

void tat_blas_describe(char *line, size_t size)
{
#ifdef CBLAS
    const char *core = openblas_get_corename(), *asked = getenv("OPENBLAS_CORETYPE");
    const char *library_choice = getenv(TAT_BLAS_LIBRARY_CHOICE_ENV);
    const char *better = tat_blas_upgrade(core, cpu_avx2_fma(), cpu_avx512());
    char how[256];
    if (asked && library_choice && !strcmp(core, asked))
        snprintf(how, sizeof(how), "set at start-up: the library picked the generic %s on this CPU", library_choice);
    else if (asked && library_choice)
        snprintf(how, sizeof(how), "OPENBLAS_CORETYPE=%s set at start-up was not taken by the library", asked);
    else if (asked && better)
        snprintf(how, sizeof(how), "your OPENBLAS_CORETYPE=%s; this CPU could run %s", asked, better);
    else if (asked)
        snprintf(how, sizeof(how), "your OPENBLAS_CORETYPE=%s", asked);
    else
        snprintf(how, sizeof(how), "the library's own choice");
    snprintf(line, size, "BLAS: %s; core %s (%s); %d threads", openblas_get_config(), core, how,
             openblas_get_num_threads());
#else
    snprintf(line, size, "BLAS: none (Darknet's own gemm loops)");
#endif
}

void tat_blas_startup(int argc, char **argv)
{
    char line[512];
    int i;
    tat_blas_select(argv);
    for (i = 1; i < argc && i <= 3; ++i)
        if (!strcmp(argv[i], "train")) {
            tat_blas_describe(line, sizeof(line));
            fprintf(stderr, "%s\n", line);
            return;
        }
}
