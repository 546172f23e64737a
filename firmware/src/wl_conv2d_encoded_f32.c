/* Convolutions with compressed weights: each block of output channels has its
 * weights decoded once per call into a scratch buffer, then the dense kernel
 * runs on that block. Scratch: 4 * (in_c / group) * k_h * k_w floats for
 * conv2d and pointwise (in_c * 4), k_h * k_w for depthwise. */
#include "wl_kernels.h"
#include "wl_weights.h"

int wl_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const wl_encoded_weights_t *e,
                          const float *bias, float *y, float *scratch)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || scratch == 0 || p->group < 1 || p->in_c % p->group != 0 ||
        p->out_c % p->group != 0)
        return WL_ERR_ARG;
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group;
    const int32_t taps = cin_g * p->k_h * p->k_w;
    const int32_t full = cout_g - cout_g % WL_ROW_BLOCK;
    wl_conv_params_t sub = *p;
    sub.in_c = cin_g;
    sub.group = 1;
    uint32_t pos = 0;
    for (int32_t g = 0; g < p->group; g++) {
        const float *xg = x + g * cin_g * p->in_h * p->in_w;
        for (int32_t co = 0; co < cout_g;) {
            const int32_t nb = co < full ? WL_ROW_BLOCK : 1;
            const int32_t oc = g * cout_g + co;
            int status = wl_weights_decode_f32(e, pos, (uint32_t)(nb * taps), scratch);
            if (status != WL_OK)
                return status;
            sub.out_c = nb;
            status = wl_conv2d_f32(&sub, xg, scratch, bias ? bias + oc : 0, y + oc * p->out_h * p->out_w);
            if (status != WL_OK)
                return status;
            pos += (uint32_t)(nb * taps);
            co += nb;
        }
    }
    return WL_OK;
}

int wl_depthwise_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const wl_encoded_weights_t *e,
                                    const float *bias, float *y, float *scratch)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || scratch == 0 || p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    const int32_t taps = p->k_h * p->k_w;
    wl_conv_params_t sub = *p;
    sub.in_c = sub.out_c = sub.group = 1;
    for (int32_t c = 0; c < p->in_c; c++) {
        int status = wl_weights_decode_f32(e, (uint32_t)(c * taps), (uint32_t)taps, scratch);
        if (status != WL_OK)
            return status;
        status = wl_depthwise_conv2d_f32(&sub, x + c * p->in_h * p->in_w, scratch, bias ? bias + c : 0,
                                         y + c * p->out_h * p->out_w);
        if (status != WL_OK)
            return status;
    }
    return WL_OK;
}

int wl_pointwise_conv2d_encoded_f32(const wl_conv_params_t *p, const float *x, const wl_encoded_weights_t *e,
                                    const float *bias, float *y, float *scratch)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || scratch == 0 || p->group != 1)
        return WL_ERR_ARG;
    const int32_t full = p->out_c - p->out_c % WL_ROW_BLOCK;
    const int32_t P = p->out_h * p->out_w;
    wl_conv_params_t sub = *p;
    for (int32_t m = 0; m < p->out_c;) {
        const int32_t nb = m < full ? WL_ROW_BLOCK : 1;
        int status = wl_weights_decode_f32(e, (uint32_t)(m * p->in_c), (uint32_t)(nb * p->in_c), scratch);
        if (status != WL_OK)
            return status;
        sub.out_c = nb;
        status = wl_pointwise_conv2d_f32(&sub, x, scratch, bias ? bias + m : 0, y + m * P);
        if (status != WL_OK)
            return status;
        m += nb;
    }
    return WL_OK;
}
