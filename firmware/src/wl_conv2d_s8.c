/* int8 convolution (general, grouped, pointwise) with per-output-channel requantization.
 *
 * A matrix product over im2col columns, a block of two output channels by two output pixels at a
 * time. Each pixel's window (in_c / group x k_h x k_w taps, in the weights' order) is copied into
 * the scratch, taps outside the input holding the input's zero point (the real 0), then widened to
 * int16 (SXTB16 and PKHBT / PKHTB: four taps in five instructions); the
 * input's zero point is folded into the bias at compile time, so the products are of raw values.
 * Layouts, both in groups of 4 taps (the taps padded to kpad, a multiple of 4, with zero weights):
 * the two columns interleaved, 4 taps of one then 4 of the other; the compiler stores the weights
 * of two channels the same way, and each channel's 4 as (w0, w2, w1, w3). With the DSP extension
 * (Cortex-M4, M7, M33) a step of 4 taps is then three LDRD (both columns, both channels), SXTB16
 * plain and rotated giving the pairs (w0, w1) and (w2, w3) in the columns' order, and eight SMLAD,
 * everything in registers, two steps per pass. Portable C elsewhere, on the same layouts. */
#include "wl_kernels.h"

#ifdef WL_S8_DSP
typedef int32_t wl_word_t __attribute__((may_alias));
#endif

/* The window of output pixel (oy, ox) of one group, in (channel, k_y, k_x) order, int8 taps one
 * after the other (a tight copy; wl_widen_s8 then lays them out as the product wants). */
static void wl_im2col_s8(const wl_conv_s8_params_t *p, const int8_t *xg, int32_t cin_g, int32_t oy, int32_t ox,
                         int8_t *col)
{
    const int32_t plane = p->in_h * p->in_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_top, ix0 = ox * p->stride_w - p->pad_left;
    const int8_t pad = (int8_t)p->input_zero_point;
    const int inside = iy0 >= 0 && ix0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h
                       && ix0 + (p->k_w - 1) * p->dil_w < p->in_w;
    if (p->k_h == 1 && p->k_w == 1 && inside) { /* pointwise: one tap per channel */
        const int8_t *xs = xg + iy0 * p->in_w + ix0;
        for (int32_t ic = 0; ic < cin_g; ic++, xs += plane)
            *col++ = *xs;
        return;
    }
    const int32_t KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w, W = p->in_w;
    if (inside && KW == 3 && DW == 1) { /* the common 3-wide window: no checks, no inner loop */
        for (int32_t ic = 0; ic < cin_g; ic++) {
            const int8_t *xr = xg + ic * plane + iy0 * W + ix0;
            for (int32_t ky = 0; ky < KH; ky++, xr += DH * W, col += 3) {
                col[0] = xr[0];
                col[1] = xr[1];
                col[2] = xr[2];
            }
        }
        return;
    }
    /* The taps inside the input: rows [ky0, ky1), columns [kx0, kx1); the rest is padding. */
    int32_t ky0, ky1, kx0, kx1;
    wl_valid_taps(iy0, KH, DH, p->in_h, &ky0, &ky1);
    wl_valid_taps(ix0, KW, DW, W, &kx0, &kx1);
    for (int32_t ic = 0; ic < cin_g; ic++) {
        const int8_t *xc = xg + ic * plane;
        for (int32_t ky = 0; ky < KH; ky++) {
            if (ky < ky0 || ky >= ky1) {
                for (int32_t kx = 0; kx < KW; kx++)
                    *col++ = pad;
                continue;
            }
            const int8_t *xrow = xc + (iy0 + ky * DH) * W + ix0;
            int32_t kx = 0;
            for (; kx < kx0; kx++)
                *col++ = pad;
            for (; kx < kx1; kx++)
                *col++ = xrow[kx * DW];
            for (; kx < KW; kx++)
                *col++ = pad;
        }
    }
}

/* kpad int8 taps widened to int16 into one column of the interleaved pair (slot: the pair's start,
 * plus 4 for the second column): 4 taps of this column, then the 4 of the other. */
static void wl_widen_s8(const int8_t *col, int32_t kpad, int16_t *slot)
{
    for (int32_t i = 0; i < kpad; i += 4, slot += 8) {
#ifdef WL_S8_DSP
        const int32_t v = wl_load4(col + i);
        const uint32_t e = (uint32_t)wl_even(v), o = (uint32_t)wl_odd(v); /* (x0, x2), (x1, x3) */
        wl_word_t *s = (wl_word_t *)(void *)slot;
        s[0] = (int32_t)((e & 0xFFFFu) | (o << 16));    /* (x0, x1): PKHBT */
        s[1] = (int32_t)((o & 0xFFFF0000u) | (e >> 16)); /* (x2, x3): PKHTB */
#else
        for (int32_t j = 0; j < 4; j++)
            slot[j] = col[i + j];
#endif
    }
}

#ifdef WL_S8_DSP
/* One step of 4 taps of the 2x2 block: three LDRD (both columns, both channels), four SXTB16,
 * eight SMLAD. */
