#ifndef TAT_TEST_HELPERS_H
#define TAT_TEST_HELPERS_H
/* Shared by the numerical test programs (one .c file each, so everything here is static; no
 * Darknet dependency, so the GPU test can include it too):
 *   - PASS/FAIL/SKIP lines as tests/run.sh counts them, and the exit status that goes with them;
 *   - a seeded xorshift generator (the same sequence on every libc) and random arrays;
 *   - the one relative-error measure the implementation-against-implementation checks use. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* rel_err's NaN/infinity guarantee needs isfinite, which -ffast-math assumes true */
#ifdef __FAST_MATH__
#error "tests/test_helpers.h: do not build the tests with -ffast-math"
#endif

#if defined(__GNUC__)
#define TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TEST_PRINTF(f, a)
#endif

/* ---- reporting ------------------------------------------------------------------------- */
static int test_checks, test_failures;
/* nonzero: every check's reason also goes to stderr as "INFO <name>: <reason>", passed or not */
static int test_info_lines;
/* where PASS/FAIL/SKIP lines go; NULL = stdout (the helper's own test captures them) */
static FILE *test_out;

/* A reason is one line: a newline in it would start a line tests/run.sh might count. */
static inline void test_one_line(char *s)
{
    for (; *s; ++s)
        if (*s == '\n' || *s == '\r') *s = ' ';
}

static inline void report_v(int ok, const char *name, const char *fmt, va_list ap)
{
    char why[1024];
    FILE *out = test_out ? test_out : stdout;
    vsnprintf(why, sizeof why, fmt, ap);
    test_one_line(why);
    ++test_checks;
    if (ok) {
        fprintf(out, "PASS %s\n", name);
    } else {
        fprintf(out, "FAIL %s: %s\n", name, why);
        ++test_failures;
    }
    /* stdout first, so that a terminal or a shared log shows the lines in order */
    fflush(out);
    if (test_info_lines) fprintf(stderr, "INFO %s: %s\n", name, why);
}

/* One check: "PASS <name>", or "FAIL <name>: <reason>" and the program will exit 1. */
static inline TEST_PRINTF(3, 4) void report(int ok, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    report_v(ok, name, fmt, ap);
    va_end(ap);
}

/* "SKIP <name>: <reason>": neither passed nor failed. */
static inline TEST_PRINTF(2, 3) void report_skip(const char *name, const char *fmt, ...)
{
    char why[1024];
    FILE *out = test_out ? test_out : stdout;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    test_one_line(why);
    fprintf(out, "SKIP %s: %s\n", name, why);
    fflush(out);
}

/* main's return value: non-zero iff a check failed */
static inline int test_exit_status(void) { return test_failures ? 1 : 0; }

/* ---- relative error -------------------------------------------------------------------- */
/* max |a - b| / max(max |b|, 1e-3) (the floor: near-zero references compare absolutely).
 * +inf if any element of either array is NaN or infinite, so that the result fails every
 * `<= tol` and every sum of such errors stays +inf: a kernel that writes one NaN anywhere
 * must fail, whatever comes after it. */
static inline double rel_err(const float *a, const float *b, size_t n)
{
    double scale = 1e-3, worst = 0;
    size_t i;
    for (i = 0; i < n; ++i) {
        double d;
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d = fabs((double)a[i] - (double)b[i]);
        if (d > worst) worst = d;
        if (fabs(b[i]) > scale) scale = fabs(b[i]);
    }
    return worst / scale;
}

/* PASS iff err <= tol (NaN and +inf fail) */
static inline void check_err(const char *name, double err, double tol)
{
    report(err <= tol, name, "relative error %.3g > %.1g", err, tol);
}

static inline void check_close(const char *name, const float *got, const float *ref, size_t n,
                               double tol)
{
    check_err(name, rel_err(got, ref, n), tol);
}

/* ---- deterministic random numbers -------------------------------------------------------- */
/* xorshift64; the starting state is what test_tat_math has always used: its fixture inputs and
 * finite-difference directions are this sequence, so neither the start nor the steps change. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;

static inline unsigned long long rng_u64(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A small seed would start xorshift on a state with few bits set (its first outputs tiny), so
 * the seed is mixed first (splitmix64's finaliser); xorshift must not start at 0. */
static inline void rng_seed(unsigned long long seed)
{
    unsigned long long z = seed + 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    rng_state = z ? z : 0x9E3779B97F4A7C15ULL;
}

/* uniform in [0, 1), 53 bits */
static inline double rng_uniform(void)
{
    return (double)(rng_u64() >> 11) * (1.0 / 9007199254740992.0);
}

/* uniform in [-1, 1) */
static inline double rng_signed(void) { return 2.0 * rng_uniform() - 1.0; }

/* standard normal (Box-Muller, one value per pair of uniforms) */
static inline double rng_normal(void)
{
    double u1 = rng_uniform(), u2 = rng_uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static inline void fill_normal(float *x, size_t n, double scale, double offset)
{
    size_t i;
    for (i = 0; i < n; ++i) x[i] = (float)(offset + scale * rng_normal());
}

static inline void fill_uniform(float *x, size_t n, double lo, double hi)
{
    size_t i;
    for (i = 0; i < n; ++i) x[i] = (float)(lo + (hi - lo) * rng_uniform());
}

static inline void *test_alloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* n floats uniform in [-scale, scale); free() them */
static inline float *rand_array(size_t n, float scale)
{
    float *x = test_alloc(n * sizeof(float));
    size_t i;
    for (i = 0; i < n; ++i) x[i] = (float)(scale * rng_signed());
    return x;
}

static inline float *copy_array(const float *x, size_t n)
{
    float *y = test_alloc(n * sizeof(float));
    if (n) memcpy(y, x, n * sizeof(float));
    return y;
}

#endif
