/* int8 Add of two tensors of one shape, through float32 as onnxruntime's QDQ path computes it. */
#include "wl_kernels.h"

int wl_add_s8(const wl_add_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *y)
{
    if (p == 0 || a == 0 || b == 0 || y == 0)
        return WL_ERR_ARG;
    for (int32_t i = 0; i < p->size; i++) {
        float fa = (float)((int32_t)a[i] - p->a_zero_point) * p->a_scale;
        float fb = (float)((int32_t)b[i] - p->b_zero_point) * p->b_scale;
        y[i] = (int8_t)wl_quantize_value(fa + fb, p->y_scale, p->y_zero_point, p->act_min, p->act_max);
    }
    return WL_OK;
}
