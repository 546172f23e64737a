/* int8 fully connected layer with per-output-channel requantization.
 *
 * With the DSP extension (Cortex-M4, M7, M33) four output rows are computed together, four
 * inputs at a time: SXTB16 widens the even and the odd int8 lanes of a word to int16 pairs
 * (the odd ones through its rotation) and SMLAD multiplies and accumulates a pair in one
 * instruction, as CMSIS-NN does; each widened input word serves four rows. The input's zero
 * point is folded into the bias at compile time, so the inputs need no offset. */
#include "wl_kernels.h"

int wl_fc_s8(const wl_fc_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
             const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out_off = p->output_offset, out_lo = p->act_min, out_hi = p->act_max;
    const int32_t k = p->in_features, n_out = p->out_features;
    for (int32_t r = 0; r < p->rows; r++) {
        const int8_t *xr = x + r * k;
        int8_t *yr = y + r * n_out;
        int32_t n = 0;
#ifdef WL_S8_DSP
        for (; n + 4 <= n_out; n += 4) {
            const int8_t *w0 = w + n * k;
            int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
            int32_t i = 0;
            for (; i + 4 <= k; i += 4) {
                int32_t xv = wl_load4(xr + i);
                int16x2_t xe = wl_even(xv), xo = wl_odd(xv);
                int32_t wv = wl_load4(w0 + i);
                acc0 = __smlad(xe, wl_even(wv), acc0);
                acc0 = __smlad(xo, wl_odd(wv), acc0);
                wv = wl_load4(w0 + k + i);
                acc1 = __smlad(xe, wl_even(wv), acc1);
                acc1 = __smlad(xo, wl_odd(wv), acc1);
                wv = wl_load4(w0 + 2 * k + i);
                acc2 = __smlad(xe, wl_even(wv), acc2);
                acc2 = __smlad(xo, wl_odd(wv), acc2);
                wv = wl_load4(w0 + 3 * k + i);
                acc3 = __smlad(xe, wl_even(wv), acc3);
                acc3 = __smlad(xo, wl_odd(wv), acc3);
            }
            for (; i < k; i++) {
                int32_t xi = xr[i];
                acc0 += xi * w0[i];
                acc1 += xi * w0[k + i];
                acc2 += xi * w0[2 * k + i];
                acc3 += xi * w0[3 * k + i];
            }
            yr[n] = wl_requantize_s8(acc0, bias[n], multiplier[n], shift[n], out_off, out_lo, out_hi);
            yr[n + 1] = wl_requantize_s8(acc1, bias[n + 1], multiplier[n + 1], shift[n + 1], out_off, out_lo, out_hi);
            yr[n + 2] = wl_requantize_s8(acc2, bias[n + 2], multiplier[n + 2], shift[n + 2], out_off, out_lo, out_hi);
            yr[n + 3] = wl_requantize_s8(acc3, bias[n + 3], multiplier[n + 3], shift[n + 3], out_off, out_lo, out_hi);
        }
#endif
        for (; n < n_out; n++) {
            const int8_t *wn = w + n * k;
            int32_t acc = 0;
            for (int32_t i = 0; i < k; i++)
                acc += (int32_t)xr[i] * wn[i];
            yr[n] = wl_requantize_s8(acc, bias[n], multiplier[n], shift[n], out_off, out_lo, out_hi);
        }
    }
    return WL_OK;
}
