/* Elementwise ops of one tensor, float32, in place allowed: Relu/Clip (a clamp), Sigmoid, Tanh,
 * LeakyRelu, HardSigmoid, HardSwish, Abs, Neg, Sqrt, Exp, Log, Reciprocal, Erf, Pow by a
 * constant and Gelu. Only the ops in WL_UNARY_USED are compiled in (a case whose bit is clear is dead
 * code), so a model links the math functions it calls and no others. */
#include <math.h>

#include "wl_kernels.h"

#if __has_include("wl_model_config.h")
#include "wl_model_config.h"
#endif
#ifndef WL_UNARY_USED
#define WL_UNARY_USED 0xffffffffu
#endif

#define WL_USED(op) ((((uint32_t)WL_UNARY_USED) >> (op)) & 1u)
/* y[i] = clamp(expr) for every i, where the op is used; else fall through to the error. */
#define WL_UNARY_LOOP(op, expr)                          \
    case op:                                             \
        if (!WL_USED(op))                                \
            break;                                       \
        for (int32_t i = 0; i < p->size; i++) {          \
            const float v = x[i];                        \
            y[i] = wl_clamp((expr), lo, hi);             \
        }                                                \
        return WL_OK;

int wl_unary_f32(const wl_unary_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    const float lo = p->act_min, hi = p->act_max, alpha = p->alpha, beta = p->beta;
    (void)alpha;
    (void)beta;
    switch (p->op) {
    WL_UNARY_LOOP(WL_UNARY_CLAMP, v)
    WL_UNARY_LOOP(WL_UNARY_SIGMOID, 1.0f / (1.0f + expf(-v)))
    WL_UNARY_LOOP(WL_UNARY_TANH, tanhf(v))
    WL_UNARY_LOOP(WL_UNARY_LEAKY_RELU, v < 0.0f ? alpha * v : v)
    WL_UNARY_LOOP(WL_UNARY_HARD_SIGMOID, wl_clamp(alpha * v + beta, 0.0f, 1.0f))
    WL_UNARY_LOOP(WL_UNARY_HARD_SWISH, v * wl_clamp(v * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f))
    WL_UNARY_LOOP(WL_UNARY_ABS, fabsf(v))
    WL_UNARY_LOOP(WL_UNARY_NEG, -v)
    WL_UNARY_LOOP(WL_UNARY_SQRT, sqrtf(v))
    WL_UNARY_LOOP(WL_UNARY_EXP, expf(v))
    WL_UNARY_LOOP(WL_UNARY_LOG, logf(v))
    WL_UNARY_LOOP(WL_UNARY_RECIPROCAL, 1.0f / v)
    WL_UNARY_LOOP(WL_UNARY_ERF, erff(v))
    WL_UNARY_LOOP(WL_UNARY_SQUARE, v * v)
    WL_UNARY_LOOP(WL_UNARY_POW, powf(v, alpha))
    WL_UNARY_LOOP(WL_UNARY_GELU, 0.5f * v * (1.0f + erff(v * 0.70710678118654752f)))
    WL_UNARY_LOOP(WL_UNARY_GELU_TANH, 0.5f * v * (1.0f + tanhf(0.79788456080286536f * (v + 0.044715f * v * v * v))))
    default:
        break;
    }
    return WL_ERR_ARG;
}
