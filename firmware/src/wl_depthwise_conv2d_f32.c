/* Depthwise 2-D convolution (group == channels), float32. */
#include "wl_kernels.h"

int wl_depthwise_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w, OH = p->out_h, OW = p->out_w;
    const int32_t KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const float lo = p->act_min, hi = p->act_max;
    for (int32_t c = 0; c < p->in_c; c++) {
        const float *xc = x + c * H * W;
        const float *wc = w + c * KH * KW;
        const float b = bias ? bias[c] : 0.0f;
        float *yc = y + c * OH * OW;
        for (int32_t oy = 0; oy < OH; oy++) {
            const int32_t by = oy * p->stride_h - p->pad_top;
            int32_t ky0, ky1;
            wl_valid_taps(by, KH, DH, H, &ky0, &ky1);
            for (int32_t ox = 0; ox < OW; ox++) {
                const int32_t bx = ox * p->stride_w - p->pad_left;
                int32_t kx0, kx1;
                wl_valid_taps(bx, KW, DW, W, &kx0, &kx1);
                float a = b;
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    const float *xr = xc + (by + ky * DH) * W + bx;
                    const float *wr = wc + ky * KW;
                    for (int32_t kx = kx0; kx < kx1; kx++)
                        a += wr[kx] * xr[kx * DW];
                }
                yc[oy * OW + ox] = wl_clamp(a, lo, hi);
            }
        }
    }
    return WL_OK;
}
