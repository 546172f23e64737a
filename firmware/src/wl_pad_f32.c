/* Pad: constant, edge, reflect or wrap, up to WL_MAX_DIMS axes, float32. */
#include "wl_kernels.h"

int wl_pad_f32(const wl_pad_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0 || p->ndim < 1 || p->ndim > WL_MAX_DIMS || p->mode < WL_PAD_CONSTANT ||
        p->mode > WL_PAD_WRAP)
        return WL_ERR_ARG;
    int32_t size = 1, in_stride[WL_MAX_DIMS];
    int32_t stride = 1;
    for (int32_t d = p->ndim - 1; d >= 0; d--) {
        size *= p->out_shape[d];
        in_stride[d] = stride;
        stride *= p->in_shape[d];
    }
    int32_t idx[WL_MAX_DIMS] = {0};
    const int32_t last = p->ndim - 1;
    for (int32_t i = 0; i < size; i++) {
        int32_t src = 0, outside = 0;
        for (int32_t d = 0; d <= last; d++) {
            int32_t c = idx[d] - p->begin[d];
            const int32_t n = p->in_shape[d];
            if (c < 0 || c >= n) {
                if (p->mode == WL_PAD_CONSTANT) {
                    outside = 1;
                    break;
                }
                if (p->mode == WL_PAD_EDGE) {
                    c = c < 0 ? 0 : n - 1;
                } else if (p->mode == WL_PAD_REFLECT) { /* about the edge elements; the lowering keeps pads below n */
                    c = c < 0 ? -c : 2 * (n - 1) - c;
                } else {
                    c = ((c % n) + n) % n;
                }
            }
            src += c * in_stride[d];
        }
        y[i] = outside ? p->value : x[src];
        for (int32_t d = last; d >= 0; d--) {
            if (++idx[d] < p->out_shape[d])
                break;
            idx[d] = 0;
        }
    }
    return WL_OK;
}
