/*
 * The Bloomier table's hashes and word reads, 32-bit integer arithmetic (the
 * same as group_hash, group_mask and word_index in
 * weightless_mcu/compress/bloomier.py).
 */
#ifndef WL_BLOOMIER_HASH_H
#define WL_BLOOMIER_HASH_H

#include <stdint.h>

#include "wl_weights.h"

#define WL_BL_SALT 0x61C88647u

/* Per block: the seed salted by the block's word count, so that a block that
 * cannot be solved is laid out anew by giving it one more word. */
static inline uint32_t wl_bl_salt(uint32_t seed, uint32_t words)
{
    return seed + words * WL_BL_SALT;
}

static inline uint32_t wl_bl_hash(uint32_t g, uint32_t salt)
{
    uint32_t h = (g + salt) * 0x9E3779B1u;
    h ^= h >> 16;
    h *= 0x85EBCA6Bu;
    h ^= h >> 13;
    return h;
}

/* The low 32 bits of the mask H_M (lane i of the 4t-bit mask masks position 4g+i). */
static inline uint32_t wl_bl_mask32(uint32_t h)
{
    uint32_t m0 = h * 0x27D4EB2Fu;
    return m0 ^ (m0 >> 15);
}

/* Its high 32 bits, used when 4t > 32. */
static inline uint32_t wl_bl_mask_high(uint32_t m0)
{
    uint32_t m1 = m0 * 0x165667B1u;
    return m1 ^ (m1 >> 13);
}

/* Word of the j-th location hash inside a block of `words` words: (rotl(h, 8j) * words) >> 32. */
static inline uint32_t wl_bl_index(uint32_t h, uint32_t j, uint32_t words)
{
    const uint32_t x = j ? (h << (8u * j)) | (h >> (32u - 8u * j)) : h;
    return (uint32_t)(((uint64_t)x * words) >> 32);
}

/* 32 bits of a little-endian bit stream from bit offset off. The stream is
 * 4-byte aligned and padded by one word, so two aligned loads always suffice. */
static inline uint32_t wl_read32(const uint32_t *stream, uint32_t off)
{
    const uint32_t i = off >> 5, s = off & 31u;
    return (stream[i] >> s) | ((stream[i + 1] << 1) << (31u - s));
}

/* The decoded 4t-bit word of group g, for t <= 8 (one 32-bit word), given its
 * block's first word, word count and salt. `hashes` is a constant where the
 * caller wants the loop unrolled. */
static inline uint32_t wl_bl_group32(const uint32_t *cells, uint32_t t, uint32_t base, uint32_t words, uint32_t salt,
                                     uint32_t g, uint32_t hashes)
{
    const uint32_t h = wl_bl_hash(g, salt);
    const uint32_t n = 4u * t;
    const uint32_t keep = n == 32u ? 0xFFFFFFFFu : (1u << n) - 1u;
    uint32_t acc = wl_bl_mask32(h);
    for (uint32_t j = 0; j < hashes; j++) {
        const uint32_t w = wl_read32(cells, (base + wl_bl_index(h, j, words)) * n) & keep;
        acc ^= j == 0 ? w : (w >> (j * t)) | (w << (n - j * t));
    }
    return acc & keep;
}

/* t = 8: words are aligned 32-bit integers, lanes are bytes. */
static inline uint32_t wl_bl_group8(const uint32_t *cells, uint32_t words, uint32_t salt, uint32_t g, uint32_t hashes)
{
    const uint32_t h = wl_bl_hash(g, salt);
    uint32_t acc = wl_bl_mask32(h) ^ cells[wl_bl_index(h, 0, words)];
    if (hashes > 1) {
        const uint32_t w = cells[wl_bl_index(h, 1, words)];
        acc ^= (w >> 8) | (w << 24);
    }
    if (hashes > 2) {
        const uint32_t w = cells[wl_bl_index(h, 2, words)];
        acc ^= (w >> 16) | (w << 16);
    }
    if (hashes > 3) {
        const uint32_t w = cells[wl_bl_index(h, 3, words)];
        acc ^= (w >> 24) | (w << 8);
    }
    return acc;
}

#endif
