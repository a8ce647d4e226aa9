#include "input_checks.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "distill_common.h"
#include "train_loop.h" /* train_check_labels */
#include "list.h"
#include "option_list.h"
#include "utils.h"

void train_need_readable(const char *path, const char *what)
{
    struct stat st;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        tat_fail("%s: cannot open %s: %s", path, what, strerror(errno));
    }
    if (fstat(fileno(fp), &st) == 0 && !S_ISREG(st.st_mode)) {
        tat_fail("%s: %s is %s, not a file", path, what,
                S_ISDIR(st.st_mode) ? "a directory" : "a device or a pipe");
    }
    fclose(fp);
}

void train_need_writable_dir(const char *dir, const char *who)
{
    size_t size = strlen(dir) + 64;
    char *probe = tat_calloc(size, 1);
    int fd;
    snprintf(probe, size, "%s/.darknet-write-probe-%ld", dir, (long)getpid());
    fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0 || write(fd, "", 1) != 1) {
        const char *why = strerror(errno);
        if (fd >= 0) {
            close(fd);
            unlink(probe);
        }
        tat_fail("%s: cannot create a file in %s: %s", who, dir, why);
    }
    close(fd);
    unlink(probe);
    free(probe);
}

char *train_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;
    if (!slash) return tat_strdup(".");
    if (slash == path) return tat_strdup("/");
    d = tat_strdup(path);
    d[slash - path] = 0;
    return d;
}

static const char *name_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* realpath of the directory part + "/" + the last name, or NULL when the directory does not
   resolve. The last name is kept as written: it may not exist yet. */
static char *canonical_path(const char *path)
{
    char *dir = train_dir_of(path), *resolved = realpath(dir, 0), *out = 0;
    if (resolved) {
        size_t size = strlen(resolved) + strlen(name_of(path)) + 2;
        out = tat_calloc(size, 1);
        snprintf(out, size, "%s/%s", resolved, name_of(path));
        free(resolved);
    }
    free(dir);
    return out;
}

int train_same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    char *ca, *cb;
    int same;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    ca = canonical_path(a);
    cb = canonical_path(b);
    same = ca && cb && !strcmp(ca, cb);
    free(ca);
    free(cb);
    return same;
}

void train_refuse_output(const char *path, const char *what, const train_input *inputs, int n,
                         int named_by_user, const char *who)
{
    struct stat st;
    char *dir = train_dir_of(path);
    int i;
    for (i = 0; i < n; ++i) {
        const char *in = inputs[i].path;
        int is_dir = in && stat(in, &st) == 0 && S_ISDIR(st.st_mode);
        if (!in) continue;
        if (is_dir ? train_same_file(dir, in) : train_same_file(path, in)) {
            tat_fail("%s: %s: %s %s %s (%s): refusing to write it, nothing written", path, who, what,
                    is_dir ? "would go into" : "is the same file as", inputs[i].what, in);
        }
    }
    if (!named_by_user && lstat(path, &st) == 0) {
        tat_fail("%s: %s: %s already exists and this command did not create it: refusing to overwrite it (choose an empty folder), nothing written",
                path, who, what);
    }
    free(dir);
}

char *train_temp_path(const char *path)
{
    struct timespec now;
    size_t size = strlen(path) + 48;
    char *tmp = tat_calloc(size, 1);
    unsigned long noise;
    /* not rand(): a seeded run's random sequence must not depend on its saves */
    clock_gettime(CLOCK_REALTIME, &now);
    noise = (unsigned long)now.tv_nsec * 2654435761u ^ (unsigned long)now.tv_sec ^ (unsigned long)(size_t)tmp;
    snprintf(tmp, size, "%s.%ld-%08lx.tmp", path, (long)getpid(), noise & 0xffffffffu);
    return tmp;
}

