/* The Bloomier streaming path of the fully connected kernels (t <= 8): the positions of a row
 * block come in groups of four (one input, four outputs), one hash and `hashes` word reads per
 * group decode all four words, and only the lanes holding a shared value (1..K) multiply.
 * Included by wl_fc_encoded_f32.c and wl_fc_encoded_s8.c, each defining first
 *   WL_FC_X    the input element type (float, int8_t),
 *   WL_FC_ACC  the accumulator type (float, int32_t),
 *   WL_FC_CB   the codebook element type (float, int8_t);
 * the functions are static, one copy per kernel. */
#include <stdint.h>

#include "wl_weights.h"
#include "wl_bloomier_hash.h"

/* acc[i] += w[i] * x for the lanes whose word v is in 1..K (w = cb[v - 1]). */
#define WL_LANE(acc, v)                        \
    do {                                       \
        const uint32_t i_ = (v) - 1u;          \
        if (__builtin_expect(i_ < K1, 0))      \
            acc += cb[i_] * xv;                \
    } while (0)

/* Groups g0 .. g0+n-1 of one block: t = 8, `hashes` a constant after inlining. */
static inline void wl_fc_groups8(const uint32_t *cells, uint32_t words, uint32_t salt, uint32_t g0, uint32_t n,
                                 const WL_FC_X *x, const WL_FC_CB *cb, uint32_t K1, uint32_t hashes, WL_FC_ACC acc[4])
{
    WL_FC_ACC a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t w = wl_bl_group8(cells, words, salt, g0 + i, hashes);
        const WL_FC_ACC xv = x[i];
        WL_LANE(a0, w & 0xFFu);
        WL_LANE(a1, (w >> 8) & 0xFFu);
        WL_LANE(a2, (w >> 16) & 0xFFu);
        WL_LANE(a3, w >> 24);
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* The same for any t < 8. */
static void wl_fc_groups32(const uint32_t *cells, uint32_t t, uint32_t base, uint32_t words, uint32_t salt, uint32_t g0,
                           uint32_t n, const WL_FC_X *x, const WL_FC_CB *cb, uint32_t K1, uint32_t hashes, WL_FC_ACC acc[4])
{
    const uint32_t m = (1u << t) - 1u;
    WL_FC_ACC a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < n; i++) {
        const uint32_t w = wl_bl_group32(cells, t, base, words, salt, g0 + i, hashes);
        const WL_FC_ACC xv = x[i];
        WL_LANE(a0, w & m);
        WL_LANE(a1, (w >> t) & m);
        WL_LANE(a2, (w >> (2u * t)) & m);
        WL_LANE(a3, (w >> (3u * t)) & m);
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

/* One row block: groups g0 .. g0+K-1, split at block boundaries. */
static void wl_fc_block_bloomier(const wl_encoded_weights_t *e, uint32_t g0, const WL_FC_X *x, uint32_t K,
                                 WL_FC_ACC acc[4])
{
    const uint32_t *cells = e->cells;
    const WL_FC_CB *cb = (const WL_FC_CB *)e->codebook;
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

