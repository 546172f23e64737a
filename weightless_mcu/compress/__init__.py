"""Compression: per layer, prune by magnitude, share weights (k-means), and
store the result in the smallest encoding that honours the settings: a
Bloomier table (Weightless), dense cluster indices, or float32.

`compress_graph` replaces each compressed weight tensor's data by its decoded
weights (so the graph is the decoded model, false positives included) and
records the encoding in `graph.encodings`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..errors import OptionError
from ..ir import Graph, Node
from ..lowering import WeightLayout, weight_layouts
from .directions import split_directions
from .bloomier import build_table
from .channels import channel_chain, cut_channels, strongest_channels
from .encodings import BloomierEncoding, CodebookEncoding, DenseEncoding, SparseEncoding
from .prune import kmeans_1d, magnitude_masks
from .settings import PROTECT_OUTPUT_SHARE, PROTECT_SHARE, CompressionSettings, LayerSettings, make_settings

__all__ = ["CompressionSettings", "LayerReport", "candidates", "protection_note", "dense_report", "plan_layers", "compress_graph", "encode_indices", "encode_layer", "graph_reports", "layer_report",
           "make_settings", "share_weights"]


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
    dense_bytes: int | None = None  # stored plainly in the layer's own type: float32, or int8 (None: float32)

    def __post_init__(self):
        if self.dense_bytes is None:
            self.dense_bytes = self.float32_bytes

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def candidates(graph: Graph) -> list[tuple[Node, str, WeightLayout]]:
    uses: dict[str, int] = {}
    for n in graph.nodes:
        for i in n.inputs:
            uses[i] = uses.get(i, 0) + 1
    found = []
    for node in graph.nodes:
        for wl in weight_layouts(node, graph):
            if uses.get(wl[0], 0) == 1:  # shared weights stay dense
                found.append((node, *wl))
    return found


def plan_layers(graph: Graph, settings: CompressionSettings):
    """The compressible layers, their settings, and which of them to compress."""
    cands = candidates(graph)
    known = {n.name for n, _, _ in cands} | {t for _, t, _ in cands}
    unknown = sorted(set(settings.layers) - known)
    if unknown:
        raise OptionError(f"the settings name layer(s) {', '.join(unknown)}, which have no compressible weights; "
                          f"compressible: {', '.join(n.name for n, _, _ in cands) or 'none'}")
    per_layer = [settings.for_layer(n.name, t) for n, t, _ in cands]
    for i in protected_layers(graph, settings, cands, per_layer):
        per_layer[i] = replace(per_layer[i], density=1.0, encoding="codebook")
    active = [i for i, (s, (_, _, lay)) in enumerate(zip(per_layer, cands))
              if s.encoding != "dense" and lay.positions >= s.min_positions]
    return cands, per_layer, active


def protected_layers(graph: Graph, settings: CompressionSettings, cands, per_layer: list[LayerSettings]) -> list[int]:
    """With protect = auto: the output layer when it holds under PROTECT_OUTPUT_SHARE of the
    model's weights, and any layer under PROTECT_SHARE, unless the layer's own settings name a
    density or an encoding (settings.py)."""
    if settings.protect != "auto" or "encoding" in settings.given:  # an encoding forced for every layer is obeyed
        return []
    outputs = output_layers(graph, cands)
    total = sum(layout.positions for _, _, layout in cands)
    found = []
    for i, (node, tensor, layout) in enumerate(cands):
        own = set(settings.layers.get(tensor, {})) | set(settings.layers.get(node.name, {}))
        share = layout.positions / max(1, total)
        small = share < PROTECT_SHARE or (i in outputs and share < PROTECT_OUTPUT_SHARE)
        if small and not own & {"density", "encoding"} and per_layer[i].encoding != "dense" \
                and layout.positions >= per_layer[i].min_positions:
            found.append(i)
    return found


def protection_note(cands, protected: list[int]) -> str | None:
    """The progress line naming the protected layers (None: there are none)."""
    if not protected:
        return None
    names = [cands[i][0].name for i in protected]
    return (f"{', '.join(names)}: every weight kept as a dense cluster index (protected by default: the output layer "
            f"under {PROTECT_OUTPUT_SHARE:.0%} of the model's weights, any layer under {PROTECT_SHARE:.0%}; their own "
            f"density or encoding, or --protect none, compresses them like the others)")


def output_layers(graph: Graph, cands) -> set[int]:
    """The candidates from whose output no other candidate can be reached: the layers that make the outputs."""
    consumers = graph.consumers()
    layer_nodes = {id(n) for n, _, _ in cands}
    found = set()
    for i, (node, _, _) in enumerate(cands):
        todo, seen, last = list(node.outputs), set(), True
        while todo and last:
            for user in consumers.get(todo.pop(), []):
                if id(user) in layer_nodes:
                    last = False
                elif id(user) not in seen:
                    seen.add(id(user))
                    todo.extend(user.outputs)
        if last:
            found.add(i)
    return found


def dense_report(node: Node, tensor: str, layout: WeightLayout) -> LayerReport:
    return LayerReport(node.name, tensor, "dense", layout.positions, layout.positions, None, None, None, None,
                       0, 4 * layout.positions, 4 * layout.positions)


def compress_graph(graph: Graph, settings: CompressionSettings, progress: Callable[[str], None] = lambda _: None) -> list[LayerReport]:
    if settings.defaults.encoding != "dense" and split_directions(graph):
        progress("bidirectional recurrent layers split into one layer per direction, so that each has tables of its own")
    cands, per_layer, active = plan_layers(graph, settings)
    for i in active:  # structured pruning first: it changes the shapes of the layers after
        node = cands[i][0]
        if per_layer[i].channels < 1.0:
            chain = channel_chain(graph, node)
            if chain is None:
                progress(f"{node.name}: channels kept (its output does not lead into one layer that can absorb them)")
                continue
            keep = strongest_channels(graph, chain, per_layer[i].channels)
            cut_channels(graph, chain, keep)
            progress(f"{node.name}: {int(keep.sum())} of {keep.size} output channels kept")
    if any(per_layer[i].channels < 1.0 for i in active):
        cands, per_layer, active = plan_layers(graph, settings)
    protected = protected_layers(graph, settings, cands, per_layer)  # as plan_layers found them
    note = protection_note(cands, protected)
    if note:
        progress(note)
    if settings.prune == "layer":
        weights = [np.asarray(graph.const(cands[i][1]), np.float32) for i in active]
        mask_of = dict(zip(active, magnitude_masks(weights, [per_layer[i].density for i in active])))
    else:  # one threshold over the layers that are pruned; protected ones keep every weight
        pruned = [i for i in active if i not in protected]
        weights = [np.asarray(graph.const(cands[i][1]), np.float32) for i in pruned]
        mask_of = dict(zip(pruned, magnitude_masks(weights, settings.defaults.density, "global")))
        mask_of.update({i: np.ones(graph.const(cands[i][1]).shape, bool) for i in active if i not in mask_of})
    reports: list[LayerReport] = []
    for i, (node, tensor, layout) in enumerate(cands):
        s = per_layer[i]
        w = np.asarray(graph.const(tensor), np.float32)
        if i not in mask_of:
            reports.append(dense_report(node, tensor, layout))
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
    """Prune (mask), share (k-means) and encode one layer's weights."""
    flat_w = layout.walk(w)
    flat_keep = layout.walk(mask.astype(np.float32)) > 0.5
    indices, codebook = share_weights(name, flat_w, flat_keep, s.clusters)
    return encode_indices(name, tensor, indices, codebook, s, s.seed, flat_w, layout.block_positions)