void train_check_data_file(const char *datacfg)
{
    FILE *fp;
    char *line = 0;
    size_t cap = 0;
    ssize_t len;
    int number = 0;
    train_need_readable(datacfg, "the data file");
    fp = fopen(datacfg, "rb");
    while ((len = getline(&line, &cap, fp)) > 0) {
        char *s = line;
        ++number;
        if (memchr(line, 0, len)) {
            tat_fail("%s:%d: binary content: not a .data file of key=value lines", datacfg, number);
        }
        while (*s == ' ' || *s == '\t') ++s;
        if (!*s || *s == '\n' || *s == '\r' || *s == '#' || *s == ';') continue;
        if (!strchr(s, '=')) {
            s[strcspn(s, "\r\n")] = 0;
            tat_fail("%s:%d: '%.60s' is not key=value: not a .data file", datacfg, number, s);
        }
    }
    free(line);
    fclose(fp);
}

static list *read_data_file(const char *datacfg)
{
    train_check_data_file(datacfg);
    return read_data_cfg((char *)datacfg);
}

/* Darknet's data options: each key is the start of its line, which holds the value too. */
void train_free_data_options(list *options)
{
    node *n;
    for (n = options->front; n; n = n->next) {
        free(((kvp *)n->val)->key);
        free(n->val);
    }
    free_list(options);
}

char *train_need_field_file(list *options, const char *datacfg, const char *field, const char *def)
{
    char *value = option_find(options, (char *)field);
    char what[4200];
    if (!value && !def) return 0;
    snprintf(what, sizeof(what), "%s=%s in %.4000s", field, value ? "" : "(not given; Darknet's default)", datacfg);
    train_need_readable(value ? value : def, what);
    return value ? value : (char *)def;
}

void train_check_data_field_files(const char *datacfg)
{
    static const char *fields[] = {"train", "valid", "labels", "names", "tree", "map", 0};
    list *options = read_data_file(datacfg);
    int i;
    for (i = 0; fields[i]; ++i) train_need_field_file(options, datacfg, fields[i], 0);
    train_free_data_options(options);
}

int train_count_lines(const char *path)
{
    list *lines = get_paths((char *)path);
    int n = lines->size;
    free_list_contents(lines);
    free_list(lines);
    return n;
}

/* The labels file (labels=, Darknet's default when absent) must hold one line per class:
   Darknet's loops and validations read `classes` labels from it. Returns its name. */
static char *need_labels(list *options, const char *datacfg, int classes)
{
    char *labels = train_need_field_file(options, datacfg, "labels", "data/labels.list");
    int n = train_count_lines(labels);
    if (n != classes) {
        tat_fail("%s: %d labels (lines), but classes=%d in %s", labels, n, classes, datacfg);
    }
    return labels;
}

void train_check_valid_data(const char *datacfg)
{
    list *options = read_data_file(datacfg);
    int classes = option_find_int_quiet(options, "classes", 2);
    int top = option_find_int_quiet(options, "top", 1);
    char *label_file, *valid;
    char **labels, **paths;
    list *plist;
    int m;
    if (classes < 1) {
        tat_fail("%s: classes=%d: must be at least 1", datacfg, classes);
    }
    if (top < 1 || top > classes) {
        tat_fail("%s: top=%d: must be 1..%d (the classes): the top-k accuracy counts the k best classes", datacfg,
                 top, classes);
    }
    label_file = need_labels(options, datacfg, classes);
    valid = train_need_field_file(options, datacfg, "valid", "data/train.list");
    labels = get_labels(label_file);
    plist = get_paths(valid);
    m = plist->size;
    if (m == 0) tat_fail("%s: valid=%s in %s: an empty list: nothing to validate", valid, valid, datacfg);
    paths = (char **)list_to_array(plist);
    /* a path holding no label (e.g. ImageNet's ILSVRC2012_val_* names) would count as wrong */
    train_check_labels(paths, m, labels, classes, valid);
    free_ptrs((void **)paths, m);
    free_ptrs((void **)labels, classes);
    free_list(plist);
    train_free_data_options(options);
}

