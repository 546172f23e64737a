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

/* Output (oy, ox) of one channel with every tap checked against the input's bounds. */
static inline int32_t wl_dw_s8_edge(const wl_conv_s8_params_t *p, const int8_t *xc, const int8_t *wc, int32_t oy,
                                    int32_t ox)
{
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    int32_t acc = 0;
    for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int32_t iy = iy0 + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; kx++) {
            const int32_t ix = ix0 + kx * p->dil_w;
            const int32_t v = (iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w) ? xc[iy * p->in_w + ix]
                                                                                   : p->input_zero_point;
            acc += v * wc[ky * p->k_w + kx];
        }
    }
    return acc;
}

int wl_depthwise_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0
        || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out_off = p->output_offset, out_lo = p->act_min, out_hi = p->act_max;
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t SX = p->stride_w, OW = p->out_w;
    /* Outputs [ox_lo, ox_hi) of a row have their windows inside the input horizontally; ox_hi3 also
     * keeps a 3x3 window's last row word load (a byte past the window) inside the row. */
    int32_t ox_lo = 0;
    while (ox_lo < OW && ox_lo * SX - p->pad_left < 0)
        ox_lo++;
    int32_t ox_hi = OW, ox_hi3 = OW;
    while (ox_hi > ox_lo && (ox_hi - 1) * SX - p->pad_left + (KW - 1) * DW >= W)
        ox_hi--;
    while (ox_hi3 > ox_lo && (ox_hi3 - 1) * SX - p->pad_left + 3 >= W)
        ox_hi3--;
#ifdef WL_DW_S8_DSP
    const int fast3 = KH == 3 && KW == 3 && DH == 1 && DW == 1;
#endif
    for (int32_t c = 0; c < p->in_c; c++) {
        const int8_t *xc = x + c * H * W;
        const int8_t *wc = w + c * KH * KW;
        const int32_t b = bias[c], m = multiplier[c], sh = shift[c];
        int8_t *yc = y + c * p->out_h * OW;
#ifdef WL_DW_S8_DSP
        int32_t w02[3], w1[3];
        for (int32_t r = 0; fast3 && r < 3; r++) {
            w02[r] = (int32_t)(((uint32_t)(uint16_t)wc[3 * r + 2] << 16) | (uint16_t)wc[3 * r]);
            w1[r] = wc[3 * r + 1];
        }
#endif
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            int8_t *yr = yc + oy * OW;
            int32_t ox = 0;
            if (iy0 >= 0 && iy0 + (KH - 1) * DH < H) {
                for (; ox < ox_lo; ox++)
                    yr[ox] = wl_requantize_s8(wl_dw_s8_edge(p, xc, wc, oy, ox), b, m, sh, out_off, out_lo, out_hi);
#ifdef WL_DW_S8_DSP
                if (fast3) {
                    /* The last row's word load reads a byte past the window: inside the tensor when a
                     * row follows, or when the window ends before the row does. */
                    const int32_t hi = iy0 + 3 < H ? ox_hi : ox_hi3;
                    const int8_t *r0 = xc + iy0 * W + ox * SX - p->pad_left;
                    for (; ox < hi; ox++, r0 += SX) {
                        int32_t v0, v1, v2;
                        memcpy(&v0, r0, 4);
                        memcpy(&v1, r0 + W, 4);
                        memcpy(&v2, r0 + 2 * W, 4);
                        int32_t acc = __smlad(__sxtb16((int8x4_t)v0), (int16x2_t)w02[0], 0);
                        acc = __smlad(__sxtb16((int8x4_t)v1), (int16x2_t)w02[1], acc);
                        acc = __smlad(__sxtb16((int8x4_t)v2), (int16x2_t)w02[2], acc);
                        __asm__("sxtb16 %0, %1, ror #8" : "=r"(v0) : "r"(v0));
                        __asm__("sxtb16 %0, %1, ror #8" : "=r"(v1) : "r"(v1));
                        __asm__("sxtb16 %0, %1, ror #8" : "=r"(v2) : "r"(v2));
                        acc = __smlabb(v0, w1[0], acc);
                        acc = __smlabb(v1, w1[1], acc);
                        acc = __smlabb(v2, w1[2], acc);
                        yr[ox] = wl_requantize_s8(acc, b, m, sh, out_off, out_lo, out_hi);
                    }
                }
#endif
                for (; ox < ox_hi; ox++) {
                    const int8_t *xw = xc + iy0 * W + ox * SX - p->pad_left;
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < KH; ky++)
                        for (int32_t kx = 0; kx < KW; kx++)
                            acc += xw[ky * DH * W + kx * DW] * wc[ky * KW + kx];
                    yr[ox] = wl_requantize_s8(acc, b, m, sh, out_off, out_lo, out_hi);
                }
            }
            for (; ox < OW; ox++)
                yr[ox] = wl_requantize_s8(wl_dw_s8_edge(p, xc, wc, oy, ox), b, m, sh, out_off, out_lo, out_hi);
        }
    }
    return WL_OK;
}
