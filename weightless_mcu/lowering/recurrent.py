"""LSTM and GRU (ONNX semantics: forward, reverse and bidirectional, layout 0 and 1, initial
states as inputs or constants, Y / Y_h / Y_c, the default activations, clip, GRU's
linear_before_reset, LSTM's peepholes), float32, one kernel call each (wl_recurrent_f32.c).

The weights are laid out for the fully connected kernel the recurrent one calls per step:
each direction's W and R in row blocks (lowering/layout.py), GRU's R as its update and reset
rows, then its hidden rows; the biases of W and R summed where the math allows (all of LSTM's;
GRU's but the hidden gate's R bias under linear_before_reset)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedOpError
from ..ir import Graph, Node
from ..op_semantics import text, text_attr
from . import register, register_weights
from .layout import WeightLayout, pack_rows
from .step import ConstArray, Lowered, Step

DEFAULT_ACTIVATIONS = {"LSTM": ("sigmoid", "tanh", "tanh"), "GRU": ("sigmoid", "tanh")}
GATES = {"LSTM": 4, "GRU": 3}


@dataclass(frozen=True)
class RecurrentParams:
    seq: int
    batch: int
    input: int
    hidden: int
    directions: int
    reverse: int  # the one direction runs backward (direction "reverse")
    layout: int  # 0: [seq, batch, ...], 1: [batch, seq, ...]
    linear_before_reset: int  # GRU
    clip: float  # > 0: every gate's pre-activation clamped to [-clip, clip]


def _operand(node: Node, k: int) -> str:
    return node.inputs[k] if len(node.inputs) > k and node.inputs[k] else ""


@register_weights("LSTM", "GRU")
def recurrent_weights(node: Node, graph: Graph):
    """W and R of a one-direction layer, each walked as the fully connected kernel the recurrent
    one calls every step reads it: [gates x hidden] rows of [inputs] (W) or of [hidden] (R); a
    GRU's R table without linear_before_reset is read twice a step (its hidden rows multiply
    r * h). (A bidirectional layer is split into one layer per direction when it is compressed:
    compress/directions.py.)"""
    w, r = graph.const(node.inputs[1]), graph.const(node.inputs[2])
    if w is None or w.ndim != 3 or w.shape[0] != 1 or graph.tensors[node.inputs[0]].is_const:
        return None
    found = [(node.inputs[1], WeightLayout(tuple(w.shape), 1, False, False, row_axes=2))]
    if r is not None and r.ndim == 3:
        found.append((node.inputs[2], WeightLayout(tuple(r.shape), 1, False, False, row_axes=2)))
    return found


@register("LSTM", "GRU")
def lower_recurrent(node: Node, graph: Graph) -> Lowered:
    op = node.op
    x = node.inputs[0]
    w, r = graph.const(node.inputs[1]), graph.const(node.inputs[2])
    if w is None or r is None:
        raise UnsupportedOpError(f"{node.describe()}: only constant W and R are supported")
    direction = text_attr(node, "direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise UnsupportedOpError(f"{node.describe()}: direction '{direction}' is not one of forward, reverse, bidirectional")
    nd = 2 if direction == "bidirectional" else 1
    acts = tuple(text(a).lower() for a in node.attrs.get("activations", ()))
    if acts and acts != DEFAULT_ACTIVATIONS[op] * nd:
        raise UnsupportedOpError(f"{node.describe()}: activations {', '.join(acts)} are not supported; only the default "
                                 f"{', '.join(DEFAULT_ACTIVATIONS[op])}")
    if int(node.attrs.get("input_forget", 0)):
        raise UnsupportedOpError(f"{node.describe()}: input_forget is not supported")
    layout = int(node.attrs.get("layout", 0))
    shape = graph.tensors[x].shape
    if len(shape) != 3:
        raise UnsupportedOpError(f"{node.describe()}: the input must be 3-D, not of shape {list(shape)}")
    seq, batch = (shape[1], shape[0]) if layout else (shape[0], shape[1])
    n_in = shape[2]
    g = GATES[op]
    hidden = int(node.attrs.get("hidden_size", r.shape[-1]))
    if w.shape != (nd, g * hidden, n_in) or r.shape != (nd, g * hidden, hidden):
        raise UnsupportedOpError(f"{node.describe()}: W {list(w.shape)} or R {list(r.shape)} do not fit {nd} direction(s), "
                                 f"hidden size {hidden} and {n_in} inputs")
    seq_lens = _operand(node, 4)
    if seq_lens:
        lens = graph.const(seq_lens)
        if lens is None or not np.all(np.asarray(lens) == seq):
            raise UnsupportedOpError(f"{node.describe()}: sequence_lens other than the whole sequence ({seq}) are not supported")
    bname = _operand(node, 3)
    b = graph.const(bname) if bname else np.zeros((nd, 2 * g * hidden), np.float32)
    if b is None:
        raise UnsupportedOpError(f"{node.describe()}: only a constant B is supported")
    b = np.asarray(b, np.float64).reshape(nd, 2, g * hidden)
    lbr = int(node.attrs.get("linear_before_reset", 0)) if op == "GRU" else 0
    bias = b[:, 0] + b[:, 1]
    bias_h = np.zeros((nd, hidden))
    if lbr:  # the hidden gate's R bias is inside the reset gate's product
        bias[:, 2 * hidden:] = b[:, 0, 2 * hidden:]
        bias_h = b[:, 1, 2 * hidden:]
    w_packed = np.concatenate([pack_rows(w[d]) for d in range(nd)])
    if op == "GRU":
        r_packed = np.concatenate([np.concatenate([pack_rows(r[d][:2 * hidden]), pack_rows(r[d][2 * hidden:])])
                                   for d in range(nd)])
    else:
        r_packed = np.concatenate([pack_rows(r[d]) for d in range(nd)])
    encoding, r_encoding = graph.encodings.get(node.inputs[1]), graph.encodings.get(node.inputs[2])
    consts = [] if encoding is not None else [ConstArray("w", w_packed)]
    consts += [] if r_encoding is not None else [ConstArray("r", r_packed)]
    consts += [ConstArray("bias", bias.astype(np.float32).reshape(-1))]
    if op == "GRU" and lbr:
        consts.append(ConstArray("bias_h", bias_h.astype(np.float32).reshape(-1)))
    if op == "LSTM" and _operand(node, 7):
        peep = graph.const(_operand(node, 7))
        if peep is None:
            raise UnsupportedOpError(f"{node.describe()}: only constant peepholes are supported")
        consts.append(ConstArray("peephole", np.asarray(peep, np.float32).reshape(-1)))
    # initial states: activations, or constants in their place (ConstArray "input<k>")
    states = [_operand(node, 5)] + ([_operand(node, 6)] if op == "LSTM" else [])
    inputs = [x]
    for k, name in enumerate(states, start=1):
        data = graph.const(name) if name else None
        if data is not None:
            consts.append(ConstArray(f"input{k}", np.asarray(data, np.float32).reshape(-1)))
        inputs.append(name)
    # outputs nothing reads are not written (they would take arena)
    consumers = graph.consumers()
    n_out = 2 if op == "GRU" else 3  # Y, Y_h (, Y_c)
    outs = [o if o and (o in graph.outputs or consumers.get(o)) else "" for o in (list(node.outputs) + [""] * 3)[:n_out]]
    if not any(outs):
        raise UnsupportedOpError(f"{node.describe()}: none of its outputs is used")
    first = next(o for o in outs if o)
    params = RecurrentParams(seq, batch, n_in, hidden, nd, int(direction == "reverse"), layout, lbr,
                             float(node.attrs.get("clip", 0.0)))
    # gates (and, for a GRU, R's product) and the state: wl_kernels.h
    scratch = 4 * ((4 * hidden + 2 * nd * batch * hidden) if op == "LSTM" else (7 * hidden + nd * batch * hidden))
    encoded = encoding is not None or r_encoding is not None
    kernel = op.lower() + ("_encoded" if encoded else "")
    return Lowered([Step(kernel, node.name, tuple(inputs), first, params, tuple(consts), scratch=scratch,
                         encoding=encoding, extra_encodings=(("r", r_encoding),) if r_encoding is not None else (),
                         extra_outputs=tuple(outs))])
