"""How a weight tensor is stored in flash: one small typed object per layer.

Every encoding holds the weights in the order the kernel walks them (the
lowering's packed layout) and provides
- decode(): the weights the firmware will compute with (numpy; float32, or int8 for the
  int8 codebook of a quantized layer, compress/int8_tables.py),
- nbytes(): exactly the flash bytes it takes, metadata included,
- dense_bytes(): the bytes of the same weights stored plainly (float32 or int8),
- the arrays and struct fields the templates render (c_arrays, c_fields).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from .bloomier import BloomierTable, pack_stream, padded_stream_bytes

# sizeof(wl_encoded_weights_t) on the 32-bit targets (firmware/include/wl_weights.h):
# three pointers, three uint32, one uint16, three uint8, padded to 4.
STRUCT_BYTES = 32
ENC_CODEBOOK, ENC_BLOOMIER, ENC_SPARSE = 1, 2, 3


def stream_words(packed: np.ndarray) -> np.ndarray:
    """A packed little-endian bit stream (uint8, a whole number of 32-bit words) as
    the uint32 words the firmware reads: bit i is bit i % 32 of word i / 32."""
    return packed.view("<u4").astype(np.uint32)


def element_bytes(codebook: np.ndarray) -> int:
    """Bytes of one weight of the layer a codebook serves: int8 (a quantized layer) or float32."""
    return 1 if codebook.dtype == np.int8 else 4


def codebook_bytes(codebook: np.ndarray) -> int:
    """Flash bytes of a codebook array."""
    return int(codebook.size) * element_bytes(codebook)


def codebook_ctype(codebook: np.ndarray) -> str:
    return "int8_t" if codebook.dtype == np.int8 else "float"


@dataclass(frozen=True)
class CArray:
    suffix: str
    ctype: str  # "uint32_t" or "float"
    data: np.ndarray


@dataclass(frozen=True)
class DenseEncoding:
    weights: np.ndarray  # float32, walk order
    kind: str = "dense"

    @property
    def positions(self) -> int:
        return int(self.weights.size)

    def decode(self) -> np.ndarray:
        return self.weights

    def nbytes(self) -> int:
        return int(self.weights.size) * 4

    def dense_bytes(self) -> int:
        return self.nbytes()


@dataclass(frozen=True)
class CodebookEncoding:
    """Dense cluster indices, b = ceil(log2(K+1)) bits each, bit-packed; 0 is a zero weight."""

    indices: np.ndarray  # uint32 per position, 0..K
    codebook: np.ndarray  # float32 [K], or int8 in the weight scale of an int8 layer
    kind: str = "codebook"

    @property
    def positions(self) -> int:
        return int(self.indices.size)

    @property
    def bits(self) -> int:
        return max(1, int(self.codebook.size).bit_length())

    def decode(self) -> np.ndarray:
        table = np.concatenate([np.zeros(1, self.codebook.dtype), self.codebook])
        return table[self.indices]

    def packed(self) -> np.ndarray:
        return pack_stream(self.indices, self.bits)

    def nbytes(self) -> int:
        return padded_stream_bytes(self.positions * self.bits) + codebook_bytes(self.codebook) + STRUCT_BYTES

    def dense_bytes(self) -> int:
        return self.positions * element_bytes(self.codebook)

    def c_arrays(self) -> list[CArray]:
        return [CArray("cells", "uint32_t", stream_words(self.packed())),
                CArray("codebook", codebook_ctype(self.codebook), self.codebook)]

    def c_fields(self) -> dict:
        return {"kind": ENC_CODEBOOK, "bits": self.bits, "clusters": int(self.codebook.size), "hashes": 0, "seed": 0,
                "positions": self.positions, "block_groups": 0}


def rice_parameter(gaps: np.ndarray) -> int:
    """The Rice parameter r (0..15) that codes these gaps in the fewest bits."""
    costs = [int((gaps >> r).sum()) + gaps.size * r for r in range(16)]
    return int(np.argmin(costs))


@dataclass(frozen=True)
class SparseEncoding:
    """The kept positions as Rice-coded gaps, each followed by its cluster index, in walk order:
    no false positives, and near the entropy of a sparse layer's positions (a Bloomier table
    stores t bits per kept weight, whatever the density). Per kept weight: the gap g to it from
    the position after the previous one, as g >> r zero bits, a one bit and the r low bits of g,
    then v - 1 in `bits` bits (v = its cluster, 1..K). Blocks of `block_positions` positions
    (four output channels: what the kernels decode at a time) start afresh, each at a bit offset
    of its own (`block_bits`), so that any block can be decoded alone."""

    indices: np.ndarray  # uint32 per position, 0..K
    codebook: np.ndarray  # float32 [K], or int8 in the weight scale of an int8 layer
    block_positions: int
    kind: str = "sparse"

    @property
    def positions(self) -> int:
        return int(self.indices.size)

    @property
    def bits(self) -> int:
        return (int(self.codebook.size) - 1).bit_length()

    @property
    def blocks(self) -> int:
        return -(-self.positions // self.block_positions)

    @cached_property
    def _codes(self):
        """(kept positions, their gaps, r, code lengths in bits): computed once per encoding, as
        nbytes, rice and stream all need them."""
        kept = np.flatnonzero(self.indices).astype(np.int64)
        start = kept // self.block_positions * self.block_positions
        prev = np.concatenate([[-1], kept[:-1]])
        gaps = kept - np.maximum(prev + 1, start)
        r = rice_parameter(gaps)
        return kept, gaps, r, (gaps >> r) + 1 + r + self.bits

    @property
    def rice(self) -> int:
        return self._codes[2]

    def stream(self) -> tuple[np.ndarray, np.ndarray]:
        """(the codes as a padded little-endian bit stream, uint8; each block's first bit, and the
        total, uint32 [blocks + 1])."""
        kept, gaps, r, lengths = self._codes
        ends = np.cumsum(lengths)
        starts = ends - lengths
        total = int(ends[-1]) if ends.size else 0
        bits = np.zeros(total, np.uint8)
        one = starts + (gaps >> r)
        bits[one] = 1
        payload = gaps & ((1 << r) - 1) | ((self.indices[kept].astype(np.int64) - 1) << r)
        width = r + self.bits
        if width:
            j = np.arange(width)
            where = (one + 1)[:, None] + j[None, :]
            bits[where.reshape(-1)] = ((payload[:, None] >> j[None, :]) & 1).reshape(-1)
        out = np.zeros(padded_stream_bytes(total), np.uint8)
        packed = np.packbits(bits, bitorder="little")
        out[:packed.size] = packed
        first = np.searchsorted(kept, np.arange(self.blocks + 1) * self.block_positions)
        block_bits = np.concatenate([[0], ends])[first].astype(np.uint32)
        return out, block_bits

    def decode(self) -> np.ndarray:
        table = np.concatenate([np.zeros(1, self.codebook.dtype), self.codebook])
        return table[self.indices]

    def nbytes(self) -> int:
        lengths = self._codes[3]
        return padded_stream_bytes(int(lengths.sum())) + 4 * (self.blocks + 1) + codebook_bytes(self.codebook) + STRUCT_BYTES

    def dense_bytes(self) -> int:
        return self.positions * element_bytes(self.codebook)

    def c_arrays(self) -> list[CArray]:
        stream, block_bits = self.stream()
        return [CArray("cells", "uint32_t", stream_words(stream)), CArray("block_word", "uint32_t", block_bits),
                CArray("codebook", codebook_ctype(self.codebook), self.codebook)]

    def c_fields(self) -> dict:
        return {"kind": ENC_SPARSE, "bits": self.bits, "clusters": int(self.codebook.size), "hashes": self.rice,
                "seed": 0, "positions": self.positions, "block_groups": self.block_positions}


def decode_sparse_stream(stream: np.ndarray, block_bits: np.ndarray, positions: int, block_positions: int,
                         rice: int, bits: int) -> np.ndarray:
    """The index per position (0..K) read back from a SparseEncoding's stream, code by code: an
    implementation of the format apart from the packer, for tests."""
    b = np.unpackbits(stream, bitorder="little")
    out = np.zeros(positions, np.uint32)
    for blk in range(block_bits.size - 1):
        bit, stop, p = int(block_bits[blk]), int(block_bits[blk + 1]), blk * block_positions
        while bit < stop:
            q = 0
            while b[bit] == 0:
                q, bit = q + 1, bit + 1
            bit += 1
            low = sum(int(b[bit + j]) << j for j in range(rice))
            v = sum(int(b[bit + rice + j]) << j for j in range(bits))
            bit += rice + bits
            p += (q << rice) | low
            out[p] = v + 1
            p += 1
    return out


BIAS_INDEX_BITS = (1, 2, 4, 8)  # a power of two: an index never spans two words


@dataclass(frozen=True)
class BiasCodebookEncoding:
    """A layer's bias as K shared values: one index per output channel, b bits each (b in
    BIAS_INDEX_BITS, the fewest that hold K), packed into 32-bit words, and the K float32
    values. wl_bias_decode_f32 decodes it into the arena just before the layer runs."""

    indices: np.ndarray  # uint32 per channel, 0..K-1
    codebook: np.ndarray  # float32 [K]
    kind: str = "bias_codebook"

    @staticmethod
    def index_bits(clusters: int) -> int:
        return next(b for b in BIAS_INDEX_BITS if clusters <= 1 << b)

    @property
    def bits(self) -> int:
        return self.index_bits(int(self.codebook.size))

    @property
    def positions(self) -> int:
        return int(self.indices.size)

    def decode(self) -> np.ndarray:
        return np.asarray(self.codebook, np.float32)[self.indices]

    @classmethod
    def from_words(cls, words: np.ndarray, codebook: np.ndarray, positions: int) -> "BiasCodebookEncoding":
        """The encoding whose words() these are (the inverse of words())."""
        bits = cls.index_bits(int(codebook.size))
        per = 32 // bits
        shifts = (np.arange(per, dtype=np.uint32) * np.uint32(bits))[None, :]
        idx = (np.asarray(words, np.uint32)[:, None] >> shifts) & np.uint32((1 << bits) - 1)
        return cls(idx.reshape(-1)[:positions].astype(np.uint32), np.asarray(codebook, np.float32))

    def words(self) -> np.ndarray:
        """The indices as the firmware reads them: index i in bits [b*(i % (32/b)), ...) of word i / (32/b)."""
        per = 32 // self.bits
        v = np.zeros(-(-self.positions // per) * per, np.uint64)
        v[:self.positions] = self.indices
        shifts = (np.arange(per, dtype=np.uint64) * np.uint64(self.bits))[None, :]
        return (v.reshape(-1, per) << shifts).sum(axis=1).astype(np.uint32)

    @staticmethod
    def bytes_for(positions: int, clusters: int) -> int:
        per = 32 // BiasCodebookEncoding.index_bits(clusters)
        return 4 * -(-positions // per) + 4 * clusters

    def nbytes(self) -> int:
        return self.bytes_for(self.positions, int(self.codebook.size))

    def dense_bytes(self) -> int:
        return 4 * self.positions


@dataclass(frozen=True)
class BloomierEncoding:
    table: BloomierTable
    codebook: np.ndarray  # float32 [K], or int8 in the weight scale of an int8 layer
    kept: int  # keys stored
    false_positives: int  # pruned positions whose query gives a non-zero weight
    queried: np.ndarray | None = field(default=None, repr=False, compare=False)  # table.query(), if already known
    kind: str = "bloomier"

    @property
    def positions(self) -> int:
        return self.table.positions

    def words(self) -> np.ndarray:
        return self.queried if self.queried is not None else self.table.query()

    def decode(self) -> np.ndarray:
        w = self.words()
        table = np.zeros(1 << self.table.bits, self.codebook.dtype)
        table[1:self.codebook.size + 1] = self.codebook
        return table[w]

    def nbytes(self) -> int:
        return self.table.cell_bytes() + 4 * int(self.table.block_word.size) + codebook_bytes(self.codebook) + STRUCT_BYTES

    def dense_bytes(self) -> int:
        return self.positions * element_bytes(self.codebook)

    def c_arrays(self) -> list[CArray]:
        return [CArray("cells", "uint32_t", stream_words(self.table.packed_cells())), CArray("block_word", "uint32_t", self.table.packed_block_word()),
                CArray("codebook", codebook_ctype(self.codebook), self.codebook)]

    def c_fields(self) -> dict:
        t = self.table
        return {"kind": ENC_BLOOMIER, "bits": t.bits, "clusters": int(self.codebook.size), "hashes": t.hashes,
                "seed": t.seed, "positions": t.positions, "block_groups": t.block_groups}
