/* int8 convolution (general, grouped, pointwise) with per-output-channel requantization.
 *
 * A matrix product over im2col columns: two output pixels at a time, each pixel's window
 * (in_c / group x k_h x k_w taps, in the weights' order) is copied into the scratch as int16,
 * taps outside the input holding the input's zero point (the real 0), and every output channel's
 * weight row is multiplied with both columns. The input's zero point is folded into the bias at
 * compile time, so the products are of raw int8 values. The compiler pads each weight row to a
 * multiple of 4 with zeros and stores each group of 4 as (w0, w2, w1, w3): with the DSP extension
 * (Cortex-M4, M7, M33) one word load and SXTB16 (plain and rotated) give the pairs (w0, w1) and
 * (w2, w3), which SMLAD multiplies with the column's int16 pairs as they lie; a block of two
 * channels by two pixels shares every load, as in CMSIS-NN. Portable C elsewhere. */
#include <string.h>

#include "wl_kernels.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define WL_CONV_S8_DSP 1

static inline int32_t wl_load4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, 4); /* one LDR: unaligned word loads are allowed on these cores */
    return v;
}

static inline int16x2_t wl_even(int32_t v)
{
    return __sxtb16((int8x4_t)v);
}

static inline int16x2_t wl_odd(int32_t v)
{
    int16x2_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
    return r;
}
#endif

/* The window of output pixel (oy, ox) of one group, in (channel, k_y, k_x) order, as int16. */
static void wl_im2col_s8(const wl_conv_s8_params_t *p, const int8_t *xg, int32_t cin_g, int32_t oy, int32_t ox,
                         int16_t *col)
{
    const int32_t plane = p->in_h * p->in_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int16_t pad = (int16_t)p->input_zero_point;
    const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h
                       && ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
    if (p->k_h == 1 && p->k_w == 1 && inside) { /* pointwise: one tap per channel */
        const int8_t *xs = xg + iy0 * p->in_w + ix0;
        for (int32_t ic = 0; ic < cin_g; ic++)
            col[ic] = xs[ic * plane];
        return;
    }
    for (int32_t ic = 0; ic < cin_g; ic++) {
        const int8_t *xc = xg + ic * plane;
        for (int32_t ky = 0; ky < p->k_h; ky++) {
            const int32_t iy = iy0 + ky * p->dil_h;
            if (inside) {
                const int8_t *xrow = xc + iy * p->in_w + ix0;
                for (int32_t kx = 0; kx < p->k_w; kx++)
                    *col++ = xrow[kx * p->dil_w];
            } else if (iy < 0 || iy >= p->in_h) {
                for (int32_t kx = 0; kx < p->k_w; kx++)
                    *col++ = pad;
            } else {
                const int8_t *xrow = xc + iy * p->in_w;
                for (int32_t kx = 0; kx < p->k_w; kx++) {
                    const int32_t ix = ix0 + kx * p->dil_w;
                    *col++ = (ix >= 0 && ix < p->in_w) ? xrow[ix] : pad;
                }
            }
        }
    }
}

/* acc[2 * r + c] = weight row r . column c, for rows w0, w1 (w1 may equal w0) of kpad weights
 * in groups of 4 stored as (w0, w2, w1, w3), and int16 columns c0, c1. */
static void wl_dot_2x2(const int8_t *w0, const int8_t *w1, const int16_t *c0, const int16_t *c1, int32_t kpad,
                       int32_t acc[4])
{
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#ifdef WL_CONV_S8_DSP
    const int8_t *end = w0 + kpad;
    while (w0 < end) {
        int32_t u0, u1, v0, v1;
        memcpy(&u0, c0, 4); /* (c[k], c[k+1]) and (c[k+2], c[k+3]) */
        memcpy(&u1, c0 + 2, 4);
        memcpy(&v0, c1, 4);
        memcpy(&v1, c1 + 2, 4);
        c0 += 4;
        c1 += 4;
        int32_t wv = wl_load4(w0);
        w0 += 4;
        int16x2_t lo = wl_even(wv), hi = wl_odd(wv); /* (w[k], w[k+1]), (w[k+2], w[k+3]) */
        a00 = __smlad(lo, u0, a00);
        a00 = __smlad(hi, u1, a00);
        a01 = __smlad(lo, v0, a01);
        a01 = __smlad(hi, v1, a01);
        wv = wl_load4(w1);
        w1 += 4;
        lo = wl_even(wv);
        hi = wl_odd(wv);
        a10 = __smlad(lo, u0, a10);
        a10 = __smlad(hi, u1, a10);
        a11 = __smlad(lo, v0, a11);
        a11 = __smlad(hi, v1, a11);
    }
#else
    static const uint8_t at[4] = {0, 2, 1, 3}; /* where weight k of a group of 4 is stored */
    for (int32_t i = 0; i < kpad; i++) {
        const int32_t j = (i & ~3) + at[i & 3];
        const int32_t u = c0[i], v = c1[i], x = w0[j], y = w1[j];
        a00 += x * u;
        a01 += x * v;
        a10 += y * u;
        a11 += y * v;
    }
#endif
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

int wl_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                 const int32_t *multiplier, const int32_t *shift, int8_t *scratch, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || scratch == 0 || y == 0
        || p->group < 1)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out_off = p->output_offset, out_lo = p->act_min, out_hi = p->act_max;
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group;
    const int32_t k = cin_g * p->k_h * p->k_w, kpad = (k + 3) & ~3, npix = p->out_h * p->out_w;
    int16_t *col0 = (int16_t *)(void *)scratch, *col1 = col0 + kpad;
    for (int32_t i = k; i < kpad; i++) /* the padding of the rows' zeros: any finite value */
        col0[i] = col1[i] = 0;
    for (int32_t g = 0; g < p->group; g++) {
        const int8_t *xg = x + g * cin_g * p->in_h * p->in_w;
        for (int32_t px = 0; px < npix; px += 2) {
            const int two = px + 1 < npix; /* an odd last pixel is computed twice over one column */
            wl_im2col_s8(p, xg, cin_g, px / p->out_w, px % p->out_w, col0);
            if (two)
                wl_im2col_s8(p, xg, cin_g, (px + 1) / p->out_w, (px + 1) % p->out_w, col1);
            const int16_t *c1 = two ? col1 : col0;
            for (int32_t j = 0; j < cout_g; j += 2) {
                const int32_t oc = g * cout_g + j;
                const int32_t oc1 = j + 1 < cout_g ? oc + 1 : oc;
                int32_t acc[4];
                wl_dot_2x2(w + oc * kpad, w + oc1 * kpad, col0, c1, kpad, acc);
                int8_t *y0 = y + oc * npix + px, *y1 = y + oc1 * npix + px;
                y0[0] = wl_requantize_s8(acc[0], bias[oc], multiplier[oc], shift[oc], out_off, out_lo, out_hi);
                if (two)
                    y0[1] = wl_requantize_s8(acc[1], bias[oc], multiplier[oc], shift[oc], out_off, out_lo, out_hi);
                if (oc1 != oc) {
                    y1[0] = wl_requantize_s8(acc[2], bias[oc1], multiplier[oc1], shift[oc1], out_off, out_lo, out_hi);
                    if (two)
                        y1[1] = wl_requantize_s8(acc[3], bias[oc1], multiplier[oc1], shift[oc1], out_off, out_lo, out_hi);
                }
            }
        }
    }
    return WL_OK;
}
