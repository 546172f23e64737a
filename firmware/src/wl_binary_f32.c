/* Elementwise Add, Sub, Mul, Div, PRelu, Pow, Min and Max with numpy broadcasting, float32.
 * Only the ops in WL_BINARY_USED are compiled in (wl_model_config.h): an Add does not link powf. */
#include <math.h>

#include "wl_kernels.h"

#if __has_include("wl_model_config.h")
#include "wl_model_config.h"
#endif
#ifndef WL_BINARY_USED
#define WL_BINARY_USED 0xffffffffu
#endif
#define WL_USED(op) ((((uint32_t)WL_BINARY_USED) >> (op)) & 1u)

static inline float wl_binary_apply(int32_t op, float a, float b)
{
    switch (op) {
    case WL_BINARY_ADD: return a + b;
    case WL_BINARY_SUB: return a - b;
    case WL_BINARY_MUL: return a * b;
    case WL_BINARY_DIV: return a / b;
    case WL_BINARY_PRELU: return a < 0.0f ? a * b : a; /* b is the slope */
    case WL_BINARY_POW: return WL_USED(WL_BINARY_POW) ? powf(a, b) : 0.0f;
    case WL_BINARY_MIN: return (a != a || a < b) ? a : b;
    default: return (a != a || a > b) ? a : b; /* WL_BINARY_MAX */
    }
}

int wl_binary_f32(const wl_binary_params_t *p, const float *a, const float *b, float *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0 || p->ndim < 1 || p->ndim > WL_MAX_DIMS || p->op < 0 || p->op > WL_BINARY_MAX
        || !WL_USED(p->op))
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
