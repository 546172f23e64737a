/* Softmax of an int8 tensor: each value dequantized, y = exp(x - max) * (1 / sum) (LogSoftmax:
 * y = (x - max) - log(sum)), the same float32 operations in the same order as wl_softmax_f32 on
 * the dequantized tensor, then
 * quantized (int8 out) or stored (float out). The exponentials are computed twice, for the sum
 * and for the outputs (the same values), so that no float32 buffer is needed. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off") /* (x - z) * s - max: two roundings, as in two kernels */
#endif
#include <math.h>

#include "wl_kernels.h"

static inline float wl_dq(int32_t v, int32_t zx, float sx)
{
    return (float)(v - zx) * sx;
}

int wl_softmax_s8(const wl_softmax_s8_params_t *p, const int8_t *x, void *y)
{
    if (p == 0 || x == 0 || y == 0 || p->n < 1 || p->inner < 1)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t outer = p->outer, n = p->n, inner = p->inner, zx = p->x_zero_point, zy = p->y_zero_point;
    const int32_t int8_out = p->int8_out, is_log = p->log;
    const float sx = p->x_scale, sy = p->y_scale;
    int8_t *yq = (int8_t *)y;
    float *yf = (float *)y;
    for (int32_t o = 0; o < outer; o++) {
        for (int32_t i = 0; i < inner; i++) {
            const int32_t base = o * n * inner + i;
            int32_t qmax = x[base];
            for (int32_t k = 1; k < n; k++)
                qmax = x[base + k * inner] > qmax ? x[base + k * inner] : qmax;
            const float m = wl_dq(qmax, zx, sx); /* dequantizing is monotonic: the max of the reals */
            float sum = 0.0f;
            for (int32_t k = 0; k < n; k++)
                sum += expf(wl_dq(x[base + k * inner], zx, sx) - m);
            const float inv = 1.0f / sum, lsum = is_log ? logf(sum) : 0.0f;
            for (int32_t k = 0; k < n; k++) {
                const float d = wl_dq(x[base + k * inner], zx, sx) - m;
                const float v = is_log ? d - lsum : expf(d) * inv;
                if (int8_out)
                    yq[base + k * inner] = (int8_t)wl_quantize_value(v, sy, zy, -128, 127);
                else
                    yf[base + k * inner] = v;
            }
        }
    }
    return WL_OK;
}
