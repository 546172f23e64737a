/* ConvTranspose (1-D as 2-D with height 1), float32, any stride, dilation, group. */
#include "wl_kernels.h"

/* The input position that reaches output position out through kernel tap `tap`
   (out = in * stride - pad + tap * dil), or -1 when none does. */
static inline int32_t source_index(int32_t out, int32_t pad, int32_t tap, int32_t dil, int32_t stride, int32_t n)
{
    const int32_t t = out + pad - tap * dil;
    if (t < 0 || t % stride)
        return -1;
    const int32_t in = t / stride;
    return in < n ? in : -1;
}

int wl_conv_transpose2d_f32(const wl_conv_params_t *p, const float *x, const float *w, const float *b, float *y)
{
    if (p == 0 || x == 0 || w == 0 || y == 0 || p->group < 1 || p->in_c % p->group || p->out_c % p->group ||
        p->stride_h < 1 || p->stride_w < 1)
        return WL_ERR_ARG;
    const int32_t icg = p->in_c / p->group, ocg = p->out_c / p->group;
    const int32_t taps = p->k_h * p->k_w;
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const int32_t g = oc / ocg, o = oc % ocg;
        for (int32_t oh = 0; oh < p->out_h; oh++) {
            for (int32_t ow = 0; ow < p->out_w; ow++) {
                float acc = b ? b[oc] : 0.0f;
                for (int32_t kh = 0; kh < p->k_h; kh++) {
                    const int32_t ih = source_index(oh, p->pad_top, kh, p->dil_h, p->stride_h, p->in_h);
                    if (ih < 0)
                        continue;
                    for (int32_t kw = 0; kw < p->k_w; kw++) {
                        const int32_t iw = source_index(ow, p->pad_left, kw, p->dil_w, p->stride_w, p->in_w);
                        if (iw < 0)
                            continue;
                        for (int32_t i = 0; i < icg; i++) {
                            const int32_t ic = g * icg + i;
                            acc += x[(ic * p->in_h + ih) * p->in_w + iw] * w[(ic * ocg + o) * taps + kh * p->k_w + kw];
                        }
                    }
                }
                y[(oc * p->out_h + oh) * p->out_w + ow] = wl_clamp(acc, p->act_min, p->act_max);
            }
        }
    }
    return WL_OK;
}
