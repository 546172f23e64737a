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

/* The mask H_M of t <= 8 (its low 4t bits; lane i masks position 4g+i), or for t > 8 the mask
 * of the first plane (the lanes' low bytes). */
static inline uint32_t wl_bl_mask32(uint32_t h)
{
    uint32_t m0 = h * 0x27D4EB2Fu;
    return m0 ^ (m0 >> 15);
}

/* For t > 8, the mask of the second plane (the lanes' t - 8 high bits, its low 4(t-8) bits): the
 * first plane's rotated right by 32 - 3(t-8), so that each lane's high bits come from bits of m0
 * outside its low byte, for every t. */
static inline uint32_t wl_bl_mask_high(uint32_t m0, uint32_t t)
{
    const uint32_t r = 32u - 3u * (t - 8u); /* 8 .. 29 */
    return (m0 >> r) | (m0 << (32u - r));
}

/* Word of the j-th location hash inside a block of `words` words: (rotl(h, 8j) * words) >> 32. */
static inline uint32_t wl_bl_index(uint32_t h, uint32_t j, uint32_t words)
{
    const uint32_t x = j ? (h << (8u * j)) | (h >> (32u - 8u * j)) : h;
    return (uint32_t)(((uint64_t)x * words) >> 32);
}

/* The 4t-bit word (lane i at bits [i*t, i*t+t)) of the planes of a t > 8 word. */
static inline __attribute__((always_inline)) uint64_t wl_bl_lanes64(uint32_t lo, uint32_t hi, uint32_t t)
{
    const uint32_t s = t - 8u, hm = (1u << s) - 1u;
    uint64_t w = 0;
    for (uint32_t i = 0; i < 4u; i++)
        w |= (uint64_t)(((lo >> (8u * i)) & 0xFFu) | (((hi >> (s * i)) & hm) << 8)) << (t * i);
    return w;
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
 * For t <= 8, words of one block are 4t bits each, so word w starts at nibble t*w: byte-aligned
 * for even t, at a nibble for odd t. On a little-endian core that takes unaligned loads (ARMv7-M
 * and later, and the host) a word is then one load and a constant (even t) or one-of-two (odd t)
 * shift, instead of wl_read32's two loads and variable shifts. For t > 8 the first plane's words
 * are aligned 32-bit integers (read as at t = 8) and the second plane's are 4(t-8) bits (a byte
 * at t = 10, a halfword at t = 12, at a nibble for odd t). */
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

/* Where a block's words start, for wl_bl_group_t: the byte holding its first word and, for odd
 * t, whether that word starts in the byte's upper nibble. For t > 8, the first plane's word
 * (bytes, aligned) and the second plane's byte and nibble (hbytes, hnib). */
typedef struct {
    const uint8_t *bytes;
    uint32_t nib;
    const uint8_t *hbytes;
    uint32_t hnib;
} wl_bl_block_t;

/* base: the block's first word (block_word[b]); lo0: block_word[0], for t > 8 where the first
 * plane starts (the second comes first in the cells, word w of it at nibble (t-8)*w), unused for
 * t <= 8. */
static inline __attribute__((always_inline)) wl_bl_block_t wl_bl_block(const uint32_t *cells, uint32_t lo0,
                                                                       uint32_t base, const uint32_t t)
{
    if (t > 8u) {
        const uint8_t *bytes = (const uint8_t *)(const void *)(cells + base);
        const uint32_t hnib = (base - lo0) * (t - 8u);
        const uint8_t *hbytes = (const uint8_t *)(const void *)cells + (hnib >> 1);
        __asm__("" : "+r"(bytes), "+r"(hbytes));
        const wl_bl_block_t b = {bytes, 0u, hbytes, hnib & 1u};
        return b;
    }
    const uint32_t nib = base * t; /* word w starts at nibble t*w */
    const uint8_t *bytes = (const uint8_t *)(const void *)cells + (nib >> 1);
    __asm__("" : "+r"(bytes)); /* one pointer for the block: else the compiler adds base to every read */
    const wl_bl_block_t b = {bytes, nib & 1u, 0, 0u};
    return b;
}

/* Word f of a stream of k-nibble words (k a constant, 1 to 8) whose word 0 starts at nibble
 * `nib` (0 or 1) of `bytes`: exactly 4k bits, nothing above, so that a rotation within them is
 * two shifts. One load, and for odd k a shift of 0 or 4. */
static inline __attribute__((always_inline)) uint32_t wl_bl_word(const uint8_t *bytes, uint32_t nib, uint32_t f,
                                                                 const uint32_t k)
{
    if (k == 8u)
        return wl_ld32(bytes + 4u * f);
    if (k == 2u)
        return bytes[f];
    if (k == 4u) {
        uint16_t v;
        memcpy(&v, bytes + 2u * f, 2); /* one LDRH */
        return v;
    }
    const uint32_t keep = (1u << (4u * k)) - 1u;
    if ((k & 1u) == 0u)
        return wl_ld32(bytes + f * (k / 2u)) & keep;
    const uint32_t at = nib + f * k; /* word f starts at a nibble */
    uint32_t v = wl_ld32(bytes + (at >> 1));
    if (at & 1u)
        v >>= 4;
    return v & keep;
}

/* The decoded word of group g, for a constant t and hash count, in the block b of `words` words.
 * For t <= 8 the 4t-bit word comes back in the low bits of *lo (the bits above are not
 * cleared); for t > 8 as its two planes: each lane's low byte in *lo (lane i in byte i) and its
 * t - 8 high bits in *hi (lane i at bit (t-8)*i; the bits above 4(t-8) not cleared). A rotation
 * by j lanes is then a 32-bit rotation of the first plane (one EOR with a rotated operand), and
 * two shifts of the second. */
static inline __attribute__((always_inline)) void wl_bl_group_t(wl_bl_block_t b, uint32_t words, uint32_t salt,
                                                                uint32_t g, const uint32_t t, const uint32_t hashes,
                                                                uint32_t *lo, uint32_t *hi)
{
    const uint32_t h = wl_bl_hash(g, salt);
    const uint32_t m0 = wl_bl_mask32(h);
    if (t <= 8u) {
        const uint32_t n = 4u * t;
        uint32_t acc = m0;
#pragma GCC unroll 4
        for (uint32_t j = 0; j < hashes; j++) {
            const uint32_t w = wl_bl_word(b.bytes, b.nib, wl_bl_index(h, j, words), t);
            acc ^= j == 0 ? w : (w >> (j * t)) ^ (w << (n - j * t)); /* what lands above 4t bits is never read */
        }
        *lo = acc; /* the bits above 4t are not masked off: the callers' lane shifts drop them */
        return;
    }
    const uint32_t s = t - 8u, u = 4u * s; /* high bits per lane, per word */
    uint32_t a = m0, c = wl_bl_mask_high(m0, t);
#pragma GCC unroll 4
    for (uint32_t j = 0; j < hashes; j++) {
        const uint32_t f = wl_bl_index(h, j, words);
        const uint32_t w = ((const uint32_t *)(const void *)b.bytes)[f];
        a ^= j == 0 ? w : (w >> (8u * j)) | (w << (32u - 8u * j));
        const uint32_t q = wl_bl_word(b.hbytes, b.hnib, f, s);
        c ^= j == 0 ? q : (q >> (j * s)) ^ (q << (u - j * s)); /* what lands above 4(t-8) bits is never read */
    }
    *lo = a;
    *hi = c; /* the bits above 4(t-8) are not masked off either */
}

#endif

#endif
