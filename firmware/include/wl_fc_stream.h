/* The Bloomier streaming path of the fully connected kernels: the positions of a row block come
 * in groups of four (one input, four outputs), one hash and `hashes` word reads per group decode
 * all four words, and only the lanes holding a shared value (1..K) multiply. The loop is
 * compiled once per (t, hashes) case in WL_BLOOMIER_CASES, each with its reads and rotations
 * specialised (wl_bl_group_t); a table of any other case takes the kernel's decoding path.
 * A generated library lists only the cases its tables use (wl_model_config.h); without that
 * file every t from 1 to 16 with 2, 3 or 4 hashes is compiled in. The same file may set
 *   WL_BLOOMIER_LOOPS 0        no loops: every position is read on its own through the case's
 *                              group decode (--optimize size: less code, more instructions);
 *   WL_BLOOMIER_ONLY_LISTED 1  every Bloomier table of the library has its case listed, so the
 *                              general decoder (wl_weights_query) is not linked for these kernels;
 *   WL_FC_CODEBOOK 0           no codebook encoding: its row-block loop is left out.
 * Included by wl_fc_encoded_f32.c and wl_fc_encoded_s8.c, each defining first
 *   WL_FC_X    the input element type (float, int8_t),
 *   WL_FC_ACC  the accumulator type (float, int32_t),
 *   WL_FC_CB   the codebook element type (float, int8_t);
 * the functions are static, one copy per kernel. */
#include <stdint.h>

#include "wl_weights.h"
#include "wl_bloomier_hash.h"
#include "wl_sparse.h"

#if !defined(WL_BLOOMIER_CASES) && defined(__has_include)
#if __has_include("wl_model_config.h")
#include "wl_model_config.h"
#endif
#endif
#ifndef WL_SPARSE /* the library has sparse streams (wl_model_config.h); without the file, always */
#define WL_SPARSE 1
#endif
#ifndef WL_BLOOMIER_CASES
#define WL_BLOOMIER_CASES_T(X, T) X(T, 2) X(T, 3) X(T, 4)
#define WL_BLOOMIER_CASES(X)                                                                                        \
    WL_BLOOMIER_CASES_T(X, 1) WL_BLOOMIER_CASES_T(X, 2) WL_BLOOMIER_CASES_T(X, 3) WL_BLOOMIER_CASES_T(X, 4)        \
    WL_BLOOMIER_CASES_T(X, 5) WL_BLOOMIER_CASES_T(X, 6) WL_BLOOMIER_CASES_T(X, 7) WL_BLOOMIER_CASES_T(X, 8)        \
    WL_BLOOMIER_CASES_T(X, 9) WL_BLOOMIER_CASES_T(X, 10) WL_BLOOMIER_CASES_T(X, 11) WL_BLOOMIER_CASES_T(X, 12)     \
    WL_BLOOMIER_CASES_T(X, 13) WL_BLOOMIER_CASES_T(X, 14) WL_BLOOMIER_CASES_T(X, 15) WL_BLOOMIER_CASES_T(X, 16)
#endif
#ifndef WL_BLOOMIER_LOOPS
#define WL_BLOOMIER_LOOPS 1
#endif
#ifndef WL_BLOOMIER_ONLY_LISTED
#define WL_BLOOMIER_ONLY_LISTED 0
#endif
#ifndef WL_FC_CODEBOOK /* 0: no fully connected layer of the library has a codebook encoding */
#define WL_FC_CODEBOOK 1
#endif

#ifdef WL_BL_SPECIALISED
/* acc += w * x when the lane of `word` whose top bit is bit `top` (a constant) holds v in 1..K
 * (w = cb[v - 1]). Shifted left so that the lane is the top t bits, v in 1..K is one unsigned
 * comparison: (word << (31 - top)) - (1 << (32 - t)) < K << (32 - t), one RSB (shifted operand)
 * and one CMP; the index is extracted only for the few lanes that hold a value. For t > 8 the
 * lane's low byte is tested so (w the byte lanes of the first plane, t taken as 8), and only
 * a byte in 1..K has its high bits (`high`, in the second plane) checked: they must be 0, as
 * K < 256 (wl_fc_stream_case). */
