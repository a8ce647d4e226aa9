/* [yolo] max= (patch 0034): the truths are read at the stride the detection loader writes them.
 * A cfg with a [yolo] of max=3 and batch=2; two images' boxes in a data matrix laid out as
 * load_data_detection lays it out (5 floats per box, max_boxes boxes per image), copied into
 * net.truth by get_next_batch as train_network does; then the [yolo] forward. Every box of
 * both images must be matched: Darknet's objectness delta at the box's cell and best anchor is
 * 1 - output (0.5 for a zero input) only when the layer found that box. Before the patch the
 * layer read the second image's boxes at 90 x 5 floats, where there are none. */
/* the shared header's network helpers are not all used here */
#pragma GCC diagnostic ignored "-Wunused-function"
#include "layer_test_helpers.h"

#define MAX_BOXES 3
#define GRID 4

static const char cfg_text[] =
    "[net]\nbatch=2\nwidth=4\nheight=4\nchannels=21\n\n"
    "[yolo]\nmask=0,1,2\nanchors=1,1, 2,2, 4,4\nclasses=2\nnum=3\nmax=3\njitter=0\nrandom=0\n";

/* x, y, w, h, class; w = h = 0.5 (the anchor 2,2 of a 4 x 4 input: anchor 1), each in its own cell */
static const float boxes[2][MAX_BOXES][5] = {
    {{0.125f, 0.125f, 0.5f, 0.5f, 0}, {0.625f, 0.375f, 0.5f, 0.5f, 1}, {0}},
    {{0.375f, 0.625f, 0.5f, 0.5f, 1}, {0.875f, 0.875f, 0.5f, 0.5f, 0}, {0.125f, 0.875f, 0.5f, 0.5f, 1}},
};

int main(void)
{
    network *net;
    layer *l;
    data d = {0};
    int b, t, matched = 0, expected = 0;
    char why[256] = "";
    if (!make_scratch_dir()) return 1;
    net = parse_network_cfg(write_cfg("yolo-max.cfg", cfg_text));
    l = &net->layers[0];
    report(l->type == YOLO && l->max_boxes == MAX_BOXES && net->truths == 5 * MAX_BOXES,
           "yolo_max_sets_truth_stride", "max_boxes %d, the layer's truths %d, the network's %d (want %d)",
           l->max_boxes, l->truths, net->truths, 5 * MAX_BOXES);

    /* the loader's rows: 5 x max_boxes floats per image (args.num_boxes = l.max_boxes) */
    d.X = make_matrix(2, net->inputs);
    d.y = make_matrix(2, 5 * l->max_boxes);
    for (b = 0; b < 2; ++b) memcpy(d.y.vals[b], boxes[b], sizeof(boxes[b]));
    get_next_batch(d, net->batch, 0, net->input, net->truth);
    net->train = 1;
    l->forward(*l, *net);

    for (b = 0; b < 2; ++b)
        for (t = 0; t < MAX_BOXES && boxes[b][t][0]; ++t) {
            int i = (int)(boxes[b][t][0] * GRID), j = (int)(boxes[b][t][1] * GRID);
            /* entry_index(l, b, anchor 1 cell, 4): image b, anchor slot 1, objectness */
            int obj = b * l->outputs + (1 * l->w * l->h) * (4 + 1 + l->classes) + 4 * l->w * l->h + j * l->w + i;
            ++expected;
            if (fabsf(l->delta[obj] - (1 - l->output[obj])) < 1e-6f && l->delta[obj] > 0.25f) ++matched;
            else if (!*why)
                snprintf(why, sizeof(why), "image %d box %d: objectness delta %g, output %g", b, t,
                         l->delta[obj], l->output[obj]);
        }
    report(matched == expected, "yolo_max_every_image_boxes_matched", "%d of %d boxes matched; %s",
           matched, expected, why);
    free_data(d);
    free_network(net);
    return finish_layer_test();
}
