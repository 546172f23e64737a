/* Transpose (any permutation of up to WL_MAX_DIMS axes) and Slice: a strided copy, float32. */
#include "wl_kernels.h"

int wl_transpose_f32(const wl_transpose_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0 || p->ndim < 1 || p->ndim > WL_MAX_DIMS || p->offset < 0)
        return WL_ERR_ARG;
    int32_t size = 1;
    for (int32_t d = 0; d < p->ndim; d++)
        size *= p->out_shape[d];
    int32_t idx[WL_MAX_DIMS] = {0};
    int32_t src = p->offset;
    const int32_t last = p->ndim - 1;
    for (int32_t i = 0; i < size; i++) {
        y[i] = x[src];
        for (int32_t d = last; d >= 0; d--) {
            src += p->in_strides[d];
            if (++idx[d] < p->out_shape[d])
                break;
            src -= p->in_strides[d] * p->out_shape[d];
            idx[d] = 0;
        }
    }
    return WL_OK;
}