static inline __attribute__((always_inline)) void wl_step_2x2(const int8_t **wp, const int16_t **cp, int32_t *a00,
                                                              int32_t *a01, int32_t *a10, int32_t *a11)
{
    /* word loads in pairs (LDRD): the scratch and the weight pairs are word aligned */
    const wl_word_t *c = (const wl_word_t *)(const void *)*cp, *ww = (const wl_word_t *)(const void *)*wp;
    const int32_t u0 = c[0], u1 = c[1]; /* column 0: (c[k], c[k+1]), (c[k+2], c[k+3]) */
    const int32_t v0 = c[2], v1 = c[3]; /* column 1 */
    int32_t w0 = ww[0], w1 = ww[1];     /* channel 0's 4 taps, then channel 1's */
    *cp += 8;
    *wp += 8;
    int16x2_t lo = wl_even(w0); /* (w[k], w[k+1]) */
    w0 = wl_odd(w0);            /* (w[k+2], w[k+3]) */
    *a00 = __smlad(lo, u0, *a00);
    *a01 = __smlad(lo, v0, *a01);
    *a00 = __smlad(w0, u1, *a00);
    *a01 = __smlad(w0, v1, *a01);
    lo = wl_even(w1);
    w1 = wl_odd(w1);
    *a10 = __smlad(lo, u0, *a10);
    *a11 = __smlad(lo, v0, *a11);
    *a10 = __smlad(w1, u1, *a10);
    *a11 = __smlad(w1, v1, *a11);
}
#endif

/* acc[2 * r + c] = channel r . column c, over kpad taps of a weight pair and a column pair. */
static void wl_dot_2x2(const int8_t *wp, const int16_t *cp, int32_t kpad, int32_t acc[4])
{
    int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
#ifdef WL_S8_DSP
    const int8_t *end = wp + 2 * kpad;
    /* 8 taps per pass (two steps of 4) halve the loop's own instructions; a last step of 4 */
    while (wp + 16 <= end) {
        wl_step_2x2(&wp, &cp, &a00, &a01, &a10, &a11);
        wl_step_2x2(&wp, &cp, &a00, &a01, &a10, &a11);
    }
    if (wp < end)
        wl_step_2x2(&wp, &cp, &a00, &a01, &a10, &a11);
#else
    static const uint8_t at[4] = {0, 2, 1, 3}; /* where weight k of a group of 4 is stored */
    for (int32_t i = 0; i < kpad; i++) {
        const int32_t g = (i >> 2) << 3, j = g + at[i & 3], c = g | (i & 3);
        const int32_t u = cp[c], v = cp[c + 4], x = wp[j], y = wp[j + 4];
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
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group, pairs = (cout_g + 1) / 2;
    const int32_t k = cin_g * p->k_h * p->k_w, kpad = (k + 3) & ~3, npix = p->out_h * p->out_w;
    int16_t *cols = (int16_t *)(void *)scratch;  /* the interleaved column pair: 2 x kpad int16 */
    int8_t *col = scratch + 4 * kpad;             /* one pixel's window: kpad int8 */
    for (int32_t i = k; i < kpad; i++) /* the taps beyond k meet zero weights: any finite value */
        col[i] = 0;
    for (int32_t g = 0; g < p->group; g++) {
        const int8_t *xg = x + g * cin_g * p->in_h * p->in_w;
        for (int32_t px = 0; px < npix; px += 2) {
            const int two = px + 1 < npix; /* an odd last pixel is computed twice */
            const int32_t px1 = two ? px + 1 : px;
            wl_im2col_s8(p, xg, cin_g, px / p->out_w, px % p->out_w, col);
            wl_widen_s8(col, kpad, cols);
            wl_im2col_s8(p, xg, cin_g, px1 / p->out_w, px1 % p->out_w, col);
            wl_widen_s8(col, kpad, cols + 4);
            for (int32_t j = 0; j < pairs; j++) {
                const int32_t oc = g * cout_g + 2 * j;
                const int one = 2 * j + 1 == cout_g; /* an odd last channel is paired with zeros */
                int32_t acc[4];
                wl_dot_2x2(w + (g * pairs + j) * 2 * kpad, cols, kpad, acc);
                int8_t *y0 = y + oc * npix + px;
                y0[0] = wl_requantize_s8(acc[0], bias[oc], multiplier[oc], shift[oc], out_off, out_lo, out_hi);
                if (two)
                    y0[1] = wl_requantize_s8(acc[1], bias[oc], multiplier[oc], shift[oc], out_off, out_lo, out_hi);
                if (!one) {
                    int8_t *y1 = y0 + npix;
                    y1[0] = wl_requantize_s8(acc[2], bias[oc + 1], multiplier[oc + 1], shift[oc + 1], out_off, out_lo,
                                             out_hi);
                    if (two)
                        y1[1] = wl_requantize_s8(acc[3], bias[oc + 1], multiplier[oc + 1], shift[oc + 1], out_off,
                                                 out_lo, out_hi);
                }
            }
        }
    }
    return WL_OK;
}