def share_weights(name: str, flat_w: np.ndarray, flat_keep: np.ndarray, clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """K-means of the kept weights: (index per position, 0 = pruned, v = codebook[v-1]; codebook)."""
    kept = int(flat_keep.sum())
    if kept < clusters:
        raise OptionError(f"layer '{name}': {clusters} clusters are more than its {kept} kept weights; "
                          f"lower the clusters or raise the density")
    codebook, idx = kmeans_1d(flat_w[flat_keep], clusters)
    indices = np.zeros(flat_w.size, np.uint32)
    indices[flat_keep] = idx.astype(np.uint32) + 1
    return indices, codebook


def encode_indices(name: str, tensor: str, indices: np.ndarray, codebook: np.ndarray, s: LayerSettings, seed: int,
                   dense: np.ndarray | None = None, block: int | None = None) -> tuple[object, LayerReport]:
    """Store shared weights (index per position in walk order) in the encoding
    the settings ask for, or the smallest: a Bloomier table (with false
    positives), dense indices, a Rice-coded sparse stream (given the kernel's block of
    positions), or (given the dense weights) float32."""
    n = indices.size
    keep = indices > 0
    kept = int(keep.sum())
    dense_bytes = 4 * n
    book = CodebookEncoding(indices, codebook)
    options: list = [book]
    sparse = None
    if block is not None and s.encoding in ("auto", "sparse"):
        sparse = SparseEncoding(indices, codebook, block)
        options.append(sparse)
    elif s.encoding == "sparse":
        raise OptionError(f"layer '{name}': the sparse encoding needs the layer's weight layout")
    if s.encoding in ("auto", "bloomier"):
        estimate = s.cells_per_key * kept * s.bits / 8 + 4 * codebook.size
        if s.encoding == "bloomier" or estimate < min(e.nbytes() for e in options):
            keys = np.flatnonzero(keep)
            table = build_table(n, keys, indices[keys], s.bits, hashes=s.hashes, cells_per_key=s.cells_per_key, seed=seed)
            words = table.query()
            wrong = np.flatnonzero(words[keys] != indices[keys])
            if wrong.size:  # a solver fault would silently change the decoded model
                raise RuntimeError(f"layer '{name}': the Bloomier table returns the wrong index at {wrong.size} of its "
                                   f"{keys.size} kept positions (first: position {int(keys[wrong[0]])})")
            fp = int(np.count_nonzero((words[~keep] >= 1) & (words[~keep] <= codebook.size)))
            options.append(BloomierEncoding(table, codebook, kept, fp, words))
    if s.encoding == "bloomier":
        enc = options[-1]
    elif s.encoding == "codebook":
        enc = book
    elif s.encoding == "sparse":
        enc = sparse
    else:
        enc = min(options, key=lambda e: e.nbytes())
        if dense is not None and enc.nbytes() >= dense_bytes:
            enc = DenseEncoding(dense)
    return enc, layer_report(name, tensor, enc, kept)


def graph_reports(graph: Graph) -> list[LayerReport]:
    """The layers' reports of a graph compressed already, read off its encodings."""
    out = []
    for node, tensor, layout in candidates(graph):
        enc = graph.encodings.get(tensor)
        if enc is None:
            out.append(dense_report(node, tensor, layout))
        else:
            kept = enc.kept if isinstance(enc, BloomierEncoding) else int(np.count_nonzero(enc.indices))
            out.append(layer_report(node.name, tensor, enc, kept))
    return out


def layer_report(name: str, tensor: str, enc, kept: int) -> LayerReport:
    """The report of a layer stored in enc (kept: its non-zero weights)."""
    n = enc.positions
    float32_bytes = 4 * n
    if isinstance(enc, BloomierEncoding):
        t = enc.table
        return LayerReport(name, tensor, "bloomier", n, kept, int(enc.codebook.size), t.bits, t.cells,
                           round(t.cells / max(1, kept), 4), enc.false_positives, enc.nbytes(), float32_bytes,
                           enc.dense_bytes())
    if isinstance(enc, (CodebookEncoding, SparseEncoding)):
        return LayerReport(name, tensor, enc.kind, n, kept, int(enc.codebook.size), enc.bits, None, None, 0,
                           enc.nbytes(), float32_bytes, enc.dense_bytes())
    return LayerReport(name, tensor, "dense", n, n, None, None, None, None, 0, float32_bytes, float32_bytes)
