"""The Bloomier table: {position -> t-bit word} for the kept weights only.

Layout (the firmware reads the same: firmware/include/wl_bloomier_hash.h and
firmware/src/wl_weights_decode.c; a test proves the two decodes agree bit for
bit on every position):

- Keys are weight positions in the order the kernel walks them. Position p
  belongs to group g = p >> 2, lane i = p & 3: four consecutive positions share
  one hash and are decoded together.
- Cells are t bits. Four cells make a *word* (4t bits, lane L in bits
  [L*t, L*t + t)). For t <= 8, words are bit-packed in a byte array, word w at
  bit 4t*w. For t > 8 a word is stored in two planes: the low byte of each lane
  as one aligned 32-bit word (lane L in byte L, as at t = 8), and the t - 8 bits
  above in a second bit stream (word w at bit 4(t-8)*w, lane L at [L(t-8),
  (L+1)(t-8))), which the firmware stores first: block_word[] is then offset by its
  words, so that block_word[0] says where the first plane starts. A rotation by
  lanes is then a 32-bit rotation of the first plane, and a key's low byte is
  tested as at t = 8, its high bits only when that byte holds a value (the fully
  connected loops). The planes are a permutation of the word's bits: the table,
  its solution and its bytes are the same.
- Groups are split into blocks of G groups; block b owns words
  block_word[b] .. block_word[b+1]-1 (W_b of them, 1 <= W_b <= 1024).
- Query of group g in block b, with h = hash(g, W_b) (the block's size salts
  the hash, so a block that cannot be solved is laid out anew with one more word):
      acc = mask(h)                                   (4t bits; for t > 8 the low
                                                      32 bits give each lane's low byte,
                                                      the next 4(t-8) its high bits)
      for j < hashes: f_j = (rotl(h, 8j) * W_b) >> 32     (64-bit product)
                      acc ^= rotr(word[block_word[b] + f_j], j*t)   (within 4t bits)
  and position 4g+i decodes to lane i of acc. So key (g, i) is stored in the
  cells (f_j, (i + j) mod 4): the per-hash lane rotation couples all lanes of
  a block into one system, and the firmware still reads one word per hash.
- A word v in 1..K means codebook[v-1]; anything else means 0.

Construction: each block's system (XOR of a key's cells = its value XOR its
mask) is solved by peeling and, for what peeling leaves, Gaussian elimination
over GF(2) (native/gf2_solve.c). A block that cannot be solved gets one more
word and is solved again.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import OptionError, WeightlessError
from ..hostbuild import shared_library

M32 = np.uint64(0xFFFFFFFF)
MAX_WORDS_PER_BLOCK = 1024
LANES = 4
# Hash constants (the same in firmware/include/wl_bloomier_hash.h).
H1, H2, MASK1, SALT = 0x9E3779B1, 0x85EBCA6B, 0x27D4EB2F, 0x61C88647


def group_hash(g: np.ndarray, seed: int, words: np.ndarray) -> np.ndarray:
    """32-bit mix of group numbers salted by the seed and the block's word count
    (uint64 arrays holding uint32 values)."""
    salt = (np.uint64(seed) + (words.astype(np.uint64) * np.uint64(SALT) & M32)) & M32
    h = ((g + salt) & M32) * np.uint64(H1) & M32
    h ^= h >> np.uint64(16)
    h = h * np.uint64(H2) & M32
    h ^= h >> np.uint64(13)
    return h


def group_mask(h: np.ndarray, bits: int) -> np.ndarray:
    """The 4t-bit mask H_M of each group (lane i masks position 4g+i). For t > 8
    it is made of two 32-bit masks as the planes store the word: m0 holds each
    lane's low byte, and m0 rotated right by 32 - 3(t-8) bits their t - 8 high bits
    (lane i's from bits of m0 outside its low byte, for every t: one rotation)."""
    m0 = h * np.uint64(MASK1) & M32
    m0 ^= m0 >> np.uint64(15)
    if bits <= 8:
        return m0 & _word_mask(bits)
    r = np.uint64(32 - 3 * (bits - 8))
    return _from_planes(m0, ((m0 >> r) | (m0 << (np.uint64(32) - r))) & M32, bits)


def _to_planes(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """4t-bit words (t > 8) as their two planes: the lanes' low bytes (32 bits) and
    their high t - 8 bits (4(t-8) bits)."""
    s, lo, hi = bits - 8, np.zeros_like(w), np.zeros_like(w)
    for lane in range(LANES):
        v = w >> np.uint64(lane * bits)
        lo |= (v & np.uint64(0xFF)) << np.uint64(8 * lane)
        hi |= ((v >> np.uint64(8)) & np.uint64((1 << s) - 1)) << np.uint64(s * lane)
    return lo, hi


def _from_planes(lo: np.ndarray, hi: np.ndarray, bits: int) -> np.ndarray:
    s, w = bits - 8, np.zeros_like(lo)
    for lane in range(LANES):
        v = ((lo >> np.uint64(8 * lane)) & np.uint64(0xFF)) | \
            (((hi >> np.uint64(s * lane)) & np.uint64((1 << s) - 1)) << np.uint64(8))
        w |= v << np.uint64(lane * bits)
    return w


def _word_mask(bits: int) -> np.uint64:
    return np.uint64((1 << (4 * bits)) - 1)


def word_index(h: np.ndarray, j: int, words: np.ndarray) -> np.ndarray:
    """f_j = (rotl(h, 8j) * W) >> 32, in [0, W)."""
    r = 8 * j
    x = ((h << np.uint64(r)) | (h >> np.uint64(32 - r))) & M32 if r else h
    return (x * words.astype(np.uint64)) >> np.uint64(32)


def rotr_word(w: np.ndarray, j: int, bits: int) -> np.ndarray:
    """Rotate 4t-bit words right by j lanes."""
    if j == 0:
        return w
    n, s = 4 * bits, j * bits
    return ((w >> np.uint64(s)) | (w << np.uint64(n - s))) & _word_mask(bits)


@dataclass(frozen=True)
class BloomierTable:
    bits: int  # t
    hashes: int  # location hashes per key (2..4)
    seed: int
    positions: int  # size of the key space
    block_groups: int  # G
    block_word: np.ndarray  # uint32 [blocks + 1]
    words: np.ndarray  # uint64 [block_word[-1]]: each 4t bits

    @property
    def cells(self) -> int:
        return int(self.block_word[-1]) * LANES

    def cell_bytes(self) -> int:
        """The bytes of packed_cells(): for t > 8, the second plane's stream and 4 per word of
        the first plane, as many as one stream of 4t-bit words takes."""
        if self.bits <= 8:
            return padded_stream_bytes(self.cells * self.bits)
        return 4 * int(self.block_word[-1]) + self._high_plane_bytes()

    def _high_plane_bytes(self) -> int:
        """For t > 8, the bytes of the second plane (the lanes' high bits), stored first."""
        return padded_stream_bytes(self.cells * (self.bits - 8))

    def query_groups(self, g: np.ndarray) -> np.ndarray:
        """The decoded 4t-bit word of each group (uint64)."""
        g = np.asarray(g, np.uint64)
        blk = (g // np.uint64(self.block_groups)).astype(np.int64)
        base = self.block_word[blk].astype(np.int64)
        w = (self.block_word[blk + 1] - self.block_word[blk]).astype(np.uint64)
        h = group_hash(g, self.seed, w)
        acc = group_mask(h, self.bits)
        for j in range(self.hashes):
            f = word_index(h, j, w).astype(np.int64)
            acc ^= rotr_word(self.words[base + f], j, self.bits)
        return acc

    def query(self, positions: np.ndarray | None = None, chunk: int = 1 << 22) -> np.ndarray:
        """The t-bit word of each position (all positions when None), uint32."""
        if positions is None:
            groups = (self.positions + 3) // 4
            out = np.empty(groups * 4, np.uint32)
            lane_shift = (np.arange(4, dtype=np.uint64) * np.uint64(self.bits))[None, :]
            lmask = np.uint64((1 << self.bits) - 1)
            for start in range(0, groups, chunk):
                g = np.arange(start, min(groups, start + chunk), dtype=np.uint64)
                acc = self.query_groups(g)
                out[start * 4:(start + len(g)) * 4] = ((acc[:, None] >> lane_shift) & lmask).reshape(-1)
            return out[: self.positions]
        p = np.asarray(positions, np.uint64)
        acc = self.query_groups(p >> np.uint64(2))
        lane = (p & np.uint64(3)) * np.uint64(self.bits)
        return ((acc >> lane) & np.uint64((1 << self.bits) - 1)).astype(np.uint32)

    def packed_cells(self) -> np.ndarray:
        """The cells as the firmware stores them: words of 4t bits, bit-packed, little-endian;
        for t > 8 the two planes one after the other (see the module's docstring)."""
        if self.bits <= 8:
            return pack_stream(self.words, 4 * self.bits)
        lo, hi = _to_planes(self.words, self.bits)
        return np.concatenate([pack_stream(hi, 4 * (self.bits - 8)), lo.astype("<u4").view(np.uint8)])

    def packed_block_word(self) -> np.ndarray:
        """block_word as the firmware stores it: for t > 8, offset by the words of the second
        plane, which comes first in the cells (block_word[0] is where the first plane starts)."""
        bw = self.block_word.astype(np.uint32)
        if self.bits <= 8:
            return bw
        return bw + np.uint32(self._high_plane_bytes() // 4)


def padded_stream_bytes(nbits: int) -> int:
    """Bytes of a bit stream as the firmware stores it: whole 32-bit words, plus
    one, so that any 32 bits can be read with two aligned loads."""
    return 4 * ((nbits + 31) // 32 + 1)


def pack_stream(values: np.ndarray, width: int) -> np.ndarray:
    """Values of `width` bits each, little-endian bit stream, padded (uint8)."""
    v = np.asarray(values, np.uint64)
    bitpos = np.arange(width, dtype=np.uint64)
    bits = ((v[:, None] >> bitpos[None, :]) & np.uint64(1)).astype(np.uint8).reshape(-1)
    out = np.zeros(padded_stream_bytes(v.size * width), np.uint8)
    packed = np.packbits(bits, bitorder="little")
    out[:packed.size] = packed
    return out


@lru_cache(maxsize=1)
def _solver():
    lib = ctypes.CDLL(str(shared_library(Path(__file__).resolve().parent.parent / "native" / "gf2_solve.c",
                                         "the Bloomier table solver")))
    fn = lib.wl_solve_blocks
    fn.restype = None
    p = np.ctypeslib.ndpointer
    fn.argtypes = [ctypes.c_int64, p(np.int64, flags="C"), p(np.int64, flags="C"), ctypes.c_int32,
                   p(np.uint32, flags="C"), p(np.uint32, flags="C"), p(np.uint32, flags="C"), p(np.int8, flags="C")]
    return fn


def _choose_block_groups(groups: int, key_groups: np.ndarray, cells_per_key: float) -> int:
    """Groups per block: blocks of about 2,000 cells (large enough to be solvable
    close to the bound, small enough to solve in about a millisecond), and
    never a block with more keys than its at most 1,024 words can hold."""
    n = len(key_groups)
    if n == 0 or groups == 0:
        return max(1, groups)
    target_cells = 2000
    per_group = n / groups
    # The 16-bit cap comes first: capping after the loop below could merge two
    # dense regions that the loop had kept in separate blocks.
    g_size = min(max(1, int(target_cells / cells_per_key / per_group)), groups, 0xFFFF)
    limit = int(LANES * MAX_WORDS_PER_BLOCK / (cells_per_key * 1.08))
    while g_size > 1 and np.bincount(key_groups // g_size).max() > limit:
        g_size = max(1, g_size * 3 // 4)
    return g_size


def _ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], ends[i]), vectorized."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
    return np.arange(total, dtype=np.int64) + offsets


def build_table(positions: int, keys: np.ndarray, values: np.ndarray, bits: int, *, hashes: int = 4,
                cells_per_key: float = 1.03, seed: int = 0x5EED) -> BloomierTable:
    """Store {keys[i] -> values[i]} (keys sorted, unique, < positions; values < 2^bits)."""
    if not 1 <= bits <= 16:
        raise OptionError(f"Bloomier cells must have 1 to 16 bits, not {bits}")
    if not 2 <= hashes <= 4:
        raise OptionError(f"the number of location hashes must be 2 to 4, not {hashes}")
    # Below these sizes a system of `hashes` cells per key is almost never
    # solvable (the k-XORSAT thresholds, with room for small blocks).
    cells_per_key = max(cells_per_key, {2: 2.3, 3: 1.12, 4: 1.0}[hashes])
    keys = np.asarray(keys, np.int64)
    values = np.asarray(values, np.uint64)
    groups = (positions + 3) // 4
    kg = keys >> 2
    lane = (keys & 3).astype(np.uint64)
    g_size = _choose_block_groups(groups, kg, cells_per_key)
    nblocks = max(1, (groups + g_size - 1) // g_size)
    kblk = kg // g_size
    key_start = np.searchsorted(kblk, np.arange(nblocks + 1)).astype(np.int64)
    nkeys = np.diff(key_start)
    words = np.maximum(1, np.ceil(cells_per_key * nkeys / LANES)).astype(np.int64)
    lane_mask = np.uint64((1 << bits) - 1)
    solver = _solver()
    pending = np.arange(nblocks)
    sol_words: dict[int, np.ndarray] = {}
    for _attempt in range(64):
        if len(pending) == 0:
            break
        if np.any(words[pending] > MAX_WORDS_PER_BLOCK):
            raise WeightlessError(f"a Bloomier block could not be solved within {MAX_WORDS_PER_BLOCK} words; try another seed")
        # Keys of the pending blocks, with block-local cells.
        sel = _ranges(key_start[pending], key_start[pending + 1])
        kw = np.repeat(words[pending], nkeys[pending]).astype(np.uint64)
        h = group_hash(kg[sel].astype(np.uint64), seed, kw)
        rhs = (values[sel] ^ ((group_mask(h, bits) >> (lane[sel] * np.uint64(bits))) & lane_mask)).astype(np.uint32)
        cells = np.empty((len(sel), hashes), np.uint32)
        for j in range(hashes):
            f = word_index(h, j, kw)
            cells[:, j] = (f * np.uint64(LANES) + ((lane[sel] + np.uint64(j)) & np.uint64(3))).astype(np.uint32)
        sub_keys = np.concatenate([[0], np.cumsum(nkeys[pending])]).astype(np.int64)
        sub_cells = np.concatenate([[0], np.cumsum(words[pending] * LANES)]).astype(np.int64)
        sol = np.zeros(int(sub_cells[-1]), np.uint32)
        ok = np.zeros(len(pending), np.int8)
        solver(len(pending), sub_keys, sub_cells, hashes, np.ascontiguousarray(cells.reshape(-1)), rhs, sol, ok)
        if np.any(ok < 0):
            raise MemoryError("the Bloomier solver ran out of memory")
        for i, b in enumerate(pending):
            if ok[i] == 1:
                sol_words[int(b)] = sol[sub_cells[i]:sub_cells[i + 1]]
        failed = pending[ok != 1]
        words[failed] = np.maximum(words[failed] + 1, np.ceil(words[failed] * 1.02)).astype(np.int64)
        pending = failed
    else:
        raise WeightlessError("the Bloomier table could not be built; try more bits or another seed")
    block_word = np.concatenate([[0], np.cumsum(words)]).astype(np.uint32)
    cell_vals = np.concatenate([sol_words[b] for b in range(nblocks)]).astype(np.uint64).reshape(-1, LANES)
    lane_shift = (np.arange(LANES, dtype=np.uint64) * np.uint64(bits))[None, :]
    table_words = np.bitwise_or.reduce(cell_vals << lane_shift, axis=1) if len(cell_vals) else np.zeros(0, np.uint64)
    return BloomierTable(bits, hashes, seed, positions, g_size, block_word, table_words.astype(np.uint64))
