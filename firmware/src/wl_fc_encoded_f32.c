/* Fully connected layer with compressed weights (codebook, Bloomier or sparse stream),
 * decoded as the kernel walks them; the dense weights never exist in RAM.
 *
 * Positions follow the dense kernel's layout (row blocks of four outputs
 * interleaved, then the remaining rows). A group of four positions of a row
 * block holds the four outputs' weights for one input, so a Bloomier table
 * decodes a whole group with one hash and `hashes` word reads, straight into
 * the four accumulators, multiplying only non-zero weights (wl_fc_stream.h).
 * Codebook encodings, and the rows the loops do not cover, read one position
 * at a time.
 * A row with an Inf or NaN input takes the decoding path too, so that a zero
 * weight times Inf gives NaN there as it does in the dense kernel and in
 * onnxruntime. */
#include "wl_kernels.h"
#include "wl_weights.h"
#include "wl_bloomier_hash.h"

/* No Inf or NaN among x[0 .. n-1]: x - x is 0 for every finite x, NaN otherwise,
 * and NaN propagates through the sum (no libm call, no type punning). */
static int wl_all_finite(const float *x, int32_t n)
{
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++)
        s += x[i] - x[i];
    return s == 0.0f;
}

#define WL_FC_X float
#define WL_FC_ACC float
#define WL_FC_CB float
#include "wl_fc_stream.h"

int wl_fc_encoded_f32(const wl_fc_params_t *p, const float *x, const wl_encoded_weights_t *e, const float *bias,
                      float *y)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || p->in_features < 1 || p->out_features < 1 || p->rows < 1 ||
        (uint32_t)p->in_features * (uint32_t)p->out_features != e->positions ||
        (e->kind != WL_ENC_CODEBOOK && e->kind != WL_ENC_BLOOMIER && e->kind != WL_ENC_SPARSE))
        return WL_ERR_ARG;
    const int32_t K = p->in_features, N = p->out_features;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    const uint32_t which = wl_fc_stream_case(e);
    for (int32_t r = 0; r < p->rows; r++) {
        const float *xr = x + r * K;
        float *yr = y + r * N;
        /* a row with an Inf or NaN input reads every weight, zeros included (0 x Inf is NaN) */
        const int stream = ((WL_FC_STREAMING && which != 0) || (WL_FC_CODEBOOK && e->kind == WL_ENC_CODEBOOK) ||
                            (WL_SPARSE && e->kind == WL_ENC_SPARSE)) &&
                           wl_all_finite(xr, K);
        /* blocks of four outputs, then the rows after them one at a time; one store for both */
        for (int32_t n = 0, count; n < N; n += count) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t first = (uint32_t)(n * K);
            if (n < full) {
                wl_fc_block(e, which, stream, first, xr, K, acc);
                count = WL_ROW_BLOCK;
            } else {
                acc[0] = wl_fc_row(e, which, stream, first, xr, K);
                count = 1;
            }
            for (int32_t i = 0; i < count; i++)
                yr[n + i] = wl_clamp(acc[i] + (bias ? bias[n + i] : 0.0f), lo, hi);
        }
    }
    return WL_OK;
}
