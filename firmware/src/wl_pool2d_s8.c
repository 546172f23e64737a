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
    /* read once: a store through int8_t * may alias the params */
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t PT = p->pad_top, PL = p->pad_left, PB = p->pad_bottom, PR = p->pad_right;
    const int32_t OH = p->out_h, OW = p->out_w, SY = p->stride_h, SX = p->stride_w, zx = p->x_zero_point;
    const int32_t zy = p->y_zero_point, lo = p->act_min, hi = p->act_max, is_max = p->mode == WL_POOL_MAX;
    const int32_t include_pad = p->count_include_pad;
    const float sx = p->x_scale, sy = p->y_scale;
    for (int32_t c = 0; c < p->channels; c++) {
        const int8_t *xc = x + c * H * W;
        int8_t *yc = y + c * OH * OW;
        for (int32_t oy = 0; oy < OH; oy++) {
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t by = oy * SY - PT, bx = ox * SX - PL;
                int32_t m = -128, sum = 0, inside = 0, padded = 0;
                if (by >= 0 && bx >= 0 && by + (KH - 1) * DH < H && bx + (KW - 1) * DW < W) {
                    /* the window inside the input (global pooling, say): no checks */
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int8_t *xr = xc + (by + ky * DH) * W + bx;
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t v = xr[kx * DW];
                            m = v > m ? v : m;
                            sum += v;
                        }
                    }
                    inside = padded = KH * KW;
                    sum -= inside * zx;
                } else {
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int32_t iy = by + ky * DH;
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t ix = bx + kx * DW;
                            if (iy >= -PT && iy < H + PB && ix >= -PL && ix < W + PR)
                                padded++;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                                continue;
                            const int32_t v = xc[iy * W + ix];
                            inside++;
                            m = v > m ? v : m;
                            sum += v - zx;
                        }
                    }
                }
                float real;
                if (is_max) {
                    real = (float)(m - zx) * sx;
                } else {
                    const int32_t n = include_pad ? padded : inside;
                    real = n > 0 ? (float)sum * sx / (float)n : 0.0f;
                }
                yc[oy * OW + ox] = (int8_t)wl_quantize_value(real, sy, zy, lo, hi);
            }
        }
    }
    return WL_OK;
}
