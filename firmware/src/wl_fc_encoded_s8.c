/* int8 fully connected layer with compressed weights (codebook or Bloomier, an int8 codebook in
 * the layer's weight scale), decoded as the kernel walks them.
 *
 * The positions follow the float kernel's walk (row blocks of four outputs interleaved, then the
 * remaining rows), so that the table of a compressed float layer serves its int8 version as it
 * is. A Bloomier table with t <= 8 is read by the float kernel's streaming path (wl_fc_stream.h:
 * one hash per group of four positions, straight into the four accumulators); other encodings
 * decode a chunk of positions at a time into a small stack buffer. The input's zero point is
 * folded into the bias at compile time, as for wl_fc_s8. */
#include "wl_kernels.h"
#include "wl_weights.h"

#define WL_FC_X int8_t
#define WL_FC_ACC int32_t
#define WL_FC_CB int8_t
#include "wl_fc_stream.h"

#define WL_FC_S8_CHUNK 128 /* positions decoded at a time: a multiple of WL_ROW_BLOCK */

int wl_fc_encoded_s8(const wl_fc_s8_params_t *p, const int8_t *x, const struct wl_encoded_weights *e,
                     const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || e == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0 || p->in_features < 1 ||
        p->out_features < 1 || (uint32_t)p->in_features * (uint32_t)p->out_features != e->positions)
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out_off = p->output_offset, out_lo = p->act_min, out_hi = p->act_max;
    const int32_t K = p->in_features, N = p->out_features, rows = p->rows;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const int stream = e->kind == WL_ENC_BLOOMIER && e->bits <= 8u;
    int8_t buf[WL_FC_S8_CHUNK] __attribute__((aligned(4)));
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * K;
        int8_t *yr = y + r * N;
        for (int32_t n = 0; n < full; n += WL_ROW_BLOCK) {
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            const uint32_t first = (uint32_t)(n * K);
            if (stream) {
                int32_t acc[4] = {0, 0, 0, 0};
                wl_fc_block_bloomier(e, first >> 2, xr, (uint32_t)K, acc);
                a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
            }
            for (int32_t k0 = 0; !stream && k0 < K; k0 += WL_FC_S8_CHUNK / WL_ROW_BLOCK) {
                const int32_t kn = K - k0 < WL_FC_S8_CHUNK / WL_ROW_BLOCK ? K - k0 : WL_FC_S8_CHUNK / WL_ROW_BLOCK;
                const int status =
                    wl_weights_decode_s8(e, first + (uint32_t)(k0 * WL_ROW_BLOCK), (uint32_t)(kn * WL_ROW_BLOCK), buf);
                if (status != WL_OK)
                    return status;
                const int8_t *w = buf;
                for (int32_t k = 0; k < kn; k++, w += WL_ROW_BLOCK) {
                    const int32_t xv = xr[k0 + k];
                    a0 += w[0] * xv;
                    a1 += w[1] * xv;
                    a2 += w[2] * xv;
                    a3 += w[3] * xv;
                }
            }
            yr[n] = wl_requantize_s8(a0, bias[n], multiplier[n], shift[n], out_off, out_lo, out_hi);
            yr[n + 1] = wl_requantize_s8(a1, bias[n + 1], multiplier[n + 1], shift[n + 1], out_off, out_lo, out_hi);
            yr[n + 2] = wl_requantize_s8(a2, bias[n + 2], multiplier[n + 2], shift[n + 2], out_off, out_lo, out_hi);
            yr[n + 3] = wl_requantize_s8(a3, bias[n + 3], multiplier[n + 3], shift[n + 3], out_off, out_lo, out_hi);
        }
        for (int32_t n = full; n < N; n++) {
            int32_t a = 0;
            const uint32_t first = (uint32_t)(n * K);
            for (int32_t k0 = 0; k0 < K; k0 += WL_FC_S8_CHUNK) {
                const int32_t kn = K - k0 < WL_FC_S8_CHUNK ? K - k0 : WL_FC_S8_CHUNK;
                const int status = wl_weights_decode_s8(e, first + (uint32_t)k0, (uint32_t)kn, buf);
                if (status != WL_OK)
                    return status;
                for (int32_t k = 0; k < kn; k++)
                    a += buf[k] * (int32_t)xr[k0 + k];
            }
            yr[n] = wl_requantize_s8(a, bias[n], multiplier[n], shift[n], out_off, out_lo, out_hi);
        }
    }
    return WL_OK;
}
