/* Quantize (float -> int8) and dequantize (int8 -> float) at the edges of an int8 model. */
#include "wl_kernels.h"

/* Round half to even for |v| <= 2^22: adding 1.5 * 2^23 leaves no fraction bits, and the
 * addition rounds as the FPU does by default, to nearest even. */
static inline float wl_round_even(float v)
{
    volatile float big = 12582912.0f; /* volatile: the sum must be rounded, not simplified away */
    return (v + big) - big;
}

int wl_quantize_f32_s8(const wl_quantize_params_t *p, const float *x, int8_t *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    const float lo = (float)(-128 - p->zero_point), hi = (float)(127 - p->zero_point);
    for (int32_t i = 0; i < p->size; i++) {
        float v = x[i] / p->scale;
        if (!(v >= lo)) /* NaN clamps to the low end, as onnxruntime's max does */
            v = lo;
        if (v > hi)
            v = hi;
        y[i] = (int8_t)((int32_t)wl_round_even(v) + p->zero_point);
    }
    return WL_OK;
}

int wl_dequantize_s8_f32(const wl_quantize_params_t *p, const int8_t *x, float *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    for (int32_t i = 0; i < p->size; i++)
        y[i] = (float)((int32_t)x[i] - p->zero_point) * p->scale;
    return WL_OK;
}
