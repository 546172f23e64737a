/* Resize of the last two axes (nearest or linear), float32, through per-axis tables made at
 * compile time: output row o reads input rows h_index[2o], h_index[2o + 1] with weights
 * h_weight[2o], h_weight[2o + 1], and likewise along w. Linear sums the four products in
 * onnxruntime's order; nearest copies the first index's element. */
#include "wl_kernels.h"

int wl_resize_f32(const wl_resize_params_t *p, const float *x, const int32_t *h_index, const float *h_weight,
                  const int32_t *w_index, const float *w_weight, float *y)
{
    if (p == 0 || x == 0 || h_index == 0 || h_weight == 0 || w_index == 0 || w_weight == 0 || y == 0 || p->outer < 1
        || p->in_h < 1 || p->in_w < 1 || p->out_h < 1 || p->out_w < 1)
        return WL_ERR_ARG;
    for (int32_t i = 0; i < 2 * p->out_h; i++)
        if (h_index[i] < 0 || h_index[i] >= p->in_h)
            return WL_ERR_ARG;
    for (int32_t i = 0; i < 2 * p->out_w; i++)
        if (w_index[i] < 0 || w_index[i] >= p->in_w)
            return WL_ERR_ARG;
    const int32_t plane = p->in_h * p->in_w;
    for (int32_t c = 0; c < p->outer; c++, x += plane) {
        for (int32_t oh = 0; oh < p->out_h; oh++) {
            const float *r0 = x + h_index[2 * oh] * p->in_w;
            if (!p->linear) {
                for (int32_t ow = 0; ow < p->out_w; ow++)
                    *y++ = r0[w_index[2 * ow]];
                continue;
            }
            const float *r1 = x + h_index[2 * oh + 1] * p->in_w;
            const float a = h_weight[2 * oh], b = h_weight[2 * oh + 1];
            for (int32_t ow = 0; ow < p->out_w; ow++) {
                const int32_t i0 = w_index[2 * ow], i1 = w_index[2 * ow + 1];
                const float u = w_weight[2 * ow], v = w_weight[2 * ow + 1];
                *y++ = u * a * r0[i0] + v * a * r0[i1] + u * b * r1[i0] + v * b * r1[i1];
            }
        }
    }
    return WL_OK;
}
