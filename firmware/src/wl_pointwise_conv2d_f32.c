/* Pointwise (1x1, stride 1, unpadded) convolution, float32: a matrix product
 * of the weights [out_c][in_c] with the input [in_c][pixels]. Each step does
 * four output channels at two pixels. */
#include "wl_kernels.h"

int wl_pointwise_conv2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *bias, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->group != 1 || p->k_h != 1 || p->k_w != 1)
        return WL_ERR_ARG;
    const int32_t C = p->in_c, M = p->out_c, P = p->out_h * p->out_w;
    const int32_t full = M - M % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    const float *wb = w;
    for (int32_t m = 0; m < full; m += WL_ROW_BLOCK) {
        const float b0 = bias ? bias[m] : 0.0f, b1 = bias ? bias[m + 1] : 0.0f;
        const float b2 = bias ? bias[m + 2] : 0.0f, b3 = bias ? bias[m + 3] : 0.0f;
        float *y0 = y + m * P;
        int32_t i = 0;
        for (; i + 2 <= P; i += 2) {
            float a0 = b0, a1 = b1, a2 = b2, a3 = b3;
            float c0 = b0, c1 = b1, c2 = b2, c3 = b3;
            const float *xp = x + i;
            const float *wp = wb;
            for (int32_t c = 0; c < C; c++) {
                const float x0 = xp[0], x1 = xp[1];
                xp += P;
                a0 += wp[0] * x0; a1 += wp[1] * x0; a2 += wp[2] * x0; a3 += wp[3] * x0;
                c0 += wp[0] * x1; c1 += wp[1] * x1; c2 += wp[2] * x1; c3 += wp[3] * x1;
                wp += WL_ROW_BLOCK;
            }
            y0[i] = wl_clamp(a0, lo, hi); y0[i + 1] = wl_clamp(c0, lo, hi);
            y0[P + i] = wl_clamp(a1, lo, hi); y0[P + i + 1] = wl_clamp(c1, lo, hi);
            y0[2 * P + i] = wl_clamp(a2, lo, hi); y0[2 * P + i + 1] = wl_clamp(c2, lo, hi);
            y0[3 * P + i] = wl_clamp(a3, lo, hi); y0[3 * P + i + 1] = wl_clamp(c3, lo, hi);
        }
        for (; i < P; i++) {
            float a0 = b0, a1 = b1, a2 = b2, a3 = b3;
            const float *xp = x + i;
            const float *wp = wb;
            for (int32_t c = 0; c < C; c++) {
                const float x0 = *xp;
                xp += P;
                a0 += wp[0] * x0; a1 += wp[1] * x0; a2 += wp[2] * x0; a3 += wp[3] * x0;
                wp += WL_ROW_BLOCK;
            }
            y0[i] = wl_clamp(a0, lo, hi);
            y0[P + i] = wl_clamp(a1, lo, hi);
            y0[2 * P + i] = wl_clamp(a2, lo, hi);
            y0[3 * P + i] = wl_clamp(a3, lo, hi);
        }
        wb += WL_ROW_BLOCK * C;
    }
    for (int32_t m = full; m < M; m++) {
        const float b = bias ? bias[m] : 0.0f;
        for (int32_t i = 0; i < P; i++) {
            float a = b;
            for (int32_t c = 0; c < C; c++)
                a += wb[c] * x[c * P + i];
            y[m * P + i] = wl_clamp(a, lo, hi);
        }
        wb += C;
    }
    return WL_OK;
}
