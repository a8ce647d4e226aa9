/* libFuzzer targets for the reliability work (issue 7), one source, two programs:
 *   -DFUZZ_CFG      the input is the body of a [tat_distill] or [anchor_distill] section,
 *                   parsed after a small student with a teacher attached; a network that
 *                   parses is then trained for one step (forward, backward, update);
 *   -DFUZZ_WEIGHTS  the input is a .weights file, loaded into a student with distillation
 *                   layers (conv + BN, learned key, shared anchor embeddings, connected).
 * Darknet and the plugin report bad input with exit(1); the program is linked with
 * -Wl,--wrap=exit so that exit() during an input jumps back here instead: a rejected input
 * is a normal outcome, only crashes and sanitizer reports are findings (Darknet's error()
 * exits too since the malformed-cfg patch).
 * fopen/fclose are wrapped too, to close the files a rejected input left open.
 * FUZZ_WRITE_SEED=<path> writes a valid weights file for the weights target's seed corpus.
 */
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "darknet.h"
#include "plugin.h"

void __real_exit(int status);

static jmp_buf escape;
static int armed;

void __wrap_exit(int status)
{
    if (armed) {
        armed = 0;
        longjmp(escape, 1);
    }
    __real_exit(status);
}

/* Files opened during an input and not closed when it was rejected (load_weights exits
   with its file open): closed after the jump back, or the process runs out of descriptors. */
FILE *__real_fopen(const char *path, const char *mode);
int __real_fclose(FILE *fp);
static FILE *open_files[64];

FILE *__wrap_fopen(const char *path, const char *mode)
{
    FILE *fp = __real_fopen(path, mode);
    int i;
    for (i = 0; fp && armed && i < 64; ++i)
        if (!open_files[i]) {
            open_files[i] = fp;
            break;
        }
    return fp;
}

int __wrap_fclose(FILE *fp)
{
    int i;
    for (i = 0; i < 64; ++i)
        if (open_files[i] == fp) open_files[i] = 0;
    return __real_fclose(fp);
}

static void close_leftovers(void)
{
    int i;
    for (i = 0; i < 64; ++i)
        if (open_files[i]) {
            __real_fclose(open_files[i]);
            open_files[i] = 0;
        }
}

static char tmp_path[4096];
static network *teacher;

static const char teacher_cfg[] =
    "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\n\n"
    "[convolutional]\nbatch_normalize=1\nfilters=6\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"
    "[maxpool]\nsize=2\nstride=2\n";

/* layers 0 conv, 1 maxpool (4 x 4 x 4): the distill sections come after layer 1 */
static const char student_head[] =
    "[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\nlearning_rate=0.01\nmomentum=0.9\ndecay=0.0005\n\n"
    "[convolutional]\nbatch_normalize=1\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n\n"
    "[maxpool]\nsize=2\nstride=2\n\n";

static const char student_tail[] =
    "\n\n[connected]\noutput=3\nactivation=linear\n\n[softmax]\n";

static void write_file(const char *path, const void *a, size_t na, const void *b, size_t nb,
                       const void *c, size_t nc)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        abort();
    }
    fwrite(a, 1, na, fp);
    if (nb) fwrite(b, 1, nb, fp);
    if (nc) fwrite(c, 1, nc, fp);
    fclose(fp);
}

static void attach(network *net)
{
    net->teacher = teacher;
}

/* The parsed networks point at the one teacher: detach it before freeing them. */
static void free_student(network *net)
{
    net->teacher = 0;
    free_network(net);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    train_plugin_hooks(&darknet_plugin);
    const char *dir = getenv("TMPDIR");
    int fd;
    (void)argc;
    (void)argv;
    snprintf(tmp_path, sizeof(tmp_path), "%s/fuzz-distill-XXXXXX", dir ? dir : "/tmp");
    fd = mkstemp(tmp_path);
    if (fd < 0) {
        perror(tmp_path);
        abort();
    }
    close(fd);
    write_file(tmp_path, teacher_cfg, strlen(teacher_cfg), 0, 0, 0, 0);
    teacher = parse_network_cfg(tmp_path);
    teacher->cfgfile = "teacher.cfg";
    train_parse_network_hook = attach;
#ifdef FUZZ_WEIGHTS
    if (getenv("FUZZ_WRITE_SEED")) {
        static const char body[] =
            "[tat_distill]\nteacher_layer=1\nteacher_channels=6\nkey=learned\ngrid=2,2\ngroups=2\n\n"
            "[anchor_distill]\nembeddings=-1\nanchors=2,2";
        network *net;
        write_file(tmp_path, student_head, strlen(student_head), body, strlen(body), student_tail,
                   strlen(student_tail));
        net = parse_network_cfg(tmp_path);
        save_weights(net, getenv("FUZZ_WRITE_SEED"));
        free_student(net);
        unlink(tmp_path);
        __real_exit(0);
    }
#endif
    return 0;
}

#ifdef FUZZ_CFG
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *sections[] = {"[tat_distill]\n", "[anchor_distill]\n",
                                     "[tat_distill]\nteacher_layer=1\nteacher_channels=6\n\n[anchor_distill]\n"};
    static network *volatile net;
    const char *section;
    size_t i;
    if (size < 1) return 0;
    section = sections[data[0] % 3];
    ++data;
    --size;
    /* stay inside the section: a new section header would fuzz the rest of Darknet's parser */
    for (i = 0; i < size; ++i)
        if (data[i] == '[' && (i == 0 || data[i - 1] == '\n')) return 0;
    {
        FILE *fp = fopen(tmp_path, "wb");
        fputs(student_head, fp);
        fputs(section, fp);
        fwrite(data, 1, size, fp);
        fputs(student_tail, fp);
        fclose(fp);
    }
    net = 0;
    armed = 1;
    if (setjmp(escape) == 0) {
        net = parse_network_cfg(tmp_path);
        net->cfgfile = "fuzz.cfg";
        train_network_datum(net);
        armed = 0;
        free_student(net);
    }
    /* a rejected cfg leaks the half-built network: Darknet exits there, it has no unwinding */
    armed = 0;
    close_leftovers();
    return 0;
}
#endif

#ifdef FUZZ_WEIGHTS
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char body[] =
        "[tat_distill]\nteacher_layer=1\nteacher_channels=6\nkey=learned\ngrid=2,2\ngroups=2\n\n"
        "[anchor_distill]\nembeddings=-1\nanchors=2,2";
    static network *net;
    static char weights_path[4200];
    if (!net) {
        write_file(tmp_path, student_head, strlen(student_head), body, strlen(body), student_tail,
                   strlen(student_tail));
        net = parse_network_cfg(tmp_path);
        snprintf(weights_path, sizeof(weights_path), "%s.weights", tmp_path);
    }
    write_file(weights_path, data, size, 0, 0, 0, 0);
    armed = 1;
    if (setjmp(escape) == 0) load_weights(net, weights_path);
    armed = 0;
    close_leftovers();
    return 0;
}
#endif
