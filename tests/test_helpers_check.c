/* Checks of tests/test_helpers.h and tests/tat_cases.h themselves: the relative error must fail
 * on any NaN or infinity wherever it sits and give exact known values otherwise; the reporter
 * must print the lines tests/run.sh counts and set the exit status; the generator must keep
 * the sequence test_tat_math's fixtures and finite differences were made with; the table of
 * cases must be well formed. Uses no Darknet symbol.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tat_cases.h"
#include "test_helpers.h"

#define NELEM(x) (sizeof(x) / sizeof((x)[0]))

/* the error must fail any tolerance, however loose, and any sum it goes into */
static int fails_every_tol(double e) { return !(e <= 1e300) && !(e + 0.5 <= 1e300); }

static void test_rel_err_non_finite(void)
{
    const float nan = NAN, inf = INFINITY;
    const float ones4[] = {1, 1, 1, 1}, ones2[] = {1, 1};
    const float nan_inside[] = {1, nan, nan, 1}, nan_first[] = {nan, 1}, nan_last[] = {1, nan};
    const float inf_last[] = {1, inf}, minf_first[] = {-inf, 1};
    double e;

    /* the old copies let the next finite element overwrite a NaN */
    e = rel_err(nan_inside, ones4, 4);
    report(fails_every_tol(e), "helpers_rel_err_nan_inside_fails", "{1,NaN,NaN,1} vs ones: %g", e);
    e = rel_err(nan_first, ones2, 2);
    report(fails_every_tol(e), "helpers_rel_err_nan_first_fails", "{NaN,1} vs ones: %g", e);
    e = rel_err(nan_last, ones2, 2);
    report(fails_every_tol(e), "helpers_rel_err_nan_last_fails", "{1,NaN} vs ones: %g", e);
    e = rel_err(ones2, nan_first, 2);
    report(fails_every_tol(e), "helpers_rel_err_nan_in_reference_fails", "ones vs {NaN,1}: %g", e);
    e = rel_err(inf_last, ones2, 2);
    report(fails_every_tol(e), "helpers_rel_err_inf_fails", "{1,Inf} vs ones: %g", e);
    e = rel_err(minf_first, ones2, 2);
    report(fails_every_tol(e), "helpers_rel_err_minus_inf_fails", "{-Inf,1} vs ones: %g", e);
    e = rel_err(ones2, inf_last, 2);
    report(fails_every_tol(e), "helpers_rel_err_inf_in_reference_fails", "ones vs {1,Inf}: %g", e);
    /* equal infinities are no agreement: a kernel that overflows where the reference does
     * is still wrong for these tests */
    e = rel_err(inf_last, inf_last, 2);
    report(fails_every_tol(e), "helpers_rel_err_equal_infs_fail", "{1,Inf} vs itself: %g", e);
    /* callers add errors of several arrays: a bad one must not be hidden by a good one */
    e = rel_err(ones4, ones4, 4) + rel_err(nan_inside, ones4, 4);
    report(fails_every_tol(e), "helpers_rel_err_sum_with_nan_fails", "0 + error of {1,NaN,NaN,1}: %g", e);
}

static void test_rel_err_values(void)
{
    const float a[] = {1, 2.5f, -4, 0}, b[] = {1, 2, -4, 0};
    const float same[] = {-3, 0, 1e-7f, 5e30f};
    const float tiny[] = {0, 0.000244140625f}, zeros[] = {0, 0}; /* 2^-12 */
    const float big_got[] = {8, 0}, small_ref[] = {1, 0};
    double e;

    e = rel_err(same, same, NELEM(same));
    report(e == 0, "helpers_rel_err_equal_arrays_zero", "got %.17g, want 0", e);
    e = rel_err(a, b, 0);
    report(e == 0, "helpers_rel_err_empty_zero", "got %.17g, want 0", e);
    /* max |a - b| = 0.5 over max |b| = 4 */
    e = rel_err(a, b, NELEM(a));
    report(e == 0.125, "helpers_rel_err_known_value", "got %.17g, want 0.125", e);
    /* the scale is the reference's (second argument), not the larger of the two */
    e = rel_err(big_got, small_ref, 2);
    report(e == 7, "helpers_rel_err_scale_is_reference", "got %.17g, want 7", e);
    /* a near-zero reference compares absolutely: the scale floor is 1e-3 */
    e = rel_err(tiny, zeros, 2);
    report(e == 0.000244140625 / 1e-3, "helpers_rel_err_floor_1e-3", "got %.17g, want %.17g", e,
           0.000244140625 / 1e-3);
}

