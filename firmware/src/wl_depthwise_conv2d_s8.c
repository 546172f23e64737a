/* int8 depthwise convolution (group == in_c == out_c) with per-channel requantization.
 *
 * The input's zero point is folded into the bias at compile time, so a tap outside the input
 * counts as the zero point itself (the real 0). Each channel's plane is first copied into the
 * scratch with its padding filled with the zero point, so that no window needs a bounds check;
 * then each output row is summed and requantized, each loop with few live values. With the DSP
 * extension a 3x3 window (any stride) takes one word load per row: SXTB16 splits the row's bytes
 * into (x0, x2) and (x1, x3), SMLAD multiplies (x0, x2) with (w0, w2) and SMLABB adds x1 * w1. */
#include <string.h>

#include "wl_kernels.h"

#ifdef WL_S8_DSP
/* Sums of 3x3 windows along a row into acc[0 .. n), x at the first window's top left, step apart:
 * one word load per window row (a byte past the window: the caller keeps it inside the tensor).
 * wt: the (w0, w2) pairs of the three rows, then (w1 of row 0, w1 of row 1) and w1 of row 2.
 * Each window row is finished before the next is loaded, so that everything fits in registers. */
static inline void wl_dw3x3_row(const int8_t *x, int32_t in_w, int32_t step, const int32_t wt[5], int32_t *acc,
                                int32_t n)
{
    const int16x2_t a0 = (int16x2_t)wt[0], a1 = (int16x2_t)wt[1], a2 = (int16x2_t)wt[2];
    const int32_t b01 = wt[3], b2 = wt[4];
    const int32_t in_w2 = 2 * in_w;
    for (int32_t *end = acc + n; acc < end; x += step) {
        int32_t v = wl_load4(x);
        int32_t s = __smuad(wl_even(v), a0);
        s = __smlabb(wl_odd(v), b01, s);
        v = wl_load4(x + in_w);
        s = __smlad(wl_even(v), a1, s);
        s = __smlabt(wl_odd(v), b01, s);
        v = wl_load4(x + in_w2);
        s = __smlad(wl_even(v), a2, s);
        const int32_t o = wl_odd(v);
        *acc++ = __smlabb(o, b2, s);
    }
}

/* The common strides as constants: one register fewer in the loop. */
__attribute__((noinline)) static void wl_dw3x3_row_s1(const int8_t *x, int32_t in_w, const int32_t wt[5],
                                                      int32_t *acc, int32_t n)
{
    wl_dw3x3_row(x, in_w, 1, wt, acc, n);
}

__attribute__((noinline)) static void wl_dw3x3_row_s2(const int8_t *x, int32_t in_w, const int32_t wt[5],
                                                      int32_t *acc, int32_t n)
{
    wl_dw3x3_row(x, in_w, 2, wt, acc, n);
}

__attribute__((noinline)) static void wl_dw3x3_row_sn(const int8_t *x, int32_t in_w, int32_t step, const int32_t wt[5],
                                                      int32_t *acc, int32_t n)
{
    wl_dw3x3_row(x, in_w, step, wt, acc, n);
}
#endif

/* y[i] = the output step of acc[i], one channel's constants: a loop of its own, with few live values. */
__attribute__((noinline)) static void wl_dw_s8_requantize_row(const int32_t *acc, int32_t n, int32_t bias, int32_t mult,
                                                              int32_t shift, const int32_t out[3], int8_t *y)
{
    wl_requantize_s8_row(acc, n, bias, mult, shift, out[0], out[1], out[2], y);
}

int wl_depthwise_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                           const int32_t *multiplier, const int32_t *shift, int8_t *scratch, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || scratch == 0 || y == 0
        || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out[3] = {p->output_offset, p->act_min, p->act_max};
    const int32_t H = p->in_h, W = p->in_w, KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t SY = p->stride_h, SX = p->stride_w, OH = p->out_h, OW = p->out_w;
    const int32_t PT = p->pad_top, PL = p->pad_left;
    const int8_t zp = (int8_t)p->input_zero_point;
    /* The padded plane: the rows and columns the windows cover, from (-pad_top, -pad_left). */
    const int32_t HP = WL_DW_S8_PLANE_H(p), WP = WL_DW_S8_PLANE_W(p);
    int8_t *plane = scratch;
    int32_t *acc = (int32_t *)(void *)(scratch + WL_DW_S8_PLANE_BYTES(p)); /* one output row's sums */
    const int32_t ncopy = W < WP - PL ? W : WP - PL; /* input columns inside the plane */
#ifdef WL_S8_DSP
    const int fast3 = KH == 3 && KW == 3 && DH == 1 && DW == 1;
#endif
    for (int32_t c = 0; c < p->in_c; c++) {
        const int8_t *xc = x + c * H * W;
        const int8_t *wc = w + c * KH * KW;
        for (int32_t r = 0; r < HP; r++) {
            int8_t *row = plane + r * WP;
            const int32_t iy = r - PT;
            if (iy < 0 || iy >= H || ncopy <= 0) {
                memset(row, zp, (size_t)WP);
                continue;
            }
            memset(row, zp, (size_t)PL);
            memcpy(row + PL, xc + iy * W, (size_t)ncopy);
            memset(row + PL + ncopy, zp, (size_t)(WP - PL - ncopy));
        }
#ifdef WL_S8_DSP
        int32_t wt[5];
        if (fast3) {
            for (int32_t r = 0; r < 3; r++)
                wt[r] = (int32_t)(((uint32_t)(uint16_t)wc[3 * r + 2] << 16) | (uint16_t)wc[3 * r]);
            wt[3] = (int32_t)(((uint32_t)(uint16_t)wc[4] << 16) | (uint16_t)wc[1]);
            wt[4] = wc[7];
        }
#endif
        for (int32_t oy = 0; oy < OH; oy++) {
            const int8_t *x0 = plane + oy * SY * WP;
#ifdef WL_S8_DSP
            if (fast3) { /* the word loads read a byte past the windows: the plane has 4 bytes of slack */
                if (SX == 1)
                    wl_dw3x3_row_s1(x0, WP, wt, acc, OW);
                else if (SX == 2)
                    wl_dw3x3_row_s2(x0, WP, wt, acc, OW);
                else
                    wl_dw3x3_row_sn(x0, WP, SX, wt, acc, OW);
            } else
#endif
            {
                for (int32_t ox = 0; ox < OW; ox++) {
                    const int8_t *xw = x0 + ox * SX;
                    int32_t a = 0;
                    for (int32_t ky = 0; ky < KH; ky++)
                        for (int32_t kx = 0; kx < KW; kx++)
                            a += xw[ky * DH * WP + kx * DW] * wc[ky * KW + kx];
                    acc[ox] = a;
                }
            }
            wl_dw_s8_requantize_row(acc, OW, bias[c], multiplier[c], shift[c], out, y + (c * OH + oy) * OW);
        }
    }
    return WL_OK;
}
