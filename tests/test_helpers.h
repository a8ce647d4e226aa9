#ifndef TAT_TEST_HELPERS_H
#define TAT_TEST_HELPERS_H
/* Shared by the numerical test programs (one .c file each, so everything here is static; no
 * Darknet dependency, so the GPU test can include it too):
 *   - PASS/FAIL/SKIP lines as tests/run.sh counts them, and the exit status that goes with them;
 *   - a seeded xorshift generator (the same sequence on every libc) and random arrays;
 *   - the one relative-error measure the implementation-against-implementation checks use;
 *   - the one directional finite-difference check every gradient test uses. */
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

/* ---- directional finite differences ------------------------------------------------------ */
/* A loss of the n floats x, evaluated by the code under test (in float, accumulated in double). */
typedef double (*fd_loss_fn)(void *ctx);

typedef struct {
    double worst;          /* largest error over the directions (+inf for a NaN) */
    double fd, analytic;   /* the directional derivatives of the worst direction */
    double gnorm;          /* |g|_2 */
} fd_result;

/* Central differences of f along `directions` random normal directions u, with the step
 * step_rel x value_scale (value_scale <= 0: rms(x), floored at 1e-3). The analytic side is
 * <g, x+ - x-> with the perturbed floats as actually represented, so the rounding of x +- eps u
 * is no error. The error of a direction is |fd - analytic| divided by
 * max(|fd|, |analytic|, |g|_2 |x+ - x-|_2 / sqrt(n)): the last is the typical size of
 * <g, delta> for a random delta, so a direction that happens to be nearly orthogonal to g is
 * measured against the gradient's norm instead of a near-zero derivative (whose relative
 * error is only float noise divided by almost nothing, and differs between BLAS kernels).
 * x is perturbed in place and restored; f is called once more at the end at x itself. */
static inline fd_result fd_directional(float *x, size_t n, const float *g, fd_loss_fn f, void *ctx,
                                       double value_scale, double step_rel, int directions)
{
    fd_result r = {0, 0, 0, 0};
    double rms = 0, eps;
    float *x0 = copy_array(x, n), *dp = test_alloc(n * sizeof(float)), *dm = test_alloc(n * sizeof(float));
    size_t i;
    int rep;
    for (i = 0; i < n; i++) rms += (double)x[i] * x[i];
    rms = sqrt(rms / (double)(n ? n : 1));
    if (rms < 1e-3) rms = 1e-3;
    if (value_scale > 0) rms = value_scale;
    eps = step_rel * rms;
    for (i = 0; i < n; i++) r.gnorm += (double)g[i] * g[i];
    r.gnorm = sqrt(r.gnorm);
    for (rep = 0; rep < directions; rep++) {
        double lp, lm, fd, an = 0, dn = 0, denom, typical, err;
        for (i = 0; i < n; i++) {
            double u = rng_normal();
            dp[i] = (float)(x0[i] + eps * u);
            dm[i] = (float)(x0[i] - eps * u);
        }
        memcpy(x, dp, n * sizeof(float));
        lp = f(ctx);
        memcpy(x, dm, n * sizeof(float));
        lm = f(ctx);
        memcpy(x, x0, n * sizeof(float));
        fd = lp - lm;
        for (i = 0; i < n; i++) {
            double delta = (double)dp[i] - (double)dm[i]; /* both exact in double */
            an += (double)g[i] * delta;
            dn += delta * delta;
        }
        denom = fabs(fd) > fabs(an) ? fabs(fd) : fabs(an);
        typical = r.gnorm * sqrt(dn) / sqrt((double)n);
        if (typical > denom) denom = typical;
        err = denom > 0 ? fabs(fd - an) / denom : (fd == an ? 0 : INFINITY);
        if (!(err <= r.worst)) {
            r.worst = err;
            r.fd = fd / (2 * eps);
            r.analytic = an / (2 * eps);
        }
    }
    f(ctx); /* leave the code under test in its state at the unperturbed point */
    free(x0);
    free(dp);
    free(dm);
    return r;
}

/* One check of fd_directional: PASS iff the worst error is <= tol and the gradient is not 0. */
static inline void check_fd(const char *name, float *x, size_t n, const float *g, fd_loss_fn f,
                            void *ctx, double value_scale, double step_rel, int directions, double tol)
{
    fd_result r = fd_directional(x, n, g, f, ctx, value_scale, step_rel, directions);
    /* the margin, for a kernel or CPU on which it shrinks */
    printf("INFO %s: worst rel err %.3g of tol %g\n", name, r.worst, tol);
    report(r.worst <= tol && r.gnorm > 0, name,
           "n=%zu |g|=%.3g worst rel err %.3g (fd %.9g vs analytic %.9g) over %d directions, tol %g",
           n, r.gnorm, r.worst, r.fd, r.analytic, directions, tol);
}

#endif
