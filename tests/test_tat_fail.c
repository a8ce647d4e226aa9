/* tat_fail, the one error function, when several threads fail at once (Darknet's loader
 * threads meeting the same bad file): exactly one line on stderr and exit status 1, however
 * many threads fail together. Two exit() calls running at once freed the exit handlers twice
 * (a double free AddressSanitizer reported on the segmentation bad-mask test). And the one
 * thread that failed may fail again when exit() comes back (the fuzz targets wrap exit() with
 * a jump back to reject one input after another): it must report again, not wait forever.
 * Linked with -Wl,--wrap=exit (Makefile) for that case.
 * Prints PASS/FAIL lines; exit status 1 if any check failed. */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tat_fail.h"
#include "test_helpers.h"

enum { MAX_THREADS = 16 };

void __real_exit(int status);
static jmp_buf jump_back;
static int exit_jumps_back;

void __wrap_exit(int status)
{
    if (exit_jumps_back) longjmp(jump_back, 1);
    __real_exit(status);
}

static pthread_barrier_t start_together;

static void *fail_now(void *arg)
{
    pthread_barrier_wait(&start_together);
    tat_fail("thread %d: bad file", (int)(size_t)arg);
}

/* In a child: one thread fails three times, exit() jumping back each time, then exits with
 * status 3; SIGALRM ends it if a failure waits instead. Never returns. */
static void fail_three_times(void)
{
    volatile int failures = 0;
    alarm(10);
    exit_jumps_back = 1;
    setjmp(jump_back);
    if (failures < 3) {
        ++failures;
        tat_fail("thread 0: bad file %d", (int)failures);
    }
    _exit(3);
}

/* A child where `threads` threads call tat_fail at the same moment (0: fail_three_times); its
 * stderr is read back. Returns the exit status (-1: it did not exit) and counts the lines it
 * wrote. */
static int run_child(int threads, int *lines, char *first, size_t first_size)
{
    int fds[2], status;
    pid_t pid;
    char buf[8192];
    size_t got = 0;
    ssize_t n;

    if (pipe(fds)) return -2;
    pid = fork();
    if (pid < 0) return -2;
    if (pid == 0) {
        pthread_t ids[MAX_THREADS];
        dup2(fds[1], 2);
        close(fds[0]);
        if (threads == 0) fail_three_times();
        pthread_barrier_init(&start_together, 0, (unsigned)threads);
        for (int i = 0; i < threads; ++i) pthread_create(&ids[i], 0, fail_now, (void *)(size_t)i);
        for (int i = 0; i < threads; ++i) pthread_join(ids[i], 0);
        _exit(7); /* not reached: the first failure ends the process */
    }
    close(fds[1]);
    while ((n = read(fds[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)n;
    close(fds[0]);
    buf[got] = 0;
    waitpid(pid, &status, 0);
    *lines = 0;
    for (size_t i = 0; i < got; ++i) *lines += buf[i] == '\n';
    snprintf(first, first_size, "%.*s", (int)strcspn(buf, "\n"), buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int main(void)
{
    const int counts[] = {1, 2, 8, MAX_THREADS};
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; ++c) {
        int worst_status = 1, worst_lines = 1, bad_text = 0;
        char name[64], line[256] = "";
        /* a race shows only sometimes: many tries, every one must be clean */
        for (int attempt = 0; attempt < 40; ++attempt) {
            int lines;
            int status = run_child(counts[c], &lines, line, sizeof line);
            if (status != 1) worst_status = status;
            if (lines != 1) worst_lines = lines;
            if (strncmp(line, "thread ", 7) || !strstr(line, ": bad file")) bad_text = 1;
            if (worst_status != 1 || worst_lines != 1 || bad_text) break;
        }
        snprintf(name, sizeof name, "tat_fail_%d_threads_one_line_exit_1", counts[c]);
        report(worst_status == 1 && worst_lines == 1 && !bad_text, name,
               "exit status %d, %d lines on stderr, first '%s'", worst_status, worst_lines, line);
    }
    {
        int lines;
        char line[256] = "";
        int status = run_child(0, &lines, line, sizeof line);
        report(status == 3 && lines == 3 && !strcmp(line, "thread 0: bad file 1"),
               "tat_fail_again_after_exit_jumped_back",
               "exit status %d (3 expected), %d lines (3 expected), first '%s'", status, lines, line);
    }
    return test_exit_status();
}
