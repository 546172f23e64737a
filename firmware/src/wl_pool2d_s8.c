/* int8 max and average pooling, 2-D (global pooling: a window the size of the input).
 * Max: the largest int8 of the taps inside the input. Average: the exact integer sum of
 * (x - zero point) over the taps inside the input, times the scale, over the count of taps
 * inside the input (or inside the padded input with count_include_pad: padding is the real 0).
 * Then quantized to the output's parameters, as onnxruntime's QDQ path does. */
#include "wl_kernels.h"

int wl_pool2d_s8(const wl_pool_s8_params_t *p, const int8_t *x, int8_t *y)
{
    if (p == 0 || x == 0 || y == 0 || p->k_h < 1 || p->k_w < 1)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w;
    for (int32_t c = 0; c < p->channels; c++) {
        const int8_t *xc = x + c * H * W;
        int8_t *yc = y + c * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t by = oy * p->stride_h - p->pad_top, bx = ox * p->stride_w - p->pad_left;
                int32_t m = -128, sum = 0, inside = 0, padded = 0;
                for (int32_t ky = 0; ky < p->k_h; ky++) {
                    const int32_t iy = by + ky * p->dil_h;
                    for (int32_t kx = 0; kx < p->k_w; kx++) {
                        const int32_t ix = bx + kx * p->dil_w;
                        if (iy >= -p->pad_top && iy < H + p->pad_bottom && ix >= -p->pad_left && ix < W + p->pad_right)
                            padded++;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        const int32_t v = xc[iy * W + ix];
                        inside++;
                        m = v > m ? v : m;
                        sum += v - p->x_zero_point;
                    }
                }
                float real;
                if (p->mode == WL_POOL_MAX) {
                    real = (float)(m - p->x_zero_point) * p->x_scale;
                } else {
                    const int32_t n = p->count_include_pad ? padded : inside;
                    real = n > 0 ? (float)sum * p->x_scale / (float)n : 0.0f;
                }
                yc[oy * p->out_w + ox] = (int8_t)wl_quantize_value(real, p->y_scale, p->y_zero_point, p->act_min, p->act_max);
            }
        }
    }
    return WL_OK;
}