#define WL_LANE(acc, word, top, high)                                                             \
    do {                                                                                          \
        const uint32_t u_ = ((word) << (31u - (top))) - one;                                      \
        if (__builtin_expect(u_ < kt, 0) && (high) == 0u)                                         \
            acc += cb[u_ >> (32u - tl)] * xv;                                                     \
    } while (0)

/* Groups g0 .. g0+n-1 of one block (base: its first word), t and hashes constants; lo0: the
 * table's block_word[0] (for t > 8, where its first plane starts). */
static inline __attribute__((always_inline)) void wl_fc_groups_t(const uint32_t *cells, uint32_t lo0,
                                                                 uint32_t base, uint32_t words,
                                                                 uint32_t salt, uint32_t g0, uint32_t n,
                                                                 const WL_FC_X *x, const WL_FC_CB *cb, uint32_t K1,
                                                                 WL_FC_ACC acc[4], const uint32_t t,
                                                                 const uint32_t hashes)
{
    const uint32_t tl = t <= 8u ? t : 8u; /* bits of a lane in `lo` */
    uint32_t one = 1u << (32u - tl);
    __asm__("" : "+r"(one)); /* in a register: the subtraction then folds the shift (RSB) */
    const uint32_t kt = K1 << (32u - tl); /* K1 <= 2^tl - 1 */
    const uint32_t s = t - 8u, hm = (1u << s) - 1u;
    const wl_bl_block_t b = wl_bl_block(cells, lo0, base, t);
    WL_FC_ACC a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (uint32_t i = 0; i < n; i++) {
        uint32_t lo, hi = 0;
        wl_bl_group_t(b, words, salt, g0 + i, t, hashes, &lo, &hi);
        const WL_FC_ACC xv = x[i];
        if (t <= 8u) {
            WL_LANE(a0, lo, t - 1u, 0u);
            WL_LANE(a1, lo, 2u * t - 1u, 0u);
            WL_LANE(a2, lo, 3u * t - 1u, 0u);
            WL_LANE(a3, lo, 4u * t - 1u, 0u);
        } else {
            WL_LANE(a0, lo, 7u, hi & hm);
            WL_LANE(a1, lo, 15u, (hi >> s) & hm);
            WL_LANE(a2, lo, 23u, (hi >> (2u * s)) & hm);
            WL_LANE(a3, lo, 31u, (hi >> (3u * s)) & hm);
        }
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}

#if WL_BLOOMIER_LOOPS
#define WL_FC_INSTANCE(T, H)                                                                                        \
    static __attribute__((noinline, noclone)) void wl_fc_groups_t##T##_h##H(                                     \
        const uint32_t *cells, uint32_t lo0, uint32_t base, uint32_t words, uint32_t salt, uint32_t g0, uint32_t n, \
        const WL_FC_X *x, const WL_FC_CB *cb, uint32_t K1, WL_FC_ACC acc[4])                                        \
    {                                                                                                               \
        wl_fc_groups_t(cells, lo0, base, words, salt, g0, n, x, cb, K1, acc, T##u, H##u);                           \
    }
WL_BLOOMIER_CASES(WL_FC_INSTANCE)
#undef WL_FC_INSTANCE
#endif

#if !WL_BLOOMIER_LOOPS
/* The words of group g, t and hashes constants: lanes 0-3 at bits [i*t, i*t+t) of *lo for
 * t <= 8; for t > 8 the two planes (wl_bl_group_t); bits above not cleared. */
static inline __attribute__((always_inline)) void wl_fc_group_t(const wl_encoded_weights_t *e, uint32_t g,
                                                                uint32_t *lo, uint32_t *hi, const uint32_t t,
                                                                const uint32_t hashes)
{
    const uint32_t blk = g / e->block_groups;
    const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
    wl_bl_group_t(wl_bl_block(e->cells, t > 8u ? e->block_word[0] : 0u, base, t), words,
                  wl_bl_salt(e->seed, words), g, t, hashes, lo, hi);
}

/* The word at position p: its group decoded, one lane kept (t a constant). Only without the
 * loops (--optimize size): with them, a single position is read through its case's loop
 * (wl_fc_weight), and a second decoder per case would only add code. */
#define WL_FC_LANE_INSTANCE(T, H)                                                                     \
    static __attribute__((noinline)) uint32_t wl_fc_lane_t##T##_h##H(const wl_encoded_weights_t *e, \
                                                                      uint32_t p)                     \
    {                                                                                                 \
        uint32_t lo, hi = 0;                                                                          \
        const uint32_t lane = p & 3u, m = (1u << T##u) - 1u;                                          \
        wl_fc_group_t(e, p >> 2, &lo, &hi, T##u, H##u);                                               \
        if (T##u <= 8u)                                                                               \
            return (lo >> (lane * T##u)) & m;                                                         \
        return ((lo >> (8u * lane)) & 0xFFu) | (((hi >> (lane * (T##u - 8u))) << 8) & m);            \
    }
WL_BLOOMIER_CASES(WL_FC_LANE_INSTANCE)
#undef WL_FC_LANE_INSTANCE
#endif

/* The case of this table (t * 8 + hashes), or 0 when it is not compiled in (the kernels then
 * read each position through the general decoder). */
static uint32_t wl_fc_stream_case(const wl_encoded_weights_t *e)
{
    if (e->kind != WL_ENC_BLOOMIER || (e->bits > 8u && e->clusters > 255u)) /* the loops test a byte first */
        return 0;
#define WL_FC_CASE(T, H) \
    case (T) * 8u + (H): \
        return (T) * 8u + (H);
    switch ((uint32_t)e->bits * 8u + e->hashes) {
        WL_BLOOMIER_CASES(WL_FC_CASE)
    default:
        return 0;
    }
#undef WL_FC_CASE
}

/* The word at position p of a Bloomier table through its case's decode (without loops), or the
 * general decoder for a case not compiled in. */
static uint32_t wl_fc_word(const wl_encoded_weights_t *e, uint32_t which, uint32_t p)
{
#if !WL_BLOOMIER_LOOPS
#define WL_FC_LANE_CALL(T, H) \
    case (T) * 8u + (H):      \
        return wl_fc_lane_t##T##_h##H(e, p);
    switch (which) {
        WL_BLOOMIER_CASES(WL_FC_LANE_CALL)
    default:
        break;
    }
#undef WL_FC_LANE_CALL
#else
    (void)which;
#endif
    return WL_BLOOMIER_ONLY_LISTED ? 0u : wl_weights_query(e, p);
}

#if WL_BLOOMIER_LOOPS
/* Whether a listed case has t > 8 (two planes); a constant. */
#define WL_FC_WIDE_CASE(T, H) || (T) > 8
#define WL_FC_WIDE (0 WL_BLOOMIER_CASES(WL_FC_WIDE_CASE))
/* One row block: groups g0 .. g0+K-1, split at block boundaries. The loops are called directly
 * (not through a pointer), so that the stack analysis follows them. */
static void wl_fc_block_bloomier(const wl_encoded_weights_t *e, uint32_t which, uint32_t g0, const WL_FC_X *x,
                                 uint32_t K, WL_FC_ACC acc[4])
{
    const WL_FC_CB *cb = (const WL_FC_CB *)e->codebook;
    const uint32_t K1 = e->clusters;
    const uint32_t lo0 = WL_FC_WIDE ? e->block_word[0] : 0u; /* for t > 8: where the first plane starts */
    uint32_t k = 0;
    while (k < K) {
        const uint32_t g = g0 + k;
        const uint32_t blk = g / e->block_groups;
        const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
        const uint32_t left = (blk + 1u) * e->block_groups - g;
        const uint32_t n = K - k < left ? K - k : left;
        const uint32_t salt = wl_bl_salt(e->seed, words);
#define WL_FC_CALL(T, H)                                                              \
    case (T) * 8u + (H):                                                              \
        wl_fc_groups_t##T##_h##H(e->cells, lo0, base, words, salt, g, n, x + k, cb, K1, acc); \
        break;
        switch (which) {
            WL_BLOOMIER_CASES(WL_FC_CALL)
        default: /* a library whose tables use no loop: nothing reaches here */
            (void)salt, (void)cb, (void)K1, (void)x, (void)acc, (void)lo0;
            break;
        }
#undef WL_FC_CALL
        k += n;
    }
}
#define WL_FC_STREAMING 1
#endif
#else
static uint32_t wl_fc_stream_case(const wl_encoded_weights_t *e)
{
    (void)e;
    return 0;
}
static uint32_t wl_fc_word(const wl_encoded_weights_t *e, uint32_t which, uint32_t p)
{
    (void)which;
    return wl_weights_query(e, p);
}
#endif
#ifndef WL_FC_STREAMING
#define WL_FC_STREAMING 0
#define wl_fc_block_bloomier(e, which, g0, x, K, acc) ((void)0)
#endif

/* The weight at position p of a codebook encoding or a Bloomier table, 0 for a pruned position:
 * the kernels' path for what the loops do not cover (the rows after the last block of four, a
 * row with an Inf or NaN input, a table whose loop is not compiled in, --optimize size). One
 * position at a time, for the least code. */
static __attribute__((noinline)) WL_FC_ACC wl_fc_weight(const wl_encoded_weights_t *e, uint32_t which, uint32_t p)
{
#if WL_FC_STREAMING
    if (which != 0) {
        /* The group's four weights through the table's own loop, with an input of 1 into
         * accumulators of -0: a lane holding a value gives cb[v - 1] exactly (-0 + w is w,
         * signed zeros included), any other lane -0, which adds to a sum as +0 does and gives
         * NaN times Inf as +0 does. The few positions the loops do not cover (rows after the
         * last block of four, rows with an Inf or NaN input) then need no decoder of their own. */
        static const WL_FC_X one = 1;
        WL_FC_ACC w[4] = {(WL_FC_ACC)-0.0f, (WL_FC_ACC)-0.0f, (WL_FC_ACC)-0.0f, (WL_FC_ACC)-0.0f};
        wl_fc_block_bloomier(e, which, p >> 2, &one, 1u, w);
        return w[p & 3u];
    }
#endif
    const uint32_t t = e->bits;
    const uint32_t v = e->kind == WL_ENC_CODEBOOK   ? wl_read32(e->cells, p * t) & ((1u << t) - 1u)
                       : WL_SPARSE && e->kind == WL_ENC_SPARSE ? wl_sparse_query(e, p)
                                                  : wl_fc_word(e, which, p);
    const uint32_t i = v - 1u;
    return i < e->clusters ? (WL_FC_ACC)((const WL_FC_CB *)e->codebook)[i] : (WL_FC_ACC)0;
}

#if WL_FC_CODEBOOK
/* acc[0..3] += the weights of a row block of a codebook encoding (b-bit indices, positions
 * first, first+1, ... in the walk order) times x, skipping the zero weights. */
static __attribute__((noinline)) void wl_fc_block_codebook(const wl_encoded_weights_t *e, uint32_t first,
                                                          const WL_FC_X *x, int32_t K, WL_FC_ACC acc[4])
{
    const uint32_t b = e->bits, m = (1u << b) - 1u, K1 = e->clusters;
    const uint32_t *cells = e->cells;
    const WL_FC_CB *cb = (const WL_FC_CB *)e->codebook;
    uint32_t off = first * b;
    WL_FC_ACC a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    for (int32_t k = 0; k < K; k++) {
        const WL_FC_ACC xv = x[k];
        uint32_t i;
        if ((i = (wl_read32(cells, off) & m) - 1u) < K1)
            a0 += cb[i] * xv;
        if ((i = (wl_read32(cells, off + b) & m) - 1u) < K1)
            a1 += cb[i] * xv;
        if ((i = (wl_read32(cells, off + 2u * b) & m) - 1u) < K1)
            a2 += cb[i] * xv;
        if ((i = (wl_read32(cells, off + 3u * b) & m) - 1u) < K1)
            a3 += cb[i] * xv;
        off += 4u * b;
    }
    acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
}
#else
#define wl_fc_block_codebook(e, first, x, K, acc) ((void)0)
#endif

#if WL_SPARSE
/* acc[o & (2^shift - 1)] += w * x[o >> shift] for the kept weights w of a sparse stream at positions
 * first + o, o < span: a row block (shift 2: four outputs interleaved) or one row (shift 0). */
static __attribute__((noinline)) void wl_fc_sparse(const wl_encoded_weights_t *e, uint32_t first, uint32_t span,
                                                   const WL_FC_X *x, uint32_t shift, WL_FC_ACC acc[4])
{
    const WL_FC_CB *cb = (const WL_FC_CB *)e->codebook;
    const uint32_t r = e->hashes, b = e->bits, end = first + span, B = e->block_groups, lanes = (1u << shift) - 1u;
    for (uint32_t blk = first / B; blk * B < end; blk++) {
        wl_sp_t c = wl_sp_block(e, blk);
        while (c.bit < c.stop) {
            uint32_t p;
            const uint32_t v = wl_sp_next(e->cells, &c, r, b, &p);
            if (p >= end)
                return;
            if (p >= first) {
                const uint32_t o = p - first;
                acc[o & lanes] += (WL_FC_ACC)cb[v] * (WL_FC_ACC)x[o >> shift];
            }
        }
    }
}
#else
#define wl_fc_sparse(e, first, span, x, shift, acc) ((void)0)
#endif

/* acc[0..3] += a row block's weights (positions first .. first + 4K - 1) times x: through the
 * table's loop when `fast` (the loops skip zero weights, so a row with an Inf or NaN input, where
 * 0 x Inf is NaN, is not fast), else one weight at a time. */
static inline __attribute__((always_inline)) void wl_fc_block(const wl_encoded_weights_t *e, uint32_t which, int fast,
                                                              uint32_t first, const WL_FC_X *x, int32_t K,
                                                              WL_FC_ACC acc[4])
{
    if (fast && WL_FC_STREAMING && which != 0) {
        wl_fc_block_bloomier(e, which, first >> 2, x, (uint32_t)K, acc);
    } else if (fast && WL_FC_CODEBOOK && e->kind == WL_ENC_CODEBOOK) {
        wl_fc_block_codebook(e, first, x, K, acc);
    } else if (fast && WL_SPARSE && e->kind == WL_ENC_SPARSE) {
        wl_fc_sparse(e, first, 4u * (uint32_t)K, x, 2u, acc);
    } else {
        for (int32_t k = 0; k < K; k++) {
            const WL_FC_ACC xv = x[k];
            const uint32_t q = first + 4u * (uint32_t)k;
            acc[0] += wl_fc_weight(e, which, q) * xv;
            acc[1] += wl_fc_weight(e, which, q + 1u) * xv;
            acc[2] += wl_fc_weight(e, which, q + 2u) * xv;
            acc[3] += wl_fc_weight(e, which, q + 3u) * xv;
        }
    }
}

/* The sum over one row after the last block of four (positions first .. first + K - 1) times x
 * (a sparse stream read in order when `fast`, else one weight at a time). */
static inline __attribute__((always_inline)) WL_FC_ACC wl_fc_row(const wl_encoded_weights_t *e, uint32_t which, int fast,
                                                                 uint32_t first, const WL_FC_X *x, int32_t K)
{
    WL_FC_ACC a = 0;
    if (fast && WL_SPARSE && e->kind == WL_ENC_SPARSE) {
        WL_FC_ACC acc[4] = {0, 0, 0, 0};
        wl_fc_sparse(e, first, (uint32_t)K, x, 0u, acc);
        return acc[0];
    }
    for (int32_t k = 0; k < K; k++)
        a += wl_fc_weight(e, which, first + (uint32_t)k) * (WL_FC_ACC)x[k];
    return a;
}
