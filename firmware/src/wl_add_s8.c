/* int8 Add of two tensors of one shape, through float32 as onnxruntime's QDQ path computes it:
 * each input dequantized (a float32 product, rounded), the sum (rounded), quantized. The
 * products must not be fused into the addition (one rounding fewer), whatever the build's
 * -ffp-contract says. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "wl_kernels.h"

int wl_add_s8(const wl_add_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t n = p->size, za = p->a_zero_point, zb = p->b_zero_point, zy = p->y_zero_point;
    const int32_t lo = p->act_min, hi = p->act_max;
    const float sa = p->a_scale, sb = p->b_scale, sy = p->y_scale;
    for (int32_t i = 0; i < n; i++) {
        const float fa = (float)((int32_t)a[i] - za) * sa;
        const float fb = (float)((int32_t)b[i] - zb) * sb;
        y[i] = (int8_t)wl_quantize_value(fa + fb, sy, zy, lo, hi);
    }
    return WL_OK;
}
