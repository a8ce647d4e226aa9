/* `./darknet distill attention`: what "one-to-many" means, drawn. For chosen student positions
   of one image, the attention weights of a [tat_distill] or [anchor_distill] layer over the
   teacher's positions, overlaid on the image, one panel per position, in one PNG. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "darknet.h"
#include "distill_commands.h"
#include "distill_common.h"
#include "distill_plugin.h"
#include "network.h"
#include "tat_distill_layer.h"

#define PANEL_MIN 224 /* panels are scaled up to at least this many pixels wide */
#define GAP 6

/* "y,x[,y,x...]" -> pairs; returns the count. */
static int parse_positions(const char *text, int **yx)
{
    char *copy = tat_strdup(text), *tok, *save = 0;
    int n = 0, cap = 16;
    *yx = tat_calloc(cap, sizeof(int));
    for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(0, ",", &save)) {
        char *end;
        long v = strtol(tok, &end, 10);
        if (end == tok || *end || v < 0 || v > 100000) tat_fail("distill attention: -at %s: '%s' is not a position index (y,x pairs, from 0)", text, tok);
        if (n == cap) *yx = tat_realloc(*yx, cap *= 2, sizeof(int));
        (*yx)[n++] = (int)v;
    }
    free(copy);
    if (n == 0 || n % 2) tat_fail("distill attention: -at %s: give y,x pairs", text);
    return n / 2;
}

/* Black - red - yellow - white, for a weight in [0, 1]. */
static void heat(float a, float *rgb)
{
    rgb[0] = fminf(1, 3 * a);
    rgb[1] = fminf(1, fmaxf(0, 3 * a - 1));
    rgb[2] = fminf(1, fmaxf(0, 3 * a - 2));
}

/* One panel: the image in gray, the map's weights (relative to their maximum) over it, and a
   green frame around the student position's cell. */
static void draw_panel(unsigned char *rgb, int stride, image im, const float *map, int mh, int mw,
                       int scale, int py, int px)
{
    int W = im.w * scale, H = im.h * scale, x, y, c;
    float max = 1e-12f;
    for (x = 0; x < mh * mw; ++x) max = fmaxf(max, map[x]);
    for (y = 0; y < H; ++y) {
        for (x = 0; x < W; ++x) {
            int iy = y / scale, ix = x / scale, my = iy * mh / im.h, mx = ix * mw / im.w;
            float gray = 0, h[3], a = map[my * mw + mx] / max;
            int in_cell = my == py && mx == px;
            int y0 = py * im.h * scale / mh, y1 = (py + 1) * im.h * scale / mh - 1;
            int x0 = px * im.w * scale / mw, x1 = (px + 1) * im.w * scale / mw - 1;
            int frame = in_cell && (y - y0 < 2 || y1 - y < 2 || x - x0 < 2 || x1 - x < 2);
            for (c = 0; c < im.c; ++c) gray += im.data[(c * im.h + iy) * im.w + ix] / im.c;
            heat(a, h);
            for (c = 0; c < 3; ++c) {
                float v = frame ? (c == 1) : (1 - .7f * a) * gray + .7f * a * h[c];
                rgb[y * stride + 3 * x + c] = (unsigned char)(255 * fminf(1, fmaxf(0, v)) + .5f);
            }
        }
    }
}

