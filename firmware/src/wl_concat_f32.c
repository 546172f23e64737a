/* Concat along one axis, float32: each output row takes each input's row in turn. */
#include "wl_kernels.h"

int wl_concat_f32(const wl_concat_params_t *p, const float *const *xs, float *y)
{
    if (p == 0 || xs == 0 || y == 0 || p->inputs < 1 || p->inputs > WL_CONCAT_MAX_INPUTS || p->outer < 1)
        return WL_ERR_ARG;
    for (int32_t k = 0; k < p->inputs; k++)
        if (xs[k] == 0)
            return WL_ERR_ARG;
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t k = 0; k < p->inputs; k++) {
            const int32_t n = p->inner[k];
            const float *src = xs[k] + (int32_t)(o * n);
            for (int32_t i = 0; i < n; i++)
                *y++ = src[i];
        }
    }
    return WL_OK;
}
