"""Compression: per layer, prune by magnitude, share weights (k-means), and
store the result in the smallest encoding that honours the settings: a
Bloomier table (Weightless), dense cluster indices, or float32.

`compress_graph` replaces each compressed weight tensor's data by its decoded
weights (so the graph is the decoded model, false positives included) and
records the encoding in `graph.encodings`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ..ir import Graph, Node
from ..lowering import WeightLayout, weight_layout
from .bloomier import build_table
from .encodings import BloomierEncoding, CodebookEncoding, DenseEncoding
from .prune import kmeans_1d, magnitude_masks
from .settings import CompressionSettings, LayerSettings, make_settings

__all__ = ["CompressionSettings", "LayerReport", "compress_graph", "make_settings"]


@dataclass
class LayerReport:
    name: str  # the node
    tensor: str
    encoding: str
    positions: int
    kept: int
    clusters: int | None
    bits: int | None
    cells: int | None
    cells_per_key: float | None
    false_positives: int
    bytes: int
    float32_bytes: int

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _candidates(graph: Graph) -> list[tuple[Node, str, WeightLayout]]:
    uses: dict[str, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    found = []
    for node in graph.nodes:
        wl = weight_layout(node, graph)
        if wl is not None and uses.get(wl[0], 0) == 1:  # shared weights stay dense
            found.append((node, *wl))
    return found


def compress_graph(graph: Graph, settings: CompressionSettings, progress: Callable[[str], None] = lambda _: None) -> list[LayerReport]:
    cands = _candidates(graph)
    known = {n.name for n, _, _ in cands} | {t for _, t, _ in cands}
    unknown = sorted(set(settings.layers) - known)
    if unknown:
        raise OptionError(f"the settings name layer(s) {', '.join(unknown)}, which have no compressible weights; "
                          f"compressible: {', '.join(n.name for n, _, _ in cands) or 'none'}")
    per_layer = [settings.for_layer(n.name, t) for n, t, _ in cands]
    active = [i for i, (s, (_, _, lay)) in enumerate(zip(per_layer, cands))
              if s.encoding != "dense" and lay.positions >= s.min_positions]
    weights = [np.asarray(graph.const(cands[i][1]), np.float32) for i in active]
    masks = magnitude_masks(weights, [per_layer[i].density for i in active] if settings.prune == "layer"
                            else per_layer[active[0]].density if active else 1.0, settings.prune)
    reports: list[LayerReport] = []
    mask_of = dict(zip(active, masks))
    for i, (node, tensor, layout) in enumerate(cands):
        s = per_layer[i]
        w = np.asarray(graph.const(tensor), np.float32)
        if i not in mask_of:
            reports.append(LayerReport(node.name, tensor, "dense", layout.positions, layout.positions, None, None, None, None,
                                       0, 4 * layout.positions, 4 * layout.positions))
            continue
        progress(f"compressing {node.name} ({layout.positions:,} weights)")
        enc, report = encode_layer(node.name, tensor, w, mask_of[i], layout, s)
        if not isinstance(enc, DenseEncoding):
            graph.encodings[tensor] = enc
            graph.tensors[tensor].data = layout.unwalk(enc.decode())
        reports.append(report)
    return reports


def encode_layer(name: str, tensor: str, w: np.ndarray, mask: np.ndarray, layout: WeightLayout,
                 s: LayerSettings) -> tuple[object, LayerReport]:
    flat_w = layout.walk(w)
    flat_keep = layout.walk(mask.astype(np.float32)) > 0.5
    kept = int(flat_keep.sum())
    n = layout.positions
    if kept < s.clusters:
        raise OptionError(f"layer '{name}': {s.clusters} clusters are more than its {kept} kept weights; "
                          f"lower the clusters or raise the density")
    codebook, idx = kmeans_1d(flat_w[flat_keep], s.clusters)
    indices = np.zeros(n, np.uint32)
    indices[flat_keep] = idx.astype(np.uint32) + 1
    dense_bytes = 4 * n
    book = CodebookEncoding(indices, codebook)
    options: list = [book]
    if s.encoding in ("auto", "bloomier"):
        estimate = s.cells_per_key * kept * s.bits / 8 + 4 * codebook.size
        if s.encoding == "bloomier" or estimate < book.nbytes():
            keys = np.flatnonzero(flat_keep)
            table = build_table(n, keys, indices[keys], s.bits, hashes=s.hashes, cells_per_key=s.cells_per_key, seed=s.seed)
            words = table.query()
            fp = int(np.count_nonzero((words[~flat_keep] >= 1) & (words[~flat_keep] <= codebook.size)))
            options.append(BloomierEncoding(table, codebook, kept, fp, words))
    if s.encoding == "bloomier":
        enc = options[-1]
    elif s.encoding == "codebook":
        enc = book
    else:
        enc = min(options, key=lambda e: e.nbytes())
        if enc.nbytes() >= dense_bytes:
            enc = DenseEncoding(flat_w)
    if isinstance(enc, BloomierEncoding):
        t = enc.table
        report = LayerReport(name, tensor, "bloomier", n, kept, int(codebook.size), t.bits, t.cells,
                             round(t.cells / max(1, kept), 4), enc.false_positives, enc.nbytes(), dense_bytes)
    elif isinstance(enc, CodebookEncoding):
        report = LayerReport(name, tensor, "codebook", n, kept, int(codebook.size), enc.bits, None, None, 0,
                             enc.nbytes(), dense_bytes)
    else:
        report = LayerReport(name, tensor, "dense", n, n, None, None, None, None, 0, dense_bytes, dense_bytes)
    return enc, report