void cmd_attention(int argc, char **argv)
{
    char *at = cmd_option_value(argc, argv, "-at", "distill attention");
    char *layer_arg = cmd_option_value(argc, argv, "-layer", "distill attention");
    int layer_index = -1;
    char *args[6];
    int nargs = 0, i, n, mh, mw, scale, panel_w, panel_h, total_w, *yx = 0;
    network *net;
    layer *l = 0;
    image im, sized;
    float *map;
    unsigned char *rgb;
    char tmp[4096];
    for (i = 3; i < argc && argv[i]; ++i) {
        if (argv[i][0] == '-') tat_fail("distill attention: unknown option %s", argv[i]);
        if (nargs == 6) tat_fail("distill attention: unexpected argument %s", argv[i]);
        args[nargs++] = argv[i];
    }
    if (nargs < 6) cmd_usage(argv[0], "attention");
    if (layer_arg) {
        char *end;
        long v = strtol(layer_arg, &end, 10);
        if (end == layer_arg || *end || v < 0 || v > 100000)
            tat_fail("distill attention: -layer %s: must be a layer index (from 0)", layer_arg);
        layer_index = (int)v;
    }
    train_need_readable(args[0], "the student cfg");
    train_need_readable(args[1], "the student weights");
    train_need_readable(args[2], "the teacher cfg");
    train_need_readable(args[3], "the teacher weights");
    train_need_readable(args[4], "the image");
    {
        static const char *what[5] = {"the student cfg", "the student weights", "the teacher cfg",
                                      "the teacher weights", "the image"};
        train_input inputs[5];
        for (i = 0; i < 5; ++i) inputs[i].path = args[i], inputs[i].what = what[i];
        train_refuse_output(args[5], "the output PNG", inputs, 5, 1, "distill attention");
    }

    net = cmd_parse_student_with_teacher(args[0], args[2], args[3], 1);
    if (load_weights(net, args[1]) < net->n)
        tat_fail("%s: does not hold weights for every layer of %s (are these the distilled student's weights?)", args[1], args[0]);
    /* maps from freshly initialised embeddings would say nothing about the trained student */
    if (distill_weights_skipped_sections())
        tat_fail("%s: holds no weights for the distillation sections of %s (the weights of a network without them): the maps need the distilled student's weights, as distill ... train saves them",
                 args[1], args[0]);
    for (i = 0; i < net->n && layer_index < 0; ++i)
        if (net->layers[i].type == TAT_DISTILL || net->layers[i].type == ANCHOR_DISTILL) layer_index = i;
    if (layer_index < 0) tat_fail("%s: no [tat_distill] or [anchor_distill] section", args[0]);
    if (layer_index >= net->n ||
        (net->layers[layer_index].type != TAT_DISTILL && net->layers[layer_index].type != ANCHOR_DISTILL)) {
        snprintf(tmp, sizeof(tmp), "%d", layer_index);
        tat_fail("%s: -layer %s is not a [tat_distill] or [anchor_distill] layer", args[0], tmp);
    }
    l = &net->layers[layer_index];
    distill_tat_map_size(l, &mh, &mw);
    if (at) n = parse_positions(at, &yx);
    else {
        /* the centre and two corners */
        n = 3;
        yx = tat_calloc(6, sizeof(int));
        yx[0] = mh / 2, yx[1] = mw / 2, yx[2] = 0, yx[3] = 0, yx[4] = mh - 1, yx[5] = mw - 1;
    }

    im = load_image_color(args[4], 0, 0);
    sized = resize_image(im, net->w, net->h);
    network_predict(net->teacher, sized.data);
    network_predict(net, sized.data);

    scale = (PANEL_MIN + sized.w - 1) / sized.w;
    panel_w = sized.w * scale;
    panel_h = sized.h * scale;
    total_w = n * panel_w + (n - 1) * GAP;
    rgb = tat_calloc((size_t)total_w * panel_h, 3);
    memset(rgb, 255, (size_t)total_w * panel_h * 3);
    map = tat_calloc((size_t)mh * mw, sizeof(float));
    /* a default corner may lie in the rows/columns an anchor pooling or a patch grid leaves
       out: the nearest one inwards along the diagonal is drawn instead */
    for (i = 0; !at && i < n; ++i)
        while ((yx[2 * i] > 0 || yx[2 * i + 1] > 0) && distill_tat_attention_map(l, net, yx[2 * i], yx[2 * i + 1], map)) {
            if (yx[2 * i] > 0) --yx[2 * i];
            if (yx[2 * i + 1] > 0) --yx[2 * i + 1];
        }
    printf("%s layer %d (%s), map %d x %d; weights over the teacher's positions:\n", args[0],
           layer_index, get_layer_string(l->type), mh, mw);
    for (i = 0; i < n; ++i) {
        int y = yx[2 * i], x = yx[2 * i + 1], j, best = 0;
        const char *why = distill_tat_attention_map(l, net, y, x, map);
        double sum = 0, entropy = 0;
        if (why) {
            snprintf(tmp, sizeof(tmp), "%d,%d", y, x);
            tat_fail("distill attention: %s %s: %s", at ? "position" : "the default position (no -at given)", tmp, why);
        }
        for (j = 0; j < mh * mw; ++j) {
            sum += map[j];
            if (map[j] > 0) entropy -= map[j] * log(map[j]);
            if (map[j] > map[best]) best = j;
        }
        printf("  student (%d,%d): largest %.4f at teacher (%d,%d); drawn weights sum %.4f; spread exp(H) = %.1f positions\n",
               y, x, map[best], best / mw, best % mw, sum, exp(entropy / sum + log(sum)));
        draw_panel(rgb + (size_t)i * (panel_w + GAP) * 3, total_w * 3, sized, map, mh, mw, scale, y, x);
    }
    {
        char *temp = train_temp_path(args[5]);
        if (!stbi_write_png(temp, total_w, panel_h, 3, rgb, total_w * 3) || rename(temp, args[5])) {
            const char *why = strerror(errno);
            remove(temp);
            tat_fail("%s: cannot write: %s", args[5], why);
        }
        free(temp);
    }
    printf("wrote %s (%d x %d)\n", args[5], total_w, panel_h);
    free(map);
    free(rgb);
    free(yx);
    free_image(im);
    free_image(sized);
    free_network(net);
}
