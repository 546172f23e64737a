/* int8 convolution (general, grouped and depthwise) with per-output-channel requantization.
 * Portable C on every core, for now; the taps outside the input are skipped, so padding
 * costs nothing. */
#include "wl_kernels.h"

int wl_conv2d_s8(const wl_conv_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                 const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0 || p->group < 1)
        return WL_ERR_ARG;
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group;
    const int32_t plane = p->in_h * p->in_w, taps = p->k_h * p->k_w;
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t g = oc / cout_g;
        const int8_t *wo = w + oc * cin_g * taps;
        const int8_t *xg = x + g * cin_g * plane;
        int8_t *yo = y + oc * p->out_h * p->out_w;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            int32_t ky0, ky1;
            wl_valid_taps(iy0, p->k_h, p->dil_h, p->in_h, &ky0, &ky1);
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                int32_t kx0, kx1;
                wl_valid_taps(ix0, p->k_w, p->dil_w, p->in_w, &kx0, &kx1);
                int32_t acc = 0; /* the bias is added in 64 bits: it may be near the int32 limits */
                for (int32_t ic = 0; ic < cin_g; ic++) {
                    const int8_t *xc = xg + ic * plane;
                    const int8_t *wc = wo + ic * taps;
                    for (int32_t ky = ky0; ky < ky1; ky++) {
                        const int8_t *xrow = xc + (iy0 + ky * p->dil_h) * p->in_w + ix0;
                        const int8_t *wrow = wc + ky * p->k_w;
                        for (int32_t kx = kx0; kx < kx1; kx++)
                            acc += ((int32_t)xrow[kx * p->dil_w] + p->input_offset) * wrow[kx];
                    }
                }
                int32_t q = wl_requantize((int64_t)acc + bias[oc], multiplier[oc], shift[oc]) + p->output_offset;
                if (q < p->act_min)
                    q = p->act_min;
                if (q > p->act_max)
                    q = p->act_max;
                yo[oy * p->out_w + ox] = (int8_t)q;
            }
        }
    }
    return WL_OK;
}