/* Runs the reporter into a temporary file and compares what it wrote and counted; the
 * counters are put back afterwards, so the deliberate FAIL does not fail this program. */
static void test_reporter(void)
{
    const float got[] = {1, NAN, 1}, ref[] = {1, 1, 1};
    /* a PASS line carries no reason */
    const char *want = "PASS one\n"
                       "FAIL two: because 7\n"
                       "SKIP three: no device\n"
                       "FAIL close: relative error inf > 0.0001\n"
                       "FAIL err: relative error nan > 0.0001\n"
                       "PASS fine\n"
                       "FAIL multi: a PASS b\n";
    int checks = test_checks, failures = test_failures, counted_checks, counted_failures, status, ok;
    char text[512];
    size_t n;
    FILE *out = tmpfile();
    if (!out) {
        report(0, "helpers_reporter_lines", "tmpfile failed");
        return;
    }
    test_checks = test_failures = 0;
    test_out = out;
    report(1, "one", "unused reason");
    report(0, "two", "because %d", 7);
    report_skip("three", "no device");
    check_close("close", got, ref, 3, 1e-4);
    check_err("err", NAN, 1e-4);
    check_err("fine", 0, 1e-4);
    report(0, "multi", "a\nPASS b"); /* must stay one FAIL line */
    test_out = NULL;
    counted_checks = test_checks, counted_failures = test_failures, status = test_exit_status();
    test_checks = checks, test_failures = failures;
    rewind(out);
    n = fread(text, 1, sizeof(text) - 1, out);
    text[n] = 0;
    fclose(out);
    ok = !strcmp(text, want);
    report(ok, "helpers_reporter_lines", "wrote: %s", text); /* newlines fold to spaces */
    report(counted_checks == 6 && counted_failures == 4, "helpers_reporter_counts",
           "%d checks, %d failures (want 6, 4; a SKIP is neither)", counted_checks, counted_failures);
    report(status == 1 && test_exit_status() == (failures ? 1 : 0),
           "helpers_exit_status_follows_failures", "exit status %d after 4 failures", status);
}

