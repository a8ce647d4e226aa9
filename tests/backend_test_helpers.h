#ifndef BACKEND_TEST_HELPERS_H
#define BACKEND_TEST_HELPERS_H
/* Shared by the tests that compare a backend layer with Darknet's own (test_backend_conv.c,
 * test_backend_passes.c; one .c file each, so everything here is static). */
#include <string.h>

#include "darknet.h"

/* One backward from the same output delta d through Darknet's layer and the backend's: each
 * adds into its own input gradient (ref_in_delta, dnn_in_delta; NULL: a first layer, none). */
static inline void backward_both(layer ref, float *ref_in_delta, layer dnn, float *dnn_in_delta,
                                 const float *d, int out_n, network net)
{
    memcpy(ref.delta, d, out_n * sizeof(float));
    memcpy(dnn.delta, d, out_n * sizeof(float));
    net.delta = ref_in_delta;
    ref.backward(ref, net);
    net.delta = dnn_in_delta;
    dnn.backward(dnn, net);
}

#endif
