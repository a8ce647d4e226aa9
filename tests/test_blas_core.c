/* Which BLAS core replaces a generic one (tat_layer/core/blas_core.h): every kind of core against
 * every kind of CPU. The start-up itself (re-execution, the user's choice, the loop guard) is
 * tests/test_blas_core.sh's, through the binary.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <stdio.h>
#include <string.h>

#include "blas_core.h"
#include "test_helpers.h"

int main(void)
{
    static const struct {
        const char *core;
        int avx2_fma, avx512;
        const char *want; /* NULL: keep the library's core */
    } cases[] = {
        {"Prescott", 1, 1, "SkylakeX"},   /* the case: generic core on an AVX-512 CPU */
        {"Prescott", 1, 0, "Haswell"},
        {"Prescott", 0, 0, NULL},         /* an SSE3 CPU: nothing better */
        {"Core2", 1, 0, "Haswell"},
        {"Nehalem", 1, 1, "SkylakeX"},
        {"Sandybridge", 1, 0, "Haswell"}, /* AVX without AVX2 kernels */
        {"Haswell", 1, 1, NULL},          /* not generic: left as the library chose */
        {"Zen", 1, 0, NULL},
        {"SkylakeX", 1, 1, NULL},
        {"Cooperlake", 1, 1, NULL},
        {"SapphireRapids", 1, 1, NULL},
        {"Sandybridge", 0, 0, NULL},
    };
    int i;
    for (i = 0; i < (int)(sizeof cases / sizeof cases[0]); ++i) {
        const char *got = tat_blas_upgrade(cases[i].core, cases[i].avx2_fma, cases[i].avx512);
        char name[128];
        int ok = cases[i].want ? got && !strcmp(got, cases[i].want) : got == NULL;
        snprintf(name, sizeof name, "blas_core_upgrade_%s_avx2_%d_avx512_%d", cases[i].core,
                 cases[i].avx2_fma, cases[i].avx512);
        report(ok, name, "got %s, want %s", got ? got : "(keep)", cases[i].want ? cases[i].want : "(keep)");
    }
    report(tat_blas_upgrade(NULL, 1, 1) == NULL, "blas_core_upgrade_no_core_name", "a library without a core name is left alone");
    fprintf(stderr, "%d checks, %d failed\n", test_checks, test_failures);
    return test_exit_status();
}
