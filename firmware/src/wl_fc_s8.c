/* int8 fully connected layer with per-output-channel requantization. */
#include "wl_kernels.h"

int wl_fc_s8(const wl_fc_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
             const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || w == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0)
        return WL_ERR_ARG;
    const int32_t k = p->in_features, n_out = p->out_features;
    for (int32_t r = 0; r < p->rows; r++) {
        const int8_t *xr = x + r * k;
        int8_t *yr = y + r * n_out;
        for (int32_t n = 0; n < n_out; n++) {
            const int8_t *wn = w + n * k;
            int32_t acc = bias[n];
            for (int32_t i = 0; i < k; i++)
                acc += (int32_t)xr[i] * wn[i];
            int32_t q = wl_requantize(acc, multiplier[n], shift[n]) + p->output_offset;
            if (q < p->act_min)
                q = p->act_min;
            if (q > p->act_max)
                q = p->act_max;
            yr[n] = (int8_t)q;
        }
    }
    return WL_OK;
}
