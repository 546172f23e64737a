/* Max and average pooling, 2-D, float32 (global pooling is a window the size
 * of the input). Average: the divisor counts the window's positions inside
 * the input, or inside the padded input with count_include_pad. */
#include <math.h>

#include "wl_kernels.h"

int wl_pool2d_f32(const wl_pool2d_params_t *p, const float *x, float *y)
{
    if (p == 0 || x == 0 || y == 0 || p->k_h < 1 || p->k_w < 1)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w;
    for (int32_t c = 0; c < p->channels; c++) {
        const float *xc = x + c * H * W;
        float *yc = y + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t by = oy * p->stride_h - p->pad_top, bx = ox * p->stride_w - p->pad_left;
                float acc = p->mode == WL_POOL_MAX ? -INFINITY : 0.0f;
                int32_t inside = 0, padded = 0;
                for (int32_t ky = 0; ky < p->k_h; ky++) {
                    const int32_t iy = by + ky * p->dil_h;
                    for (int32_t kx = 0; kx < p->k_w; kx++) {
                        const int32_t ix = bx + kx * p->dil_w;
                        if (iy >= -p->pad_top && iy < H + p->pad_bottom && ix >= -p->pad_left && ix < W + p->pad_right)
                            padded++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        const float v = xc[iy * W + ix];
                        inside++;
                        if (p->mode == WL_POOL_MAX)
                            acc = v > acc ? v : acc;
                        else
                            acc += v;
                    }
                }
                if (p->mode == WL_POOL_AVG) {
                    const int32_t n = p->count_include_pad ? padded : inside;
                    acc = n > 0 ? acc / (float)n : 0.0f;
                }
                yc[oy * p->out_w + ox] = acc;
            }
        }
    }
    return WL_OK;
}
