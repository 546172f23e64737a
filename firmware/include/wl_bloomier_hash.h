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

/* -- Reads specialised by a constant t (the streaming paths of the fc kernels) ----------------
 * Words of one block are 4t bits each, so word w starts at nibble t*w: byte-aligned for even t,
 * at a nibble for odd t. On a little-endian core that takes unaligned loads (ARMv7-M and later,
 * and the host) a word, or a pair of its lanes, is then one load and a constant (even t) or
 * one-of-two (odd t) shift, instead of wl_read32's two loads and variable shifts. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (!defined(__arm__) || defined(__ARM_FEATURE_UNALIGNED))
#define WL_BL_SPECIALISED 1
#include <string.h>

static inline __attribute__((always_inline)) uint32_t wl_ld32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4); /* one LDR */
    return v;
}

/* `width` bits (constant, <= 32) from bit `shift` (at most the constant `most`, < 8) of the
 * bytes at p. */
static inline __attribute__((always_inline)) uint32_t wl_bits_at(const uint8_t *p, uint32_t shift, uint32_t width,
                                                                 uint32_t most)
{
    uint32_t v = wl_ld32(p) >> shift;
    if (width + most > 32u) /* constant-folded: the bits run into a fifth byte */
        v |= (wl_ld32(p + 4) << 1) << (31u - shift);
    return width >= 32u ? v : v & ((1u << width) - 1u);
}

/* Where a block's words start, for wl_bl_group_t: the byte holding its first word and, for odd
 * t, whether that word starts in the byte's upper nibble. */
typedef struct {
    const uint8_t *bytes;
    uint32_t nib;
} wl_bl_block_t;

static inline __attribute__((always_inline)) wl_bl_block_t wl_bl_block(const uint32_t *cells, uint32_t base,
                                                                       const uint32_t t)
{
    const uint32_t nib = base * t; /* word w starts at nibble t*w */
    const uint8_t *bytes = (const uint8_t *)(const void *)cells + (nib >> 1);
    __asm__("" : "+r"(bytes)); /* one pointer for the block: else the compiler adds base to every read */
    const wl_bl_block_t b = {bytes, nib & 1u};
    return b;
}

/* The decoded word of group g, for a constant t and hash count, in the block b of `words` words.
 * For t <= 8 the 4t-bit word comes back in the low bits of *lo (the bits above are not
 * cleared); for t > 8 lanes 0-1 in *lo and lanes 2-3 in
 * *hi (2t bits each): then a rotation by one lane is two shifts per half and a rotation by two
 * lanes swaps the halves. */
static inline __attribute__((always_inline)) void wl_bl_group_t(wl_bl_block_t b, uint32_t words, uint32_t salt,
                                                                uint32_t g, const uint32_t t, const uint32_t hashes,
                                                                uint32_t *lo, uint32_t *hi)
{
    const uint32_t h = wl_bl_hash(g, salt);
    const uint32_t m0 = wl_bl_mask32(h);
    if (t <= 8u) {
        const uint32_t n = 4u * t;
        const uint32_t keep = n == 32u ? 0xFFFFFFFFu : (1u << n) - 1u;
        uint32_t acc = m0;
#pragma GCC unroll 4
        for (uint32_t j = 0; j < hashes; j++) {
            const uint32_t f = wl_bl_index(h, j, words);
            uint32_t w;
            if (t == 8u)
                w = ((const uint32_t *)(const void *)b.bytes)[f];
            else if ((t & 1u) == 0u)
                w = wl_ld32(b.bytes + f * (t / 2u)) & keep;
            else {
                const uint32_t nib = b.nib + f * t;
                w = (wl_ld32(b.bytes + (nib >> 1)) >> ((nib & 1u) << 2)) & keep;
            }
            acc ^= j == 0 ? w : (w >> (j * t)) | (w << (n - j * t));
        }
        *lo = acc; /* the bits above 4t are not masked off: the callers' lane shifts drop them */
        return;
    }
    const uint32_t half = 2u * t; /* bits of two lanes */
    const uint32_t m1 = wl_bl_mask_high(m0);
    uint32_t a = m0, c = half == 32u ? m1 : (m0 >> half) | (m1 << (32u - half));
#pragma GCC unroll 4
    for (uint32_t j = 0; j < hashes; j++) {
        const uint32_t f = wl_bl_index(h, j, words);
        uint32_t p, q;
        if ((t & 1u) == 0u) {
            const uint8_t *w = b.bytes + f * (t / 2u);
            p = wl_bits_at(w, 0u, half, 0u);
            q = wl_bits_at(w + half / 8u, half & 7u, half, half & 7u);
        } else {
            /* a word starts at a nibble: p at shift 0 or 4, q (2t bits on, 2t = 2 mod 4) at 2 or 6 */
            const uint32_t bit = 4u * b.nib + f * 4u * t;
            p = wl_bits_at(b.bytes + (bit >> 3), bit & 7u, half, 4u);
            q = wl_bits_at(b.bytes + ((bit + half) >> 3), (bit + half) & 7u, half, 6u);
        }
        if (j == 0) {
            a ^= p;
            c ^= q;
        } else if (j == 1) {
            a ^= (p >> t) | (q << t);
            c ^= (q >> t) | (p << t);
        } else if (j == 2) {
            a ^= q;
            c ^= p;
        } else {
            a ^= (q >> t) | (p << t);
            c ^= (p >> t) | (q << t);
        }
    }
    *lo = a; /* not masked to 2t bits either */
    *hi = c;
}
#endif

#endif
