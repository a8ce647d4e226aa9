#define _GNU_SOURCE /* gettid */
#include "tat_fail.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The thread that failed first (0: none yet). exit() is not safe to run in two threads at
 * once (the atexit handlers are freed twice): Darknet's loader threads can all meet the same
 * bad file, so only the first one to fail reports and exits; the others wait for the process
 * to end. The first thread may fail again: a harness that wraps exit() with a jump back (the
 * fuzz targets) rejects one input after another in one thread. */
static _Atomic pid_t failing_thread;

void tat_vfail(const char *prefix, const char *fmt, va_list ap)
{
    pid_t self = gettid(), none = 0;
    if (!atomic_compare_exchange_strong(&failing_thread, &none, self) && none != self)
        for (;;) pause();
    /* one write of the whole line: ranks and threads that fail together do not interleave */
    char line[4096];
    int n = snprintf(line, sizeof line, "%s", prefix ? prefix : "");
    if (n < 0) n = 0;
    if ((size_t)n < sizeof line) vsnprintf(line + n, sizeof line - n, fmt, ap);
    fprintf(stderr, "%s\n", line);
    exit(1);
}

void tat_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tat_vfail(0, fmt, ap);
}

static void out_of_memory(size_t bytes, const char *file, int line)
{
    tat_fail("%s:%d: out of memory allocating %zu bytes", file, line, bytes);
}

void *tat_calloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p;
    if (size && n > (size_t)-1 / size) out_of_memory((size_t)-1, file, line);
    p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size, file, line);
    return p;
}

void *tat_realloc_at(void *p, size_t n, size_t size, const char *file, int line)
{
    void *q;
    if (size && n > (size_t)-1 / size) out_of_memory((size_t)-1, file, line);
    q = realloc(p, n && size ? n * size : 1);
    if (!q) out_of_memory(n * size, file, line);
    return q;
}

char *tat_strdup_at(const char *s, const char *file, int line)
{
    size_t n = strlen(s) + 1;
    char *d = tat_calloc_at(n, 1, file, line);
    memcpy(d, s, n);
    return d;
}
