/* Fully connected layer with compressed weights (codebook or Bloomier),
 * decoded as the kernel walks them; the dense weights never exist in RAM.
 *
 * Positions follow the dense kernel's layout (row blocks of four outputs
 * interleaved, then the remaining rows). A group of four positions of a row
 * block holds the four outputs' weights for one input, so a Bloomier table
 * with t <= 8 decodes a whole group with one hash and `hashes` word reads,
 * straight into the four accumulators, multiplying only non-zero weights.
 * Other encodings decode a chunk of positions into a small stack buffer.
 * A row with an Inf or NaN input takes the decoding path too, so that a zero
 * weight times Inf gives NaN there as it does in the dense kernel and in
 * onnxruntime. */
#include "wl_kernels.h"
#include "wl_weights.h"
#include "wl_bloomier_hash.h"

#define WL_FC_CHUNK 64 /* positions decoded at a time: a multiple of WL_ROW_BLOCK */

/* acc[i] += w[i] * x for the lanes whose word v is in 1..K (w = cb[v - 1]). */
#define WL_LANE(acc, v)                        \
    do {                                       \
        const uint32_t i_ = (v) - 1u;          \
        if (__builtin_expect(i_ < K1, 0))      \
            acc += cb[i_] * xv;                \
    } while (0)

/* No Inf or NaN among x[0 .. n-1]: x - x is 0 for every finite x, NaN otherwise,
 * and NaN propagates through the sum (no libm call, no type punning). */
static int wl_all_finite(const float *x, int32_t n)
{
    float s = 0.0f;
    for (int32_t i = 0; i < n; i++)
        s += x[i] - x[i];
    return s == 0.0f;
}

/* Groups g0 .. g0+n-1 of one block: t = 8, `hashes` a constant after inlining. */
static inline void wl_fc_groups8(const uint32_t *cells, uint32_t words, uint32_t salt, uint32_t g0, uint32_t n,
                                 const float *x, const float *cb, uint32_t K1, uint32_t hashes, float acc[4])
{
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t w = wl_bl_group8(cells, words, salt, g0 + i, hashes);
        const float xv = x[i];
        WL_LANE(a0, w & 0xFFu);
        WL_LANE(a1, (w >> 8) & 0xFFu);
        WL_LANE(a2, (w >> 16) & 0xFFu);
        WL_LANE(a3, w >> 24);
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* The same for any t < 8. */
static void wl_fc_groups32(const uint32_t *cells, uint32_t t, uint32_t base, uint32_t words, uint32_t salt, uint32_t g0,
                           uint32_t n, const float *x, const float *cb, uint32_t K1, uint32_t hashes, float acc[4])
{
    const uint32_t m = (1u << t) - 1u;
    float a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t w = wl_bl_group32(cells, t, base, words, salt, g0 + i, hashes);
        const float xv = x[i];
        WL_LANE(a0, w & m);
        WL_LANE(a1, (w >> t) & m);
        WL_LANE(a2, (w >> (2u * t)) & m);
        WL_LANE(a3, (w >> (3u * t)) & m);
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* One row block: groups g0 .. g0+K-1, split at block boundaries. */
static void wl_fc_block_bloomier(const wl_encoded_weights_t *e, uint32_t g0, const float *x, uint32_t K, float acc[4])
{
    const uint32_t *cells = e->cells;
    const float *cb = e->codebook;
    const uint32_t K1 = e->clusters, t = e->bits;
    uint32_t k = 0;
    while (k < K) {
        const uint32_t g = g0 + k;
        const uint32_t blk = g / e->block_groups;
        const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
        const uint32_t salt = wl_bl_salt(e->seed, words);
        const uint32_t left = (blk + 1u) * e->block_groups - g;
        const uint32_t n = K - k < left ? K - k : left;
        if (t == 8u) {
            switch (e->hashes) {
            case 4: wl_fc_groups8(cells + base, words, salt, g, n, x + k, cb, K1, 4u, acc); break;
            case 3: wl_fc_groups8(cells + base, words, salt, g, n, x + k, cb, K1, 3u, acc); break;
            default: wl_fc_groups8(cells + base, words, salt, g, n, x + k, cb, K1, e->hashes, acc); break;
            }
        } else {
            wl_fc_groups32(cells, t, base, words, salt, g, n, x + k, cb, K1, e->hashes, acc);
        }
        k += n;
    }
}

int wl_fc_encoded_f32(const wl_fc_params_t *p, const float *x, const wl_encoded_weights_t *e, const float *bias,
                      float *y)
{
    if (p == 0 || x == 0 || e == 0 || y == 0 || p->in_features < 1 || p->out_features < 1 || p->rows < 1 ||
        (uint32_t)p->in_features * (uint32_t)p->out_features != e->positions ||
        (e->kind != WL_ENC_CODEBOOK && e->kind != WL_ENC_BLOOMIER))
        return WL_ERR_ARG;
    const int32_t K = p->in_features, N = p->out_features;
    const int32_t full = N - N % WL_ROW_BLOCK;
    const float lo = p->act_min, hi = p->act_max;
    float buf[WL_FC_CHUNK];
    for (int32_t r = 0; r < p->rows; r++) {
        const float *xr = x + r * K;
        float *yr = y + r * N;
        const int stream = e->kind == WL_ENC_BLOOMIER && e->bits <= 8u && wl_all_finite(xr, K);
        for (int32_t n = 0; n < full; n += WL_ROW_BLOCK) {
            float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            const uint32_t first = (uint32_t)(n * K);
            if (stream) {
                wl_fc_block_bloomier(e, first >> 2, xr, (uint32_t)K, acc);
            } else {
                for (int32_t k0 = 0; k0 < K; k0 += WL_FC_CHUNK / WL_ROW_BLOCK) {
                    const int32_t kn = K - k0 < WL_FC_CHUNK / WL_ROW_BLOCK ? K - k0 : WL_FC_CHUNK / WL_ROW_BLOCK;
                    const int status =
                        wl_weights_decode_f32(e, first + (uint32_t)(k0 * WL_ROW_BLOCK), (uint32_t)(kn * WL_ROW_BLOCK), buf);
                    if (status != WL_OK)
                        return status;
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
                const int status = wl_weights_decode_f32(e, first + (uint32_t)k0, (uint32_t)kn, buf);
                if (status != WL_OK)
                    return status;
                for (int32_t k = 0; k < kn; k++)
                    a += buf[k] * xr[k0 + k];
            }
            yr[n] = wl_clamp(a + (bias ? bias[n] : 0.0f), lo, hi);
        }
    }
    return WL_OK;
}
