#ifndef TAT_BACKEND_H
#define TAT_BACKEND_H
/* The CPU backend of Darknet's own layers: [convolutional] forward, backward data and backward
 * weights on oneDNN, whole batches per call. Built when the library is found (ONEDNN=1, the
 * default then; ONEDNN=0 keeps Darknet's im2col + sgemm path). backend_attach swaps a network's
 * convolutional layers' function pointers for the backend's; the environment's
 * TAT_BACKEND=darknet (or a build without oneDNN) leaves Darknet's. */
#include "darknet.h"

/* 1 when this build has the oneDNN backend */
int backend_compiled(void);
/* ... and the environment's TAT_BACKEND does not ask for Darknet's path */
int backend_enabled(void);
/* Swaps the layers of net that the backend runs (idempotent; cheap on a network already
 * attached). Called on each forward, so that layers parsed after the [net] section are seen. */
void backend_attach(network *net);
/* Releases what backend_attach made for net's layers (before free_network frees them). */
void backend_release(network *net);
/* Code that changes a layer's weights outside its update (weights loaded or folded after the
 * first forward) calls this; a training forward reorders the weights anyway. */
void backend_weights_changed(layer *l);
/* The backend's convolutional functions (tests compare them with Darknet's) */
void backend_forward_convolutional(layer l, network net);
void backend_backward_convolutional(layer l, network net);
void backend_update_convolutional(layer l, update_args a);
/* Darknet's BatchNorm of a convolutional layer with its activation, fused and on OpenMP's
 * threads (backend_batchnorm.c): the forward normalises l->output in place (the batch's
 * statistics when train, else the rolling ones), the backward turns l->delta (the gradient at
 * the activation's output) into the gradient at the convolution's output. */
void backend_batchnorm_forward(const layer *l, int train);
void backend_batchnorm_backward(const layer *l, int train);
/* The same, on the convolution's side in oneDNN's aBcd<block>b layout (channels a multiple of
 * block, at most 16): the forward reads conv_out in it, the backward writes conv_delta in it. */
void backend_batchnorm_forward_blocked(const layer *l, const float *conv_out, int block, int train);
void backend_batchnorm_backward_blocked(const layer *l, float *conv_delta, int block, int train);
/* 1 when l's last call ran on oneDNN's primitives (not Darknet's path as a fallback) */
int backend_layer_on_onednn(const layer *l);
/* 1 when l's BatchNorm ran on the primitives' blocked arrays (backend_batchnorm_*_blocked) */
int backend_layer_bn_blocked(const layer *l);
/* Prepares l for the functions above without a network (tests): its state is owned by owner. */
void backend_prepare_layer(layer *l, void *owner);
/* Darknet's [maxpool] and [shortcut] on OpenMP's threads, bit for bit Darknet's results
 * (backend_passes.c); backend_attach swaps them in, backend_prepare_pass_layer does it for one
 * layer (tests). */
void backend_forward_maxpool(layer l, network net);
void backend_backward_maxpool(layer l, network net);
void backend_forward_shortcut(layer l, network net);
void backend_backward_shortcut(layer l, network net);
void backend_prepare_pass_layer(layer *l);
/* Darknet's adam_update_cpu (the same arguments and results) on OpenMP's threads: the
 * convolutions' and the distillation embeddings' updates */
void backend_adam_update(float *w, float *d, float *m, float *v, float B1, float B2, float eps, float decay,
                         float rate, int n, int batch, int t, int decoupled);
/* Start-up: 1 when OMP_WAIT_POLICY or OPENBLAS_THREAD_TIMEOUT was unset and is now set
 * (waiting threads sleep; oneDNN builds), and then backend_reexec(argv) runs the program again
 * with them (returns only if that failed). */
int backend_wait_policy_set(void);
void backend_reexec(char **argv);
/* One thread count for oneDNN's OpenMP, OpenBLAS and the TaT pool: TAT_NUM_THREADS, when set. */
void backend_set_threads(void);

#endif