static void test_generator(void)
{
    /* xorshift64 (13, 7, 17) from test_tat_math's starting state, worked out independently */
    const unsigned long long want[3] = {0xDC1B77AE0BF34DADULL, 0x64F0EEB9026E6076ULL,
                                        0x7B07CE91E5906136ULL};
    unsigned long long saved = rng_state, got[3], a[4], b[4], c[4];
    int i, ok_seq, same, differ;
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (i = 0; i < 3; ++i) got[i] = rng_u64();
    ok_seq = got[0] == want[0] && got[1] == want[1] && got[2] == want[2];
    report(ok_seq, "helpers_rng_sequence_unchanged", "first outputs %016llX %016llX %016llX", got[0],
           got[1], got[2]);

    rng_seed(42);
    for (i = 0; i < 4; ++i) a[i] = rng_u64();
    rng_seed(42);
    for (i = 0; i < 4; ++i) b[i] = rng_u64();
    rng_seed(43);
    for (i = 0; i < 4; ++i) c[i] = rng_u64();
    same = !memcmp(a, b, sizeof a);
    differ = memcmp(a, c, sizeof a) != 0;
    rng_seed(0);
    report(same && differ && rng_state != 0, "helpers_rng_seed_deterministic",
           "same seed same sequence %d, other seed other sequence %d, seed 0 state %llX", same,
           differ, rng_state);

    {
        size_t n = 4096, j;
        float *x = rand_array(n, 2.5f), *y = copy_array(x, n);
        double mean = 0, lo = 1e9, hi = -1e9;
        for (j = 0; j < n; ++j) {
            mean += x[j] / (double)n;
            lo = x[j] < lo ? x[j] : lo;
            hi = x[j] > hi ? x[j] : hi;
        }
        report(lo >= -2.5 && hi <= 2.5 && hi - lo > 4.5 && fabs(mean) < 0.2,
               "helpers_rand_array_range", "min %g max %g mean %g, want within +-2.5, spread", lo, hi,
               mean);
        report(!memcmp(x, y, n * sizeof(float)), "helpers_copy_array_exact", "copy differs");
        free(x), free(y);
    }
    {
        size_t n = 20000, j;
        float *x = test_alloc(n * sizeof(float));
        double m = 0, v = 0;
        fill_normal(x, n, 1, 0);
        for (j = 0; j < n; ++j) m += x[j] / (double)n;
        for (j = 0; j < n; ++j) v += (x[j] - m) * (x[j] - m) / (double)n;
        report(fabs(m) < 0.05 && fabs(v - 1) < 0.05, "helpers_fill_normal_moments",
               "mean %g variance %g", m, v);
        free(x);
    }
    rng_state = saved;
}

static void test_case_table(void)
{
    /* test_tat_math's original pipeline cases: first and in this order (their inputs are that
     * test's shared random sequence) */
    static const char *first[] = {"groups_anchors_learnedkey_k3_perimage_7x9",
                                  "groups_anchors_identity_k1_batch_5x7", "full_identity_k3_batch_6x5",
                                  "anchors_learnedkey_k1_batch_11x6",
                                  "onegroup_grid3x2_learnedkey_k1_perimage_9x8"};
    char why[256] = "";
    int i, j, bad = 0;
    for (i = 0; i < TAT_NUM_CASES && !bad; ++i) {
        const tat_case *c = &tat_cases[i];
        const char *problem = NULL;
        if (!c->name || !*c->name) problem = "no name";
        else if (c->batch < 1 || c->student_c < 1 || c->teacher_c < 1 || c->h < 1 || c->w < 1)
            problem = "a size below 1";
        else if (c->grid_h <= 0 && c->anchor_h <= 0) problem = "neither a patch nor an anchor term";
        else if (c->grid_h > 0 && (c->grid_w < 1 || c->groups < 1)) problem = "grid_w or groups missing";
        else if (c->anchor_h > 0 && c->anchor_w < 1) problem = "anchor_w missing";
        else if (c->ksize != 1 && c->ksize != 3) problem = "ksize not 1 or 3";
        else if ((c->key_learned | c->per_image) & ~1) problem = "key_learned or per_image not 0/1";
        else if (c->qk_scale < 0 || c->patch_weight < 0 || c->anchor_weight < 0)
            problem = "a negative scale or weight";
        for (j = 0; j < i && !problem; ++j)
            if (!strcmp(tat_cases[j].name, c->name)) problem = "name used twice";
        if (problem) {
            snprintf(why, sizeof why, "case %d (%s): %s", i, c->name ? c->name : "?", problem);
            bad = 1;
        }
    }
    report(!bad, "cases_table_well_formed", "%s", why);
    bad = TAT_NUM_CASES < (int)NELEM(first);
    for (i = 0; i < (int)NELEM(first) && !bad; ++i) bad = strcmp(tat_cases[i].name, first[i]) != 0;
    report(!bad, "cases_table_math_originals_first", "the first %d entries are not %s ... in order",
           (int)NELEM(first), first[0]);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_rel_err_non_finite();
    test_rel_err_values();
    test_reporter();
    test_generator();
    test_case_table();
    return test_exit_status();
}