void train_check_data(const char *datacfg, const char *cfgfile, const network *net,
                         int segmentation)
{
    list *options = read_data_file(datacfg);
    int classes = option_find_int_quiet(options, "classes", segmentation ? 80 : 2);
    char *backup = option_find(options, "backup"), *base = basecfg((char *)cfgfile);
    char who[512];
    size_t longest;
    if (classes < 1) {
        tat_fail("%s: classes=%d: must be at least 1", datacfg, classes);
    }
    train_need_field_file(options, datacfg, "train", "data/train.list");
    if (!segmentation) {
        train_need_field_file(options, datacfg, "tree", 0);
        if (!option_find_int_quiet(options, "tag", 0)) need_labels(options, datacfg, classes);
        if (net && net->outputs != classes) {
            tat_fail("%s: classes=%d, but %s outputs %d values per image", datacfg, classes,
                    cfgfile, net->outputs);
        }
    }
    snprintf(who, sizeof(who), "%.400s: backup%s", datacfg, backup ? "" : " (not given; Darknet's default)");
    if (!backup) backup = "/backup/";
    train_need_writable_dir(backup, who);
    /* the longest name the loops save: <backup>/<cfg name>_<epoch>.weights */
    longest = strlen(backup) + 1 + strlen(base) + strlen("_2147483647.weights");
    if (longest >= DARKNET_PATH_BUFFER) {
        tat_fail("%s: backup=%.40s...: too long: with the cfg name %s the saved paths take %zu characters, Darknet's limit is %d",
                datacfg, backup, base, longest, DARKNET_PATH_BUFFER - 1);
    }
    free(base);
    train_free_data_options(options);
}

int train_is_output(const char *datacfg, const char *cfgfile, const char *path)
{
    list *options = read_data_file(datacfg);
    char *backup = option_find(options, "backup"), *base = basecfg((char *)cfgfile);
    const char *name = name_of(path), *p;
    char *dir = train_dir_of(path);
    size_t n = strlen(base);
    int named_like_output = 0, is_output;
    if (!strncmp(name, base, n)) {
        p = name + n;
        if (!strcmp(p, ".weights") || !strcmp(p, ".backup") || !strcmp(p, "_final.weights")) named_like_output = 1;
        else if (*p == '_' && p[1] >= '0' && p[1] <= '9') {
            for (++p; *p >= '0' && *p <= '9'; ++p) {}
            named_like_output = !strcmp(p, ".weights");
        }
    }
    is_output = named_like_output && train_same_file(dir, backup ? backup : "/backup/");
    free(dir);
    free(base);
    train_free_data_options(options);
    return is_output;
}

long train_weights_first_nonfinite(const char *path, const char **kind)
{
    FILE *fp = fopen(path, "rb");
    int version[3];
    size_t seen_size, offset, n, i;
    unsigned int buf[4096];
    if (!fp) return -1;
    if (fread(version, sizeof(int), 3, fp) != 3) {
        fclose(fp);
        return -1;
    }
    seen_size = (version[0] * 10 + version[1] >= 2 && version[0] < 1000 && version[1] < 1000) ? sizeof(size_t) : sizeof(int);
    offset = 3 * sizeof(int) + seen_size;
    fseek(fp, (long)offset, SEEK_SET);
    while ((n = fread(buf, sizeof(buf[0]), 4096, fp)) > 0) {
        for (i = 0; i < n; ++i, offset += sizeof(float))
            /* by the bits: -Ofast lets the compiler assume isfinite() is always true */
            if ((buf[i] & 0x7f800000u) == 0x7f800000u) {
                *kind = (buf[i] & 0x7fffffu) ? "NaN" : "Inf";
                fclose(fp);
                return (long)offset;
            }
    }
    fclose(fp);
    return 0;
}
