#include "teacher_inference.h"

#include <math.h>
#include <stdlib.h>

#ifdef GPU
#include "cuda.h"
#endif

/* Darknet's BatchNorm epsilon, inside the square root (blas.c normalize_cpu, as patched) */
#define BN_EPSILON 1e-5f

static void free_host(float **p)
{
    free(*p);
    *p = 0;
}

#ifdef GPU
static void free_device(float **p)
{
    if (*p) cuda_free(*p);
    *p = 0;
}
#endif

/* Only these types' forwards never touch their delta while predicting (softmax only with a
   truth, which network_predict clears); others, e.g. [region], clear it in the forward. */
static int delta_unused_in_forward(LAYER_TYPE t)
{
    return t == CONVOLUTIONAL || t == CONNECTED || t == SHORTCUT || t == MAXPOOL || t == AVGPOOL ||
           t == ROUTE || t == SOFTMAX || t == DROPOUT || t == ACTIVE;
}

static void fold_batchnorm(layer *l, int outputs, int per_output)
{
    for (int f = 0; f < outputs; ++f) {
        float s = l->scales[f] / sqrtf(l->rolling_variance[f] + BN_EPSILON);
        float *w = l->weights + (size_t)f * per_output;
        for (int i = 0; i < per_output; ++i) w[i] *= s;
        l->biases[f] -= l->rolling_mean[f] * s;
    }
    l->batch_normalize = 0;
    free_host(&l->scales);
    free_host(&l->rolling_mean);
    free_host(&l->rolling_variance);
    free_host(&l->mean);
    free_host(&l->variance);
    free_host(&l->mean_delta);
    free_host(&l->variance_delta);
    free_host(&l->x);
    free_host(&l->x_norm);
#ifdef GPU
    free_device(&l->scales_gpu);
    free_device(&l->rolling_mean_gpu);
    free_device(&l->rolling_variance_gpu);
    free_device(&l->mean_gpu);
    free_device(&l->variance_gpu);
    free_device(&l->mean_delta_gpu);
    free_device(&l->variance_delta_gpu);
    free_device(&l->x_gpu);
    free_device(&l->x_norm_gpu);
#endif
}

static void free_gradients(layer *l)
{
    free_host(&l->weight_updates);
    free_host(&l->bias_updates);
    free_host(&l->scale_updates);
    free_host(&l->m);
    free_host(&l->v);
    free_host(&l->bias_m);
    free_host(&l->bias_v);
    free_host(&l->scale_m);
    free_host(&l->scale_v);
#ifdef GPU
    free_device(&l->weight_updates_gpu);
    free_device(&l->bias_updates_gpu);
    free_device(&l->scale_updates_gpu);
    free_device(&l->m_gpu);
    free_device(&l->v_gpu);
    free_device(&l->bias_m_gpu);
    free_device(&l->bias_v_gpu);
    free_device(&l->scale_m_gpu);
    free_device(&l->scale_v_gpu);
#endif
}

void train_teacher_for_inference(network *net)
{
    for (int i = 0; i < net->n; ++i) {
        layer *l = &net->layers[i];
        int foldable = (l->type == CONVOLUTIONAL && !l->binary && !l->xnor) || l->type == CONNECTED;
        if (l->type >= PLUGIN_LAYER) continue;
        if (foldable) {
            int outputs = l->type == CONVOLUTIONAL ? l->n : l->outputs;
            int per_output = l->type == CONVOLUTIONAL ? l->nweights / l->n : l->inputs;
            if (l->batch_normalize) {
                fold_batchnorm(l, outputs, per_output);
                l->dontsave = 1;
#ifdef GPU
                /* the device copies the forward reads */
                if (l->weights_gpu) cuda_push_array(l->weights_gpu, l->weights, (size_t)outputs * per_output);
                if (l->biases_gpu) cuda_push_array(l->biases_gpu, l->biases, outputs);
#endif
            }
            free_gradients(l);
        }
        if (delta_unused_in_forward(l->type)) {
            free_host(&l->delta);
#ifdef GPU
            free_device(&l->delta_gpu);
#endif
        }
    }
}
