/* Quantize (float -> int8) and dequantize (int8 -> float) at the edges of an int8 model, and
 * uint8 <-> int8 at the edges of a model with uint8 inputs or outputs. */
#include "wl_kernels.h"

int wl_quantize_f32_s8(const wl_quantize_params_t *p, const float *x, int8_t *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t n = p->size, zp = p->zero_point;
    const float scale = p->scale;
    for (int32_t i = 0; i < n; i++)
        y[i] = (int8_t)wl_quantize_value(x[i], scale, zp, -128, 127);
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

int wl_flip_sign_s8(const wl_flip_sign_params_t *p, const void *x, void *y)
{
    if (p == 0 || x == 0 || y == 0)
        return WL_ERR_ARG;
    const uint8_t *a = (const uint8_t *)x;
    uint8_t *b = (uint8_t *)y;
    const int32_t n = p->size;
    for (int32_t i = 0; i < n; i++)
        b[i] = (uint8_t)(a[i] ^ 0x80u);
    return WL_OK;
}
