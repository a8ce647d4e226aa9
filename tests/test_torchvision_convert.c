/* tools/torchvision_to_darknet.py is exact: randomly initialised torchvision ResNet-18 and
 * ResNet-34 (tests/reference/torchvision_reference.py, no download), converted, give in
 * Darknet's CPU forward the logits PyTorch gives in eval mode on the same input, to <= 1e-4
 * relative. The ResNet-18 cfg is the distilling student (cfg/imagenet-resnet18-tat.cfg) and
 * the converted file has no [tat_distill] record: it loads as pretrained student weights
 * (skip_plugin_layers, layers/distill_plugin.c), and the [tat_distill] layer, without a teacher, passes its input through
 * (the line the loader prints then is checked by tests/test_e2e_pretrained.sh).
 * Also: a state dict that does not fit the cfg is refused with one line and no file. */
/* the shared header's network helpers are not all used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "layer_test_helpers.h"

#include <sys/stat.h>
#include <sys/wait.h>

#define LOGITS 1000
#define BATCH 2

static float *read_floats(const char *path, size_t n)
{
    float *x = test_alloc(n * sizeof(float));
    FILE *fp = fopen(path, "rb");
    size_t got = fp ? fread(x, sizeof(float), n, fp) : 0;
    if (fp) fclose(fp);
    if (got != n) {
        report(0, "torchvision_reference_files", "%s: %zu of %zu floats", path, got, n);
        free(x);
        return 0;
    }
    return x;
}

static void exact(const char *arch)
{
    char cfg[600], weights[600], logits[600], input[600], name[64];
    network *net;
    float *x, *ref, *out;
    snprintf(cfg, sizeof cfg, "%s/%s.cfg", dir, arch);
    snprintf(weights, sizeof weights, "%s/%s.weights", dir, arch);
    snprintf(logits, sizeof logits, "%s/%s.logits.bin", dir, arch);
    snprintf(input, sizeof input, "%s/input.bin", dir);
    x = read_floats(input, (size_t)BATCH * 3 * 64 * 64);
    ref = read_floats(logits, (size_t)BATCH * LOGITS);
    if (!x || !ref) return;
    net = load_network(cfg, weights, 0);
    out = network_predict(net, x);
    snprintf(name, sizeof name, "converted_%s_logits_equal_pytorch", arch);
    {
        double e = rel_err(out, ref, (size_t)BATCH * LOGITS);
        printf("INFO %s: max |darknet - pytorch| / max |pytorch| = %.3g\n", arch, e);
        check_err(name, e, 1e-4);
    }
    free_network(net);
    free(x);
    free(ref);
}

/* ResNet-18's state dict against the ResNet-34 cfg: one line naming the cfg, exit 1, no file */
static void refused(void)
{
    char cmd[2400], out[600], log[600], line[1024] = "";
    struct stat st;
    FILE *fp;
    int rc, lines = 0;
    snprintf(out, sizeof out, "%s/wrong.weights", dir);
    snprintf(log, sizeof log, "%s/wrong.log", dir);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tools/torchvision_to_darknet.py '%s/resnet18.pth' '%s/resnet34.cfg' '%s' > '%s' 2>&1",
             dir, dir, out, log);
    rc = system(cmd);
    fp = fopen(log, "r");
    if (fp) {
        char l[1024];
        while (fgets(l, sizeof l, fp)) {
            ++lines;
            if (lines == 1) snprintf(line, sizeof line, "%s", l);
        }
        fclose(fp);
    }
    printf("INFO refused: %s", line);
    report(rc != 0 && WEXITSTATUS(rc) == 1 && lines == 1 && strstr(line, "resnet34.cfg") &&
               stat(out, &st) != 0,
           "converter_refuses_a_state_dict_of_another_network",
           "exit %d, %d lines, first: %s", WEXITSTATUS(rc), lines, line);
}

int main(void)
{
    char cmd[700];
    if (!make_scratch_dir()) return 1;
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/reference/torchvision_reference.py '%s'", dir);
    if (system(cmd)) {
        report(0, "torchvision_reference", "%s failed", cmd);
        return finish_layer_test();
    }
    exact("resnet18");
    exact("resnet34");
    refused();
    return finish_layer_test();
}
