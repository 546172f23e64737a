/* int8 convolutions with compressed weights (an int8 codebook in the layer's weight scale),
 * positions in the float kernels' walk order so that one table serves a float or an int8 model.
 *
 * General, grouped and pointwise: per group, each block of output channels (`block` of them, a
 * multiple of WL_ROW_BLOCK, or one for the channels left over, as the walk groups them) is decoded
 * once per call into the start of the scratch, in the layout wl_conv2d_s8 takes (channel pairs,
 * taps padded to kpad, each 4 as (w0, w2, w1, w3)), and wl_conv2d_s8 runs on that block with the
 * rest of the scratch: its im2col is done once per block, so the larger the block the closer to
 * the dense kernel. Each row block's positions are first decoded into that rest, then placed.
 * Depthwise: one channel's taps at a time, then wl_depthwise_conv2d_s8 on that channel. */
#include <string.h>

#include "wl_kernels.h"
#include "wl_weights.h"

int wl_conv2d_encoded_s8(const wl_conv_enc_s8_params_t *pe, const int8_t *x, const struct wl_encoded_weights *e,
                         const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *scratch,
                         int8_t *y)
{
    const wl_conv_s8_params_t *p = pe ? &pe->conv : 0;
    if (p == 0 || x == 0 || e == 0 || bias == 0 || multiplier == 0 || shift == 0 || scratch == 0 || y == 0 ||
        p->group < 1 || p->in_c % p->group != 0 || p->out_c % p->group != 0 || pe->block < WL_ROW_BLOCK ||
        pe->block % WL_ROW_BLOCK != 0)
        return WL_ERR_ARG;
    static const uint8_t at[4] = {0, 2, 1, 3}; /* where tap k of a group of 4 is stored */
    const int32_t cin_g = p->in_c / p->group, cout_g = p->out_c / p->group;
    const int32_t taps = cin_g * p->k_h * p->k_w, kpad = WL_CONV_ENC_S8_KPAD(p), npix = p->out_h * p->out_w;
    const int32_t full = cout_g - cout_g % WL_ROW_BLOCK, block = pe->block;
    int8_t *wblock = scratch, *rest = scratch + block * kpad; /* rest: wl_conv2d_s8's scratch */
    wl_conv_s8_params_t sub = *p;
    sub.in_c = cin_g;
    sub.group = 1;
    uint32_t pos = 0;
    for (int32_t g = 0; g < p->group; g++) {
        const int8_t *xg = x + g * cin_g * p->in_h * p->in_w;
        for (int32_t co = 0; co < cout_g;) {
            const int32_t nb = co < full ? (full - co < block ? full - co : block) : 1;
            const int32_t oc = g * cout_g + co;
            memset(wblock, 0, (size_t)(nb == 1 ? 2 : nb) * (size_t)kpad); /* padding taps, an odd channel's pair */
            for (int32_t c0 = 0; c0 < nb; c0 += WL_ROW_BLOCK) { /* one row block (or the one channel) at a time */
                const int32_t rb = nb == 1 ? 1 : WL_ROW_BLOCK;
                const int status = wl_weights_decode_s8(e, pos, (uint32_t)(rb * taps), rest); /* [tap][rb] */
                if (status != WL_OK)
                    return status;
                for (int32_t c = 0; c < rb; c++) {
                    const int32_t ch = c0 + c;
                    int8_t *dst = wblock + (ch >> 1) * 2 * kpad + (ch & 1) * 4;
                    for (int32_t k = 0; k < taps; k++)
                        dst[(k >> 2) * 8 + at[k & 3]] = rest[k * rb + c];
                }
                pos += (uint32_t)(rb * taps);
            }
            sub.out_c = nb;
            const int status = wl_conv2d_s8(&sub, xg, wblock, bias + oc, multiplier + oc, shift + oc, rest,
                                            y + oc * npix);
            if (status != WL_OK)
                return status;
            co += nb;
        }
    }
    return WL_OK;
}

int wl_depthwise_conv2d_encoded_s8(const wl_conv_s8_params_t *p, const int8_t *x, const struct wl_encoded_weights *e,
                                   const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                                   int8_t *scratch, int8_t *y)
{
    if (p == 0 || x == 0 || e == 0 || bias == 0 || multiplier == 0 || shift == 0 || scratch == 0 || y == 0 ||
        p->group != p->in_c || p->in_c != p->out_c)
        return WL_ERR_ARG;
    const int32_t taps = p->k_h * p->k_w;
    int8_t *rest = scratch + ((taps + 3) & ~3); /* wl_depthwise_conv2d_s8's scratch, word aligned */
    wl_conv_s8_params_t sub = *p;
    sub.in_c = sub.out_c = sub.group = 1;
    for (int32_t c = 0; c < p->in_c; c++) {
        int status = wl_weights_decode_s8(e, (uint32_t)(c * taps), (uint32_t)taps, scratch);
        if (status != WL_OK)
            return status;
        status = wl_depthwise_conv2d_s8(&sub, x + c * p->in_h * p->in_w, scratch, bias + c, multiplier + c, shift + c,
                                        rest, y + c * p->out_h * p->out_w);
        if (status != WL_OK)
            return status;
    }
    return WL_OK;
}
