#ifndef TEACHER_INFERENCE_H
#define TEACHER_INFERENCE_H
/*
 * The frozen teacher as an inference network. A teacher only ever runs network_predict
 * (train=0: BatchNorm on its rolling statistics), so at load:
 *   - every [convolutional] and [connected] with batch_normalize=1 gets its BatchNorm folded
 *     into its weights and biases, per output channel f, with Darknet's epsilon rule
 *     (x - mean) / sqrt(var + 1e-5) (the BatchNorm epsilon patch):
 *         s = scale[f] / sqrt(rolling_variance[f] + 1e-5)
 *         w'[f][...] = w[f][...] * s,   b'[f] = bias[f] - rolling_mean[f] * s
 *     and batch_normalize switched off (the activation stays the layer's own);
 *   - the buffers only a backward or an update reads are freed: every delta, the weight, bias
 *     and scale gradients, Adam's moments, and the folded layers' BatchNorm statistics and
 *     x / x_norm copies (on the host and, in a GPU build, on the device);
 *   - the folded layers are marked dontsave, so that save_weights never writes folded weights
 *     (whose layout differs from the cfg's) into any file.
 * The network can then only predict: its backward would find no deltas.
 */
#include "darknet.h"

/* Folds and frees as above; call after load_weights. Layers of other types keep their
   BatchNorm (e.g. a standalone [batchnorm]); plugin layers are left as they are. */
void train_teacher_for_inference(network *net);

#endif
