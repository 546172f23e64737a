/* Per-channel scale and shift (a BatchNormalization that could not be folded). */
#include "wl_kernels.h"

int wl_channel_affine_f32(const wl_channel_affine_params_t *p, const float *x, const float *scale,
                          const float *shift, float *y)
{
    if (p == 0 || x == 0 || scale == 0 || shift == 0 || y == 0)
        return WL_ERR_ARG;
    for (int32_t c = 0; c < p->channels; c++) {
        const float s = scale[c], t = shift[c];
        for (int32_t i = c * p->inner; i < (c + 1) * p->inner; i++)
            y[i] = wl_clamp(x[i] * s + t, p->act_min, p->act_max);
    }
    return WL_OK;
}
