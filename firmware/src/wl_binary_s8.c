/* int8 Add, Sub, Mul and Div with broadcasting, through float32 as onnxruntime's QDQ path
 * computes them: each input dequantized (a float32 product, rounded), the op (rounded),
 * quantized. The products must not be fused into an addition, whatever -ffp-contract says. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "wl_kernels.h"

int wl_binary_s8(const wl_binary_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0 || p->ndim < 1 || p->ndim > WL_MAX_DIMS || p->op < WL_BINARY_ADD ||
        p->op > WL_BINARY_DIV)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    int32_t shape[WL_MAX_DIMS], a_strides[WL_MAX_DIMS], b_strides[WL_MAX_DIMS], idx[WL_MAX_DIMS];
    const int32_t last = p->ndim - 1, n = p->size, op = p->op;
    for (int32_t d = 0; d <= last; d++) {
        shape[d] = p->out_shape[d];
        a_strides[d] = p->a_strides[d];
        b_strides[d] = p->b_strides[d];
        idx[d] = 0;
    }
    const int32_t za = p->a_zero_point, zb = p->b_zero_point, zy = p->y_zero_point, lo = p->act_min, hi = p->act_max;
    const float sa = p->a_scale, sb = p->b_scale, sy = p->y_scale;
    int32_t ia = 0, ib = 0;
    for (int32_t i = 0; i < n; i++) {
        const float fa = (float)((int32_t)a[ia] - za) * sa;
        const float fb = (float)((int32_t)b[ib] - zb) * sb;
        float r;
        switch (op) {
        case WL_BINARY_ADD: r = fa + fb; break;
        case WL_BINARY_SUB: r = fa - fb; break;
        case WL_BINARY_MUL: r = fa * fb; break;
        default: r = fa / fb; break;
        }
        y[i] = (int8_t)wl_quantize_value(r, sy, zy, lo, hi);
        wl_next_index(idx, shape, last, &ia, a_strides, &ib, b_strides);
    }
    return WL_OK;
}
