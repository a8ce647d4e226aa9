#ifndef INPUT_NORMALIZATION_H
#define INPUT_NORMALIZATION_H
/*
 * Per-channel input normalisation, `x' = (x - input_mean[c]) / input_std[c]`, from two [net]
 * fields, so that networks converted from torchvision (trained on ImageNet-normalised RGB) see
 * what they were trained on while Darknet's loaders keep feeding RGB in [0,1]. The caller's
 * input buffer is never changed: a teacher and its student read the same batch, each with its
 * own [net] normalisation. The state hangs on network.plugin_state.
 */
#include "darknet.h"
#include "list.h"

/* Reads input_mean= and input_std= (net->c values each, both or neither, std > 0); a bad field
 * exits 1 with one line naming the cfg, [net] and the field. Called once [net] is read. */
void train_read_input_normalization(list *options, network *net);
/* The input layer 0 reads: net->input itself, or its normalised copy, computed when fresh
 * (the forward) and returned as it is otherwise (the backward). */
float *train_network_input(network *net, int fresh);
/* Frees what train_read_input_normalization allocated. */
void train_free_input_normalization(network *net);
/* 1 when the network has input_mean/input_std. */
int train_has_input_normalization(const network *net);

#endif
