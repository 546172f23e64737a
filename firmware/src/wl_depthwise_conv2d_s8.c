/* int8 depthwise convolution (group == in_c == out_c) with per-channel requantization.
 *
 * The input's zero point is folded into the bias at compile time, so a tap outside the input
 * counts as the zero point itself (the real 0). Windows wholly inside the input take no bounds
 * checks; with the DSP extension a 3x3 window (any stride) takes one word load per row: SXTB16
 * splits the row's bytes into (x0, x2) and (x1, x3), SMLAD multiplies (x0, x2) with (w0, w2) and
 * SMLABB adds x1 * w1. */
#include <string.h>

#include "wl_kernels.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define WL_DW_S8_DSP 1
#endif

static inline int8_t wl_dw_s8_out(int32_t acc, int32_t bias, const wl_conv_s8_params_t *p, int32_t mult,
                                  int32_t shift)
{
    int32_t q = wl_requantize((int64_t)acc + bias, mult, shift) + p->output_offset;
    if (q < p->act_min)
        q = p->act_min;
    if (q > p->act_max)
        q = p->act_max;
    return (int8_t)q;
}

int wl_depthwise_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0
        || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t zp = p->input_zero_point;
#ifdef WL_DW_S8_DSP
    const int fast3 = KH == 3 && KW == 3 && DH == 1 && DW == 1;
#endif
    for (int32_t c = 0; c < p->in_c; c++) {
        const int8_t *xc = x + c * H * W;
        const int8_t *wc = w + c * KH * KW;
        int8_t *yc = y + c * p->out_h * p->out_w;
#ifdef WL_DW_S8_DSP
        int32_t w02[3], w1[3];
        if (fast3)
            for (int32_t r = 0; r < 3; r++) {
                w02[r] = (int32_t)(((uint32_t)(uint16_t)wc[3 * r + 2] << 16) | (uint16_t)wc[3 * r]);
                w1[r] = wc[3 * r + 1];
            }
#endif
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            const int rows_in = iy0 >= 0 && iy0 + (KH - 1) * DH < H;
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                int32_t acc = 0;
                if (rows_in && ix0 >= 0 && ix0 + (KW - 1) * DW < W) {
                    const int8_t *xw = xc + iy0 * W + ix0;
#ifdef WL_DW_S8_DSP
                    /* The last row's word reads one byte past the window: it must stay in the tensor. */
                    if (fast3 && (ix0 + 3 < W || iy0 + 3 < H)) {
                        for (int32_t r = 0; r < 3; r++) {
                            int32_t v;
                            memcpy(&v, xw + r * W, 4);
                            acc = __smlad(__sxtb16((int8x4_t)v), (int16x2_t)w02[r], acc);
                            int32_t odd;
                            __asm__("sxtb16 %0, %1, ror #8" : "=r"(odd) : "r"(v));
                            acc = __smlabb(odd, w1[r], acc);
                        }
                        yc[oy * p->out_w + ox] = wl_dw_s8_out(acc, bias[c], p, multiplier[c], shift[c]);
                        continue;
                    }
#endif
                    for (int32_t ky = 0; ky < KH; ky++)
                        for (int32_t kx = 0; kx < KW; kx++)
                            acc += xw[ky * DH * W + kx * DW] * wc[ky * KW + kx];
                } else {
                    for (int32_t ky = 0; ky < KH; ky++) {
                        const int32_t iy = iy0 + ky * DH;
                        for (int32_t kx = 0; kx < KW; kx++) {
                            const int32_t ix = ix0 + kx * DW;
                            const int32_t v = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? xc[iy * W + ix] : zp;
                            acc += v * wc[ky * KW + kx];
                        }
                    }
                }
                yc[oy * p->out_w + ox] = wl_dw_s8_out(acc, bias[c], p, multiplier[c], shift[c]);
            }
        }
    }
    return WL_OK;
}
