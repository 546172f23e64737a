/* Relu/Clip (a clamp), Sigmoid, Tanh, LeakyRelu, HardSigmoid, HardSwish,
 * float32, in place allowed. */
#include <math.h>

#include "wl_kernels.h"

int wl_unary_f32(const wl_unary_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    const float lo = p->act_min, hi = p->act_max;
    switch (p->op) {
    case WL_UNARY_CLAMP:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(x[i], lo, hi);
        return WL_OK;
    case WL_UNARY_SIGMOID:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(1.0f / (1.0f + expf(-x[i])), lo, hi);
        return WL_OK;
    case WL_UNARY_TANH:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(tanhf(x[i]), lo, hi);
        return WL_OK;
    case WL_UNARY_LEAKY_RELU:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(x[i] < 0.0f ? p->alpha * x[i] : x[i], lo, hi);
        return WL_OK;
    case WL_UNARY_HARD_SIGMOID:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(wl_clamp(p->alpha * x[i] + p->beta, 0.0f, 1.0f), lo, hi);
        return WL_OK;
    case WL_UNARY_HARD_SWISH:
        for (int32_t i = 0; i < p->size; i++)
            y[i] = wl_clamp(x[i] * wl_clamp(x[i] * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f), lo, hi);
        return WL_OK;
    default:
        return WL_ERR_ARG;
    }
}
