/* int8 fully connected layer with compressed weights (codebook, Bloomier or sparse stream, an int8 codebook in
 * the layer's weight scale), decoded as the kernel walks them.
 *
 * The positions follow the float kernel's walk (row blocks of four outputs interleaved, then the
 * remaining rows), so that the table of a compressed float layer serves its int8 version as it
 * is. A Bloomier table is read by the float kernel's streaming path (wl_fc_stream.h: one hash per
 * group of four positions, straight into the four accumulators); codebook encodings, and the rows
 * the loops do not cover, read one position at a time. The input's zero point is
 * folded into the bias at compile time, as for wl_fc_s8. */
#include "wl_kernels.h"
#include "wl_weights.h"

#define WL_FC_X int8_t
#define WL_FC_ACC int32_t
#define WL_FC_CB int8_t
#include "wl_fc_stream.h"

int wl_fc_encoded_s8(const wl_fc_s8_params_t *p, const int8_t *x, const struct wl_encoded_weights *e,
                     const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int8_t *y)
{
    if (p == 0 || x == 0 || e == 0 || bias == 0 || multiplier == 0 || shift == 0 || y == 0 || p->in_features < 1 ||
        p->out_features < 1 || (uint32_t)p->in_features * (uint32_t)p->out_features != e->positions ||
        (e->kind != WL_ENC_CODEBOOK && e->kind != WL_ENC_BLOOMIER && e->kind != WL_ENC_SPARSE))
        return WL_ERR_ARG;
    /* read once: a store through int8_t * may alias the params */
    const int32_t out_off = p->output_offset, out_lo = p->act_min, out_hi = p->act_max;
    const int32_t K = p->in_features, N = p->out_features, rows = p->rows;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const uint32_t which = wl_fc_stream_case(e);
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *xr = x + r * K;
        int8_t *yr = y + r * N;
        /* blocks of four outputs, then the rows after them one at a time; one requantization for both */
        for (int32_t n = 0, count; n < N; n += count) {
            int32_t acc[4] = {0, 0, 0, 0};
            const uint32_t first = (uint32_t)(n * K);
            if (n < full) {
                wl_fc_block(e, which, 1, first, xr, K, acc);
                count = WL_ROW_BLOCK;
            } else {
                acc[0] = wl_fc_row(e, which, 1, first, xr, K);
                count = 1;
            }
            for (int32_t i = 0; i < count; i++)
                yr[n + i] = wl_requantize_s8(acc[i], bias[n + i], multiplier[n + i], shift[n + i], out_off, out_lo, out_hi);
        }
    }
    return WL_OK;
}
