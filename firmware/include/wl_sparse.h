/*
 * The sparse stream (WL_ENC_SPARSE): per kept weight, in walk order, the gap g to it from the
 * position after the previous one as g >> r zero bits, a one bit and the r low bits of g, then
 * its cluster index (0..K-1) in `bits` bits. Blocks of block_groups positions start afresh at
 * the bit offsets block_word[blk] (block_word[blocks] is the end). The same format is written by
 * SparseEncoding in weightless_mcu/compress/encodings.py; the decodes agree on every position
 * (tests/test_sparse_encoding.py).
 */
#ifndef WL_SPARSE_H
#define WL_SPARSE_H

#include <stdint.h>

#include "wl_bloomier_hash.h"
#include "wl_weights.h"

/* A cursor in one block: the next code's bit, the block's end, the position the next gap counts from. */
typedef struct {
    uint32_t bit, stop, p;
} wl_sp_t;

static inline wl_sp_t wl_sp_block(const wl_encoded_weights_t *e, uint32_t blk)
{
    const wl_sp_t c = {e->block_word[blk], e->block_word[blk + 1], blk * e->block_groups};
    return c;
}

/* The next kept weight of the block (call while c->bit < c->stop): its position in *pos, its
 * cluster index as the result. r and b: the Rice parameter and the index bits. */
static inline __attribute__((always_inline)) uint32_t wl_sp_next(const uint32_t *cells, wl_sp_t *c, uint32_t r,
                                                                 uint32_t b, uint32_t *pos)
{
    uint32_t bit = c->bit, q = 0;
    uint32_t w = wl_read32(cells, bit);
    while (w == 0u) { /* a gap of 32 r-units or more */
        q += 32u;
        bit += 32u;
        w = wl_read32(cells, bit);
    }
    const uint32_t z = (uint32_t)__builtin_ctz(w);
    bit += z + 1u;
    /* the r + b bits after the one bit: still in w when they fit, else read again */
    const uint32_t rest = z + 1u + r + b <= 32u ? (w >> z) >> 1 : wl_read32(cells, bit);
    c->bit = bit + r + b;
    const uint32_t p = c->p + (((q + z) << r) | (rest & ((1u << r) - 1u)));
    c->p = p + 1u;
    *pos = p;
    return (rest >> r) & ((1u << b) - 1u);
}

/* The index (1..K) at one position, 0 where nothing is kept: its block read up to it. */
static inline uint32_t wl_sparse_query(const wl_encoded_weights_t *e, uint32_t position)
{
    wl_sp_t c = wl_sp_block(e, position / e->block_groups);
    while (c.bit < c.stop) {
        uint32_t p;
        const uint32_t v = wl_sp_next(e->cells, &c, e->hashes, e->bits, &p);
        if (p >= position)
            return p == position ? v + 1u : 0u;
    }
    return 0u;
}

#endif
