#ifndef TAT_FAIL_H
#define TAT_FAIL_H
/*
 * How the plugin stops on a user's mistake or a resource it cannot get: one line on stderr,
 * exit status 1 (a bug in the plugin's own use of the math is TAT_ASSERT's, tat.h). And the one
 * checked allocator: calloc/realloc/strdup that never return NULL, out of memory being such a
 * one-line failure naming the size and the caller's file and line. No Darknet type.
 */
#include <stdarg.h>
#include <stddef.h>

#if defined(__GNUC__)
#define TAT_NORETURN __attribute__((noreturn))
#define TAT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define TAT_NORETURN
#define TAT_PRINTF(f, a)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The message (printf's format and arguments, no newline) on one line of stderr, exit 1. */
void tat_fail(const char *fmt, ...) TAT_NORETURN TAT_PRINTF(1, 2);
/* The same after `prefix` (NULL: none), for the functions that name where a problem is. */
void tat_vfail(const char *prefix, const char *fmt, va_list ap) TAT_NORETURN TAT_PRINTF(2, 0);

void *tat_calloc_at(size_t n, size_t size, const char *file, int line);
void *tat_realloc_at(void *p, size_t n, size_t size, const char *file, int line);
char *tat_strdup_at(const char *s, const char *file, int line);
#define tat_calloc(n, size) tat_calloc_at((n), (size), __FILE__, __LINE__)
#define tat_realloc(p, n, size) tat_realloc_at((p), (n), (size), __FILE__, __LINE__)
#define tat_strdup(s) tat_strdup_at((s), __FILE__, __LINE__)

#ifdef __cplusplus
}
#endif
#endif
