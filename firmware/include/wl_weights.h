/*
 * weightless-mcu runtime: compressed weights, decoded on the fly.
 *
 * A layer's weights are stored in the order its kernel walks them (position
 * 0, 1, ...) either as
 *  - a codebook encoding: one b-bit cluster index per position, bit-packed
 *    (b = bits, index 0 = zero weight, v = codebook[v-1]); or
 *  - a Bloomier table (Weightless): t-bit cells holding {position -> index}
 *    for the kept weights only; see wl_bloomier_group() for the query. Word
 *    v in 1..clusters means codebook[v-1], anything else 0; or
 *  - a sparse stream: the kept positions as Rice-coded gaps, each with its
 *    cluster index (wl_sparse.h); no false positives.
 * The codebook holds float32 values for the float kernels and int8 ones (in the
 * layer's weight scale) for the int8 kernels; the same table serves either.
 * The layout is defined once more in weightless_mcu/compress/bloomier.py;
 * the two decodes agree bit for bit on every position (tests/test_bloomier_c.py).
 */
#ifndef WL_WEIGHTS_H
#define WL_WEIGHTS_H

/* The generated model.c may place its tables in a section of its own (see there). */
#ifndef WL_WEIGHTS_ATTR
#define WL_WEIGHTS_ATTR
#endif

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WL_ENC_CODEBOOK 1
#define WL_ENC_BLOOMIER 2
#define WL_ENC_SPARSE 3

typedef struct wl_encoded_weights {
    const uint32_t *cells;       /* packed indices or table cells: a little-endian bit stream held in 32-bit
                                    words (bit i of the stream is bit i % 32 of word i / 32), so it reads
                                    the same on any byte order */
    const uint32_t *block_word;  /* Bloomier: first word of each block; sparse: first bit of each block; [blocks + 1] */
    const void *codebook;        /* [clusters]: float (float kernels) or int8_t (int8 kernels) */
    uint32_t seed;
    uint32_t positions;
    uint32_t block_groups;       /* Bloomier: groups of 4 positions per block; sparse: positions per block */
    uint16_t clusters;
    uint8_t kind;
    uint8_t bits;                /* b (codebook) or t (Bloomier), 1..16; sparse: index bits, 0..16 */
    uint8_t hashes;              /* Bloomier: location hashes, 2..4; sparse: the Rice parameter r */
} wl_encoded_weights_t;

/* The t-bit word stored at a position (Bloomier), or its index (codebook, sparse: 1..K);
 * 0 (a zero weight) for a position outside [0, positions) or an unknown kind. */
uint32_t wl_weights_query(const wl_encoded_weights_t *e, uint32_t position);

/* Bloomier: the 4t-bit word of group g (positions 4g .. 4g+3, lane i at bits [i*t, i*t+t)),
 * whatever its layout in the cells (for t > 8, two planes: weightless_mcu/compress/bloomier.py). */
uint64_t wl_bloomier_group(const wl_encoded_weights_t *e, uint32_t g);

/* Decode weights [first, first + count) into out[0 .. count-1]; WL_ERR_ARG (and
 * nothing written) for a range outside the layer or an unknown kind. */
int wl_weights_decode_f32(const wl_encoded_weights_t *e, uint32_t first, uint32_t count, float *out);
/* The same for an int8 codebook. */
int wl_weights_decode_s8(const wl_encoded_weights_t *e, uint32_t first, uint32_t count, int8_t *out);

#ifdef __cplusplus
}
#endif
#endif
