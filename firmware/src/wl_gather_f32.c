/* Gather along one axis with constant indices, float32. */
#include "wl_kernels.h"

int wl_gather_f32(const wl_gather_params_t *p, const float *x, const float *indices, float *y)
{
    if (p == 0 || x == 0 || indices == 0 || y == 0 || p->outer < 1 || p->inner < 1 || p->count < 0)
        return WL_ERR_ARG;
    for (int32_t j = 0; j < p->count; j++) {
        const int32_t k = (int32_t)indices[j];
        if (k < 0 || k >= p->axis_size)
            return WL_ERR_ARG;
    }
    for (int32_t o = 0; o < p->outer; o++) {
        const float *row = x + o * p->axis_size * p->inner;
        for (int32_t j = 0; j < p->count; j++) {
            const float *src = row + (int32_t)indices[j] * p->inner;
            for (int32_t i = 0; i < p->inner; i++)
                *y++ = src[i];
        }
    }
    return WL_OK;
}
