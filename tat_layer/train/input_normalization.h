#ifndef INPUT_NORMALIZATION_H
#define INPUT_NORMALIZATION_H
/*
 * Per-channel input normalisation, `x' = (x - input_mean[c]) / input_std[c]`, from two [net]
 * fields (patch 0054), so that networks converted from torchvision (trained on
 * ImageNet-normalised RGB) see what they were trained on while Darknet's loaders keep feeding
 * RGB in [0,1]. The caller's input buffer is never changed: a teacher and its student read the
 * same batch, each with its own [net] normalisation.
 */
#include "darknet.h"
#include "list.h"

/* Reads input_mean= and input_std= (net->c values each, both or neither, std > 0) into
 * net->input_mean / net->input_std; a bad field exits 1 with one line naming the cfg, [net]
 * and the field. Called by parse_net_options once net->c is known. */
void read_input_normalization(list *options, network *net);
/* The input layer 0 sees: net->input itself, or its normalised copy in net->input_normalized
 * (allocated by parse_network_cfg beside net->input). */
float *normalized_network_input(network *net);

#endif
