/* Fully connected layer, float32. Four outputs share each input load; the
 * weights of those four are interleaved so one pointer walks them. */
#include "wl_kernels.h"

int wl_fc_f32(const wl_fc_params_t *p, const float *x, const float *w, const float *bias, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->in_features < 1 || p->out_features < 1 || p->rows < 1)
        return WL_ERR_ARG;
    const int32_t K = p->in_features, N = p->out_features;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    for (int32_t r = 0; r < p->rows; r++) {
        const float *xr = x + r * K;
        float *yr = y + r * N;
        const float *wp = w;
        for (int32_t n = 0; n < full; n += WL_ROW_BLOCK) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            const float *xp = xr;
            int32_t k = 0;
            for (; k + 4 <= K; k += 4) {
                const float x0 = xp[0], x1 = xp[1], x2 = xp[2], x3 = xp[3];
                xp += 4;
                a0 += wp[0] * x0; a1 += wp[1] * x0; a2 += wp[2] * x0; a3 += wp[3] * x0;
                a0 += wp[4] * x1; a1 += wp[5] * x1; a2 += wp[6] * x1; a3 += wp[7] * x1;
                a0 += wp[8] * x2; a1 += wp[9] * x2; a2 += wp[10] * x2; a3 += wp[11] * x2;
                a0 += wp[12] * x3; a1 += wp[13] * x3; a2 += wp[14] * x3; a3 += wp[15] * x3;
                wp += 16;
            }
            for (; k < K; k++) {
                const float x0 = *xp++;
                a0 += wp[0] * x0; a1 += wp[1] * x0; a2 += wp[2] * x0; a3 += wp[3] * x0;
                wp += 4;
            }
            if (bias != 0) {
                a0 += bias[n]; a1 += bias[n + 1]; a2 += bias[n + 2]; a3 += bias[n + 3];
            }
            yr[n] = wl_clamp(a0, lo, hi);
            yr[n + 1] = wl_clamp(a1, lo, hi);
            yr[n + 2] = wl_clamp(a2, lo, hi);
            yr[n + 3] = wl_clamp(a3, lo, hi);
        }
        for (int32_t n = full; n < N; n++) {
            float a = 0.0f;
            for (int32_t k = 0; k < K; k++)
                a += wp[k] * xr[k];
            wp += K;
            if (bias != 0)
                a += bias[n];
            yr[n] = wl_clamp(a, lo, hi);
        }
    }
    return WL_OK;
}
