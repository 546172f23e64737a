/* Queries and decoding of compressed weights (see wl_weights.h). */
#include "wl_weights.h"
#include "wl_kernels.h"
#include "wl_bloomier_hash.h"
#include "wl_sparse.h"

/* A generated library lists the (t, hashes) of the Bloomier tables its kernels decode here
 * (WL_BLOOMIER_DECODE_CASES in wl_model_config.h): each gets a group decode of its own, with
 * t and the hash count constants (wl_bl_group_t). With WL_BLOOMIER_ONLY_LISTED no other case
 * occurs, and the general group decode is left out. */
#if defined(__has_include)
#if __has_include("wl_model_config.h")
#include "wl_model_config.h"
#endif
#endif
#ifndef WL_BLOOMIER_ONLY_LISTED
#define WL_BLOOMIER_ONLY_LISTED 0
#endif
#ifndef WL_SPARSE /* the library has sparse streams (wl_model_config.h); without the file, always */
#define WL_SPARSE 1
#endif

#if defined(WL_BLOOMIER_DECODE_CASES) && defined(WL_BL_SPECIALISED)
#define WL_DEC_INSTANCE(T, H)                                                                                   \
    static __attribute__((noinline, noclone)) uint64_t wl_decode_group_t##T##_h##H(                         \
        const uint32_t *cells, uint32_t lo0, uint32_t base, uint32_t words, uint32_t salt, uint32_t g)         \
    {                                                                                                           \
        uint32_t lo, hi = 0;                                                                                    \
        wl_bl_group_t(wl_bl_block(cells, lo0, base, T##u), words, salt, g, T##u, H##u, &lo, &hi);               \
        if (T##u <= 8u)                                                                                         \
            return lo;                                                                                          \
        return wl_bl_lanes64(lo, hi, T##u);                                                                     \
    }
WL_BLOOMIER_DECODE_CASES(WL_DEC_INSTANCE)
#undef WL_DEC_INSTANCE

/* Whether a listed case has t > 8 (two planes); a constant. */
#define WL_DEC_WIDE_CASE(T, H) || (T) > 8
#define WL_DEC_WIDE (0 WL_BLOOMIER_DECODE_CASES(WL_DEC_WIDE_CASE))

/* The case of this table (t * 8 + hashes) if it is listed, else 0. */
static uint32_t wl_decode_case(const wl_encoded_weights_t *e)
{
#define WL_DEC_CASE(T, H) \
    case (T) * 8u + (H): \
        return (T) * 8u + (H);
    switch ((uint32_t)e->bits * 8u + e->hashes) {
        WL_BLOOMIER_DECODE_CASES(WL_DEC_CASE)
    default:
        return 0;
    }
#undef WL_DEC_CASE
}

/* The words of group g (bits above 4t not cleared) through the listed case `which`. */
static uint64_t wl_decode_group(uint32_t which, const uint32_t *cells, uint32_t lo0, uint32_t base,
                                uint32_t words, uint32_t salt, uint32_t g)
{
#define WL_DEC_CALL(T, H)    \
    case (T) * 8u + (H): \
        return wl_decode_group_t##T##_h##H(cells, lo0, base, words, salt, g);
    switch (which) {
        WL_BLOOMIER_DECODE_CASES(WL_DEC_CALL)
    default: /* not reached: only listed cases are passed */
        (void)cells, (void)lo0, (void)base, (void)words, (void)salt, (void)g;
        return 0;
    }
#undef WL_DEC_CALL
}
#else
#define WL_DEC_WIDE 0
#define wl_decode_case(e) 0u
#define wl_decode_group(which, cells, lo0, base, words, salt, g) 0u
#endif

uint64_t wl_bloomier_group(const wl_encoded_weights_t *e, uint32_t g)
{
    const uint32_t t = e->bits;
    const uint32_t *cells = e->cells;
    const uint32_t blk = g / e->block_groups;
    const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
    const uint32_t salt = wl_bl_salt(e->seed, words);
    if (t <= 8u)
        return wl_bl_group32(cells, t, base, words, salt, g, e->hashes);
    /* the two planes (see wl_bl_group_t): lanes' low bytes, then their t - 8 high bits */
    const uint32_t s = t - 8u, u = 4u * s;
    const uint32_t umask = u == 32u ? 0xFFFFFFFFu : (1u << u) - 1u;
    const uint32_t lo0 = e->block_word[0]; /* the second plane comes first, then the first */
    const uint32_t h = wl_bl_hash(g, salt);
    const uint32_t m0 = wl_bl_mask32(h);
    uint32_t a = m0, c = wl_bl_mask_high(m0, t) & umask;
    for (uint32_t j = 0; j < e->hashes; j++) {
        const uint32_t f = base + wl_bl_index(h, j, words);
        const uint32_t w = cells[f], q = wl_read32(cells, (f - lo0) * u) & umask;
        a ^= j == 0 ? w : (w >> (8u * j)) | (w << (32u - 8u * j));
        c ^= j == 0 ? q : ((q >> (j * s)) | (q << (u - j * s))) & umask;
    }
    return wl_bl_lanes64(a, c, t);
}

uint32_t wl_weights_query(const wl_encoded_weights_t *e, uint32_t position)
{
    if (e == 0 || position >= e->positions)
        return 0u;
    const uint32_t t = e->bits;
    const uint32_t lane_mask = (1u << t) - 1u;
    if (e->kind == WL_ENC_CODEBOOK)
        return wl_read32(e->cells, position * t) & lane_mask;
    if (WL_SPARSE && e->kind == WL_ENC_SPARSE)
        return wl_sparse_query(e, position);
    if (e->kind != WL_ENC_BLOOMIER)
        return 0u;
    return (uint32_t)(wl_bloomier_group(e, position >> 2) >> ((position & 3u) * t)) & lane_mask;
}

/* The codebook value of word v (1..clusters), 0 for any other word; int8 or float codebook. */
static inline __attribute__((always_inline)) void wl_store_value(const wl_encoded_weights_t *e, uint32_t v, void *out,
                                                                 uint32_t i, int s8)
{
    const int known = (uint32_t)(v - 1u) < e->clusters;
    if (s8)
        ((int8_t *)out)[i] = known ? ((const int8_t *)e->codebook)[v - 1u] : 0;
    else
        ((float *)out)[i] = known ? ((const float *)e->codebook)[v - 1u] : 0.0f;
}

/* Both decodes in one body: s8 is a constant in each caller, so each is specialised. */
static inline __attribute__((always_inline)) int wl_weights_decode(const wl_encoded_weights_t *e, uint32_t first,
                                                                   uint32_t count, void *out, int s8)
{
    if (e == 0 || out == 0 || first + count > e->positions || first + count < first ||
        (e->kind != WL_ENC_CODEBOOK && e->kind != WL_ENC_BLOOMIER && !(WL_SPARSE && e->kind == WL_ENC_SPARSE)))
        return WL_ERR_ARG;
    const uint32_t t = e->bits, end = first + count;
    const uint32_t lane_mask = (1u << t) - 1u;
    const uint32_t *cells = e->cells;
    if (e->kind == WL_ENC_CODEBOOK) {
        for (uint32_t p = first; p < end; p++)
            wl_store_value(e, wl_read32(cells, p * t) & lane_mask, out, p - first, s8);
        return WL_OK;
    }
    if (WL_SPARSE && e->kind == WL_ENC_SPARSE) {
        for (uint32_t i = 0; i < count; i++)
            wl_store_value(e, 0u, out, i, s8);
        const uint32_t B = e->block_groups;
        for (uint32_t blk = first / B; blk * B < end; blk++) {
            wl_sp_t c = wl_sp_block(e, blk);
            while (c.bit < c.stop) {
                uint32_t p;
                const uint32_t v = wl_sp_next(cells, &c, e->hashes, t, &p);
                if (p >= end)
                    return WL_OK;
                if (p >= first)
                    wl_store_value(e, v + 1u, out, p - first, s8);
            }
        }
        return WL_OK;
    }
    const uint32_t which = wl_decode_case(e);
    const uint32_t lo0 = WL_DEC_WIDE ? e->block_word[0] : 0u; /* for t > 8: where the first plane starts */
    (void)lo0; /* only the listed cases read it */
    uint32_t p = first;
    while (p < end) {
        /* The groups of one block at a time: its word range and salt are fixed. */
        const uint32_t blk = (p >> 2) / e->block_groups;
        const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
        const uint32_t salt = wl_bl_salt(e->seed, words);
        const uint64_t block_end = ((uint64_t)blk + 1u) * e->block_groups * 4u;
        const uint32_t stop = block_end < end ? (uint32_t)block_end : end;
        while (p < stop) {
            const uint32_t g = p >> 2;
            uint64_t word;
            if (which != 0u)
                word = wl_decode_group(which, cells, lo0, base, words, salt, g);
            else if (WL_BLOOMIER_ONLY_LISTED)
                word = 0u; /* not reached: every table of the library has its case listed */
            else if (t == 8u)
                word = wl_bl_group8(cells + base, words, salt, g, e->hashes);
            else if (t < 8u)
                word = wl_bl_group32(cells, t, base, words, salt, g, e->hashes);
            else
                word = wl_bloomier_group(e, g);
            for (uint32_t lane = p & 3u; lane < 4u && p < stop; lane++, p++)
                wl_store_value(e, (uint32_t)(word >> (lane * t)) & lane_mask, out, p - first, s8);
        }
    }
    return WL_OK;
}

int wl_weights_decode_f32(const wl_encoded_weights_t *e, uint32_t first, uint32_t count, float *out)
{
    return wl_weights_decode(e, first, count, out, 0);
}

int wl_weights_decode_s8(const wl_encoded_weights_t *e, uint32_t first, uint32_t count, int8_t *out)
{
    return wl_weights_decode(e, first, count, out, 1);
}
