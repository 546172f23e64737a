/* Queries and decoding of compressed weights (see wl_weights.h). */
#include "wl_weights.h"
#include "wl_kernels.h"
#include "wl_bloomier_hash.h"

/* nbits (1..64) little-endian bits at bit offset off of p. */
static uint64_t wl_read_bits(const uint8_t *p, uint32_t off, uint32_t nbits)
{
    const uint8_t *b = p + (off >> 3);
    const uint32_t shift = off & 7u;
    const uint32_t nbytes = (shift + nbits + 7u) >> 3;
    uint64_t v = 0;
    for (uint32_t i = 0; i < nbytes && i < 8u; i++)
        v |= (uint64_t)b[i] << (8u * i);
    v >>= shift;
    if (nbytes == 9u)
        v |= (uint64_t)b[8] << (64u - shift);
    return nbits == 64u ? v : v & (((uint64_t)1 << nbits) - 1u);
}

uint64_t wl_bloomier_group(const wl_encoded_weights_t *e, uint32_t g)
{
    const uint32_t t = e->bits, n = 4u * t;
    const uint32_t blk = g / e->block_groups;
    const uint32_t base = e->block_word[blk], words = e->block_word[blk + 1] - base;
    const uint32_t h = wl_bl_hash(g, e->seed, words);
    uint64_t acc = wl_bl_mask(h, t);
    for (uint32_t j = 0; j < e->hashes; j++) {
        const uint64_t w = wl_read_bits(e->cells, (base + wl_bl_index(h, j, words)) * n, n);
        acc ^= j == 0 ? w : ((w >> (j * t)) | (w << (n - j * t)));
    }
    return n == 64u ? acc : acc & (((uint64_t)1 << n) - 1u);
}

uint32_t wl_weights_query(const wl_encoded_weights_t *e, uint32_t position)
{
    const uint32_t t = e->bits;
    if (e->kind == WL_ENC_CODEBOOK)
        return (uint32_t)wl_read_bits(e->cells, position * t, t);
    return (uint32_t)(wl_bloomier_group(e, position >> 2) >> ((position & 3u) * t)) & ((1u << t) - 1u);
}

static inline float wl_codebook_value(const wl_encoded_weights_t *e, uint32_t v)
{
    return (uint32_t)(v - 1u) < e->clusters ? e->codebook[v - 1u] : 0.0f;
}

int wl_weights_decode_f32(const wl_encoded_weights_t *e, uint32_t first, uint32_t count, float *out)
{
    if (e == 0 || out == 0 || first + count > e->positions || first + count < first)
        return WL_ERR_ARG;
    const uint32_t end = first + count;
    if (e->kind == WL_ENC_CODEBOOK) {
        for (uint32_t p = first; p < end; p++)
            out[p - first] = wl_codebook_value(e, (uint32_t)wl_read_bits(e->cells, p * e->bits, e->bits));
        return WL_OK;
    }
    if (e->kind != WL_ENC_BLOOMIER)
        return WL_ERR_ARG;
    const uint32_t t = e->bits;
    const uint32_t lane_mask = (1u << t) - 1u;
    uint32_t p = first;
    while (p < end) {
        const uint32_t g = p >> 2;
        uint64_t word;
        if (t == 8u)
            word = wl_bloomier_group8(e, g);
        else
            word = wl_bloomier_group(e, g);
        /* Lanes of this group inside [first, end). */
        for (uint32_t lane = p & 3u; lane < 4u && p < end; lane++, p++)
            out[p - first] = wl_codebook_value(e, (uint32_t)(word >> (lane * t)) & lane_mask);
    }
    return WL_OK;
}
