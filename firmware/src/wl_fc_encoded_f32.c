/* Fully connected layer with compressed weights (codebook or Bloomier),
 * decoded as the kernel walks them; the dense weights never exist in RAM.
 *
 * Positions follow the dense kernel's layout (row blocks of four outputs
 * interleaved, then the remaining rows). A group of four positions of a row
 * block is the four outputs' weights for one input, so an 8-bit Bloomier
 * table decodes a whole group with one hash and `hashes` word reads, and only
 * the non-zero weights are multiplied. Other encodings decode a chunk of
 * positions into a small buffer on the stack first. */
#include "wl_kernels.h"
#include "wl_weights.h"
#include "wl_bloomier_hash.h"

#define WL_FC_CHUNK 64 /* positions decoded at a time: a multiple of WL_ROW_BLOCK */

static inline void wl_fc_block_bloomier8(const wl_encoded_weights_t *e, uint32_t g0, const float *x, int32_t K,
                                         float acc[4])
{
    const uint32_t K1 = e->clusters;
    const float *cb = e->codebook - 1; /* codebook[v - 1] for v in 1..K */
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t k = 0; k < K; k++) {
        const uint32_t w = wl_bloomier_group8(e, g0 + (uint32_t)k);
        const float xv = x[k];
        uint32_t v = w & 0xFFu;
        if (v - 1u < K1) a0 += cb[v] * xv;
        v = (w >> 8) & 0xFFu;
        if (v - 1u < K1) a1 += cb[v] * xv;
        v = (w >> 16) & 0xFFu;
        if (v - 1u < K1) a2 += cb[v] * xv;
        v = w >> 24;
        if (v - 1u < K1) a3 += cb[v] * xv;
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

int wl_fc_encoded_f32(const wl_fc_params_t *p, const float *x, const wl_encoded_weights_t *e, const float *bias,
                      float *y)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || p->in_features < 1 || p->out_features < 1 || p->rows < 1 ||
        (uint32_t)p->in_features * (uint32_t)p->out_features != e->positions)
        return WL_ERR_ARG;
    const int32_t K = p->in_features, N = p->out_features;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    const int fast = e->kind == WL_ENC_BLOOMIER && e->bits == 8u;
    float buf[WL_FC_CHUNK];
    for (int32_t r = 0; r < p->rows; r++) {
        const float *xr = x + r * K;
        float *yr = y + r * N;
        for (int32_t n = 0; n < full; n += WL_ROW_BLOCK) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t first = (uint32_t)(n * K);
            if (fast) {
                wl_fc_block_bloomier8(e, first >> 2, xr, K, acc);
            } else {
                for (int32_t k0 = 0; k0 < K; k0 += WL_FC_CHUNK / WL_ROW_BLOCK) {
                    const int32_t kn = K - k0 < WL_FC_CHUNK / WL_ROW_BLOCK ? K - k0 : WL_FC_CHUNK / WL_ROW_BLOCK;
                    wl_weights_decode_f32(e, first + (uint32_t)(k0 * WL_ROW_BLOCK), (uint32_t)(kn * WL_ROW_BLOCK), buf);
                    for (int32_t k = 0; k < kn; k++) {
                        const float xv = xr[k0 + k];
                        acc[0] += buf[4 * k] * xv;
                        acc[1] += buf[4 * k + 1] * xv;
                        acc[2] += buf[4 * k + 2] * xv;
                        acc[3] += buf[4 * k + 3] * xv;
                    }
                }
            }
            for (int32_t i = 0; i < WL_ROW_BLOCK; i++)
                yr[n + i] = wl_clamp(acc[i] + (bias ? bias[n + i] : 0.0f), lo, hi);
        }
        for (int32_t n = full; n < N; n++) {
            float a = 0.0f;
            const uint32_t first = (uint32_t)(n * K);
            for (int32_t k0 = 0; k0 < K; k0 += WL_FC_CHUNK) {
                const int32_t kn = K - k0 < WL_FC_CHUNK ? K - k0 : WL_FC_CHUNK;
                wl_weights_decode_f32(e, first + (uint32_t)k0, (uint32_t)kn, buf);
                for (int32_t k = 0; k < kn; k++)
                    a += buf[k] * xr[k0 + k];
            }
            yr[n] = wl_clamp(a + (bias ? bias[n] : 0.0f), lo, hi);
        }
    }
    return WL_OK;
}
