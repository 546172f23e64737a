/* General 2-D convolution (strides, padding, dilation, groups), float32.
 * Four output channels share each input load; their weights are interleaved.
 * The valid kernel window is found once per output pixel, so the inner loops
 * carry no bounds checks. */
#include "wl_kernels.h"

int wl_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->group < 1 || p->in_c % p->group != 0 || p->out_c % p->group != 0)
        return WL_ERR_ARG;
    const int32_t H = p->in_h, W = p->in_w, OH = p->out_h, OW = p->out_w;
    const int32_t KH = p->k_h, KW = p->k_w, DH = p->dil_h, DW = p->dil_w;
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group;
    const int32_t taps = cin_g * KH * KW;
    const int32_t full = cout_g - cout_g % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    const float *wg = w;
    for (int32_t g = 0; g < p->group; g++) {
        const float *xg = x + g * cin_g * H * W;
        for (int32_t co = 0; co < cout_g; co += (co < full ? WL_ROW_BLOCK : 1)) {
            const int32_t oc = g * cout_g + co;
            const int32_t nb = co < full ? WL_ROW_BLOCK : 1;
            float *yc = y + oc * OH * OW;
            for (int32_t oy = 0; oy < OH; oy++) {
                const int32_t by = oy * p->stride_h - p->pad_top;
                int32_t ky0, ky1;
                wl_valid_taps(by, KH, DH, H, &ky0, &ky1);
                for (int32_t ox = 0; ox < OW; ox++) {
                    const int32_t bx = ox * p->stride_w - p->pad_left;
                    int32_t kx0, kx1;
                    wl_valid_taps(bx, KW, DW, W, &kx0, &kx1);
                    float a0 = bias ? bias[oc] : 0.0f;
                    if (nb == WL_ROW_BLOCK) {
                        float a1 = bias ? bias[oc + 1] : 0.0f;
                        float a2 = bias ? bias[oc + 2] : 0.0f;
                        float a3 = bias ? bias[oc + 3] : 0.0f;
                        if (KW == 3 && DW == 1 && kx0 == 0 && kx1 == 3) {
                            /* The common 3-wide window, all columns inside: unrolled. */
                            const int32_t rows = ky1 - ky0;
                            const int32_t x_skip = H * W - rows * DH * W;
                            const int32_t w_skip = (KH - rows) * 3 * WL_ROW_BLOCK;
                            const float *xr = xg + (by + ky0 * DH) * W + bx;
                            const float *wk = wg + ky0 * 3 * WL_ROW_BLOCK;
                            for (int32_t ci = 0; ci < cin_g; ci++) {
                                for (int32_t r = 0; r < rows; r++) {
                                    const float x0 = xr[0], x1 = xr[1], x2 = xr[2];
                                    a0 += wk[0] * x0; a1 += wk[1] * x0; a2 += wk[2] * x0; a3 += wk[3] * x0;
                                    a0 += wk[4] * x1; a1 += wk[5] * x1; a2 += wk[6] * x1; a3 += wk[7] * x1;
                                    a0 += wk[8] * x2; a1 += wk[9] * x2; a2 += wk[10] * x2; a3 += wk[11] * x2;
                                    xr += DH * W;
                                    wk += 3 * WL_ROW_BLOCK;
                                }
                                xr += x_skip;
                                wk += w_skip;
                            }
                        } else {
                            for (int32_t ci = 0; ci < cin_g; ci++) {
                                const float *xc = xg + ci * H * W + bx;
                                const float *wc = wg + (ci * KH * KW) * WL_ROW_BLOCK;
                                for (int32_t ky = ky0; ky < ky1; ky++) {
                                    const float *xr = xc + (by + ky * DH) * W;
                                    const float *wr = wc + ky * KW * WL_ROW_BLOCK;
                                    for (int32_t kx = kx0; kx < kx1; kx++) {
                                        const float xv = xr[kx * DW];
                                        const float *wk = wr + kx * WL_ROW_BLOCK;
                                        a0 += wk[0] * xv; a1 += wk[1] * xv; a2 += wk[2] * xv; a3 += wk[3] * xv;
                                    }
                                }
                            }
                        }
                        const int32_t o = oy * OW + ox;
                        yc[o] = wl_clamp(a0, lo, hi);
                        yc[OH * OW + o] = wl_clamp(a1, lo, hi);
                        yc[2 * OH * OW + o] = wl_clamp(a2, lo, hi);
                        yc[3 * OH * OW + o] = wl_clamp(a3, lo, hi);
                    } else {
                        for (int32_t ci = 0; ci < cin_g; ci++) {
                            const float *xc = xg + ci * H * W + bx;
                            const float *wc = wg + ci * KH * KW;
                            for (int32_t ky = ky0; ky < ky1; ky++) {
                                const float *xr = xc + (by + ky * DH) * W;
                                const float *wr = wc + ky * KW;
                                for (int32_t kx = kx0; kx < kx1; kx++)
                                    a0 += wr[kx] * xr[kx * DW];
                            }
                        }
                        yc[oy * OW + ox] = wl_clamp(a0, lo, hi);
                    }
                }
            }
            wg += nb * taps;
        }
    }
    return WL_OK;
}
