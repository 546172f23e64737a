"""A bidirectional LSTM or GRU as two one-direction layers and a Concat of their outputs, so that
each direction's W and R are tensors of their own that Weightless tables can hold (a table is
read from its first row; the recurrent kernel reads one per direction). Done only when a model
is compressed: the Concat copies Y, which a dense model need not pay."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Node, Tensor
from ..op_semantics import text_attr


def split_directions(graph: Graph) -> int:
    """Rewrite every bidirectional LSTM / GRU whose W, R, B (and peepholes) are constants and
    whose sequence_lens is absent; returns how many."""
    done = 0
    for node in [n for n in graph.nodes if n.op in ("LSTM", "GRU")]:
        if text_attr(node, "direction", "forward") != "bidirectional":
            continue
        ins = list(node.inputs) + [""] * (8 - len(node.inputs))
        consts = [graph.const(ins[k]) if ins[k] else None for k in (1, 2, 3, 7)]
        if consts[0] is None or consts[1] is None or (ins[3] and consts[2] is None) or (ins[7] and consts[3] is None) \
                or ins[4]:
            continue
        layout = int(node.attrs.get("layout", 0))
        state_axis, y_axis = (1, 2) if layout else (0, 1)
        acts = list(node.attrs.get("activations", ()))
        prefix = f"{node.name}::dir"
        new_nodes: list[Node] = []
        outs = [[], [], []]
        for d, direction in enumerate(("forward", "reverse")):
            d_ins = [ins[0]]
            for k in (1, 2, 3):
                if not ins[k]:
                    d_ins.append("")
                    continue
                name = f"{prefix}{d}_{k}"
                data = np.asarray(graph.const(ins[k]))[d:d + 1]
                graph.tensors[name] = Tensor(name, tuple(data.shape), np.ascontiguousarray(data))
                d_ins.append(name)
            d_ins.append("")  # sequence_lens
            for k in (5, 6):  # initial h and c: this direction's slice
                if k >= len(node.inputs) or not ins[k] or (node.op == "GRU" and k == 6):
                    d_ins.append("")
                    continue
                src = graph.tensors[ins[k]]
                shape = list(src.shape)
                shape[state_axis] = 1
                name = f"{prefix}{d}_state{k}"
                if src.is_const:
                    data = np.take(src.data, [d], axis=state_axis)
                    graph.tensors[name] = Tensor(name, tuple(data.shape), np.ascontiguousarray(data))
                else:
                    bounds = {f"{name}_{b}": np.array([v], np.int64) for b, v in (("s", d), ("e", d + 1), ("a", state_axis))}
                    for bn, bv in bounds.items():
                        graph.tensors[bn] = Tensor(bn, (1,), bv)
                    graph.tensors[name] = Tensor(name, tuple(shape))
                    new_nodes.append(Node("Slice", f"{name}_slice", [ins[k], *bounds], [name], {}))
                d_ins.append(name)
            if ins[7]:
                name = f"{prefix}{d}_7"
                data = np.asarray(graph.const(ins[7]))[d:d + 1]
                graph.tensors[name] = Tensor(name, tuple(data.shape), np.ascontiguousarray(data))
                d_ins.append(name)
            while d_ins and not d_ins[-1]:
                d_ins.pop()
            attrs = {k: v for k, v in node.attrs.items() if k != "activations"}
            attrs["direction"] = direction
            if acts:
                half = len(acts) // 2
                attrs["activations"] = acts[d * half:(d + 1) * half]
            d_outs = []
            for j, out in enumerate(node.outputs):
                if not out:
                    d_outs.append("")
                    continue
                shape = list(graph.tensors[out].shape)
                shape[y_axis if j == 0 else state_axis] = 1
                name = f"{prefix}{d}_out{j}"
                graph.tensors[name] = Tensor(name, tuple(shape))
                d_outs.append(name)
                outs[j].append(name)
            new_nodes.append(Node(node.op, f"{node.name}/{direction}", d_ins, d_outs, attrs))
        for j, out in enumerate(node.outputs):
            if out:
                new_nodes.append(Node("Concat", f"{node.name}/concat{j}", outs[j], [out],
                                      {"axis": y_axis if j == 0 else state_axis}))
        at = graph.nodes.index(node)
        graph.nodes[at:at + 1] = new_nodes
        done += 1
    if done:
        graph.prune()
    return done
