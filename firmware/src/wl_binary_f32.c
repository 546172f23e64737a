/* Elementwise Add, Sub, Mul, Div and PRelu with numpy broadcasting, float32. */
#include "wl_kernels.h"

static inline float wl_binary_apply(int32_t op, float a, float b)
{
    switch (op) {
    case WL_BINARY_ADD: return a + b;
    case WL_BINARY_SUB: return a - b;
    case WL_BINARY_MUL: return a * b;
    case WL_BINARY_DIV: return a / b;
    default: return a < 0.0f ? a * b : a; /* WL_BINARY_PRELU: b is the slope */
    }
}

int wl_binary_f32(const wl_binary_params_t *p, const float *a, const float *b, float *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0 || p->ndim < 1 || p->ndim > WL_MAX_DIMS || p->op < 0 || p->op > WL_BINARY_PRELU)
        return WL_ERR_ARG;
    const float lo = p->act_min, hi = p->act_max;
    if (p->same_shape) {
        if (p->op == WL_BINARY_ADD) {
            for (int32_t i = 0; i < p->size; i++)
                y[i] = wl_clamp(a[i] + b[i], lo, hi);
        } else {
            for (int32_t i = 0; i < p->size; i++)
                y[i] = wl_clamp(wl_binary_apply(p->op, a[i], b[i]), lo, hi);
        }
        return WL_OK;
    }
    /* An odometer over the output index; ia/ib follow it through the strides. */
    int32_t idx[WL_MAX_DIMS] = {0};
    int32_t ia = 0, ib = 0;
    const int32_t last = p->ndim - 1;
    for (int32_t i = 0; i < p->size; i++) {
        y[i] = wl_clamp(wl_binary_apply(p->op, a[ia], b[ib]), lo, hi);
        wl_next_index(idx, p->out_shape, last, &ia, p->a_strides, &ib, p->b_strides);
    }
    return WL_OK;
}
