"""Weightless tables on int8 layers.

A compressed float model is quantized with one scale per compressed weight tensor (symmetric,
zero point 0). Then every position that holds the shared value c_k holds the same int8 value
round(c_k / s) in the int8 model, and a zero weight stays 0: the int8 weights are the layer's
{position -> index} map unchanged, with K int8 values in place of the float ones. The table is
kept as it is (false positives included) and only the codebook changes.

The int8 codebook is read off the quantized model's own weights, not recomputed, and every
position of every layer is checked against it, so the firmware decodes exactly the int8 weights
onnxruntime runs.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..ir import Graph
from ..lowering.conv import conv_params
from ..lowering.layout import WeightLayout
from ..quantized import QCONV, QFC
from . import LayerReport, candidates, layer_report


def per_tensor_overrides(graph: Graph) -> dict:
    """onnxruntime quantize_static's TensorQuantOverrides: one symmetric scale for each compressed
    weight tensor (the rest keeps the per-channel default)."""
    return {tensor: [{"symmetric": True}] for tensor in graph.encodings}


def int8_layout(graph: Graph, node) -> tuple[np.ndarray, WeightLayout]:
    """An int8 layer's weights (less their zero points) and the order the float kernels walk them."""
    w = np.asarray(graph.const(node.inputs[1]))
    if node.op == QFC:  # rows (out, in), as the float layer's walk takes them
        return w, WeightLayout(tuple(w.shape), 1, False, False)
    g = conv_params(node, graph)
    return w, WeightLayout(tuple(w.shape), g.group, False, g.group == g.in_c == g.out_c)


def quantized_encoding(name: str, enc, w: np.ndarray, layout: WeightLayout):
    """The encoding enc (of the float layer) with the codebook that decodes to w at every position,
    of w's type: int8 for an int8 layer, float32 for one left in float32 on dequantized weights; a
    RuntimeError where no codebook does (the weights were not quantized per tensor)."""
    int8 = np.issubdtype(np.asarray(w).dtype, np.integer)
    flat = layout.walk(w).astype(np.int64) if int8 else layout.walk(w)
    words = enc.words() if hasattr(enc, "words") else enc.indices
    k = int(enc.codebook.size)
    if flat.size != words.size:
        raise RuntimeError(f"layer '{name}': its quantized weights have {flat.size} positions, its table {words.size}")
    known = (words >= 1) & (words <= k)
    if np.any(flat[~known] != 0):
        raise RuntimeError(f"layer '{name}': a weight that decodes to 0 is not 0 in the quantized model")
    idx = words[known].astype(np.int64) - 1
    vals = flat[known]
    book = np.zeros(k, flat.dtype)  # a shared value no position decodes to: any value serves
    book[idx] = vals
    if np.any(book[idx] != vals):
        raise RuntimeError(f"layer '{name}': one shared value became several values (quantized per channel?)")
    out = dataclasses.replace(enc, codebook=book.astype(np.int8 if int8 else np.float32))
    assert np.array_equal(out.decode().astype(flat.dtype), flat)
    return out


def int8_tables(float_graph: Graph, reports: list[LayerReport], graph: Graph,
                forced: frozenset[str] = frozenset()) -> list[LayerReport]:
    """Give the int8 graph (the quantized decoded model) the tables of the float graph it was made
    from, with int8 codebooks; the layers' reports for the int8 model. A table that takes at least
    the bytes of the layer's plain int8 weights is dropped for them (the same weights), unless the
    layer is in forced (its encoding given by the user)."""
    nodes = {n.name: n for n in graph.nodes}
    layouts = {n.name: layout for n, _, layout in candidates(graph)}  # layers left in float32
    out = []
    for r in reports:
        enc = float_graph.encodings.get(r.tensor)
        node = nodes.get(r.name)
        if node is not None and node.op in (QFC, QCONV):
            w, layout = int8_layout(graph, node)
            n = int(w.size)
            enc8 = None if enc is None else quantized_encoding(r.name, enc, w, layout)
            if enc8 is None or (enc8.nbytes() >= n and r.name not in forced):  # plain int8 weights
                kept = n if enc is None else int(np.count_nonzero(w))
                out.append(LayerReport(r.name, node.inputs[1], "dense", n, kept, None, None, None, None, 0, n, 4 * n, n))
                continue
            graph.encodings[node.inputs[1]] = enc8
            out.append(layer_report(r.name, node.inputs[1], enc8, r.kept))
        elif node is not None and enc is not None and r.name in layouts:
            # A layer left in float32 (not folded into an int8 one): its weights are the quantized
            # ones dequantized, still K values on the same positions: the table with those values.
            tensor = node.inputs[1]
            encf = quantized_encoding(r.name, enc, np.asarray(graph.const(tensor), np.float32), layouts[r.name])
            graph.encodings[tensor] = encf
            out.append(layer_report(r.name, tensor, encf, r.kept))
        elif enc is None:
            out.append(r)
        else:
            raise RuntimeError(f"layer '{r.name}' is not in the quantized model")
    return out
