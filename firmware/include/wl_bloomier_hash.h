/*
 * The Bloomier table's hashes, 32-bit integer arithmetic (the same as
 * group_hash, group_mask and word_index in weightless_mcu/compress/bloomier.py).
 */
#ifndef WL_BLOOMIER_HASH_H
#define WL_BLOOMIER_HASH_H

#include <stdint.h>

#include "wl_weights.h"

/* Group g of a block of `words` words: the block size salts the hash. */
static inline uint32_t wl_bl_hash(uint32_t g, uint32_t seed, uint32_t words)
{
    uint32_t h = (g + seed + words * 0x61C88647u) * 0x9E3779B1u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    return h;
}

/* The 4t-bit mask H_M: lane i masks position 4g+i. */
static inline uint64_t wl_bl_mask(uint32_t h, uint32_t t)
{
    uint32_t m0 = h * 0x27D4EB2Fu;
    m0 ^= m0 >> 15;
    uint64_t m = m0;
    if (4u * t > 32u) {
        uint32_t m1 = m0 * 0x165667B1u;
        m1 ^= m1 >> 13;
        m |= (uint64_t)m1 << 32;
    }
    return 4u * t >= 64u ? m : m & (((uint64_t)1 << (4u * t)) - 1u);
}

/* Word of the j-th location hash inside the block: (rotl(h, 8j) * words) >> 32. */
static inline uint32_t wl_bl_index(uint32_t h, uint32_t j, uint32_t words)
{
    const uint32_t x = j ? (h << (8u * j)) | (h >> (32u - 8u * j)) : h;
    return (uint32_t)(((uint64_t)x * words) >> 32);
}

/* t = 8: a word is 32 bits, four byte lanes, read aligned. */
static inline uint32_t wl_bloomier_group8(const wl_encoded_weights_t *e, uint32_t g)
{
    const uint32_t blk = g / e->block_groups;
    const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
    const uint32_t *cells = (const uint32_t *)(const void *)e->cells + base;
    const uint32_t h = wl_bl_hash(g, e->seed, words);
    uint32_t acc = (uint32_t)wl_bl_mask(h, 8u);
    acc ^= cells[wl_bl_index(h, 0, words)];
    if (e->hashes > 1) {
        const uint32_t w = cells[wl_bl_index(h, 1, words)];
        acc ^= (w >> 8) | (w << 24);
    }
    if (e->hashes > 2) {
        const uint32_t w = cells[wl_bl_index(h, 2, words)];
        acc ^= (w >> 16) | (w << 16);
    }
    if (e->hashes > 3) {
        const uint32_t w = cells[wl_bl_index(h, 3, words)];
        acc ^= (w >> 24) | (w << 8);
    }
    return acc;
}

#endif
