"""Graph passes: constant folding, Identity/Dropout removal, MatMul+Add -> Gemm,
BatchNormalization folded into the preceding Conv/Gemm, Relu/Clip fused into
the node that produces their input.

Every pass takes a Graph and changes it in place; `run_passes` runs them all.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from .errors import FoldError, ShapeError, UnsupportedOpError
from .frontend import convert_nodes, initializer_array
from .ir import Graph, Node, Tensor, branch_graphs, outer_scope_names
from .op_semantics import ACT, activation, clip_bounds
from .quantized import fold_qdq
from .size_limits import MAX_FOLDED_ELEMENTS, MAX_TENSOR_ELEMENTS, made_elements

# Ops whose kernels can clamp their own outputs.
_FUSABLE_PRODUCERS = {"Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "BatchNormalization"}


def _rename_uses(graph: Graph, old: str, new: str) -> None:
    for n in graph.nodes:
        n.inputs = [new if i == old else i for i in n.inputs]


def _bypass(graph: Graph, node: Node) -> None:
    """Remove a node whose output equals its first input."""
    src, dst = node.inputs[0], node.outputs[0]
    graph.nodes.remove(node)
    if dst in graph.outputs:
        if src in graph.inputs or src in graph.outputs or graph.const(src) is not None:
            # Keep a graph output distinct from inputs, constants and other outputs.
            graph.nodes.append(Node("Identity", node.name, [src], [dst]))
            return
        for n in graph.nodes:
            n.outputs = [dst if o == src else o for o in n.outputs]
        _rename_uses(graph, src, dst)
    else:
        _rename_uses(graph, dst, src)


REMOVED_OPS = ("Identity", "Dropout")  # no kernel: the passes bypass them


def remove_identities(graph: Graph) -> None:
    for node in [n for n in graph.nodes if n.op in REMOVED_OPS]:
        if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1]:
            used = any(node.outputs[1] in n.inputs for n in graph.nodes) or node.outputs[1] in graph.outputs
            if used:
                raise UnsupportedOpError(f"{node.describe()}: its mask output is used; only inference-mode Dropout is supported")
        if node.op == "Dropout" and len(node.inputs) > 2 and node.inputs[2]:
            training = graph.const(node.inputs[2])
            ratio = graph.const(node.inputs[1]) if node.inputs[1] else np.float32(0.5)
            if training is None or (bool(np.asarray(training).reshape(-1)[0]) and (ratio is None or float(np.asarray(ratio).reshape(-1)[0]) != 0.0)):
                raise UnsupportedOpError(f"{node.describe()}: training-mode Dropout (random) is not supported; "
                                         f"export the model in inference mode")
        _bypass(graph, node)


def _dequantize(graph: Graph, node: Node) -> np.ndarray:
    """DequantizeLinear of a constant, y = (x - zero_point) * scale, as onnxruntime computes it:
    the difference exact, one float32 product. Done here because the IR holds integer
    constants as int64, which the reference evaluator does not take for this op."""
    if node.attrs.get("block_size", 0):
        raise UnsupportedOpError(f"{node.describe()}: blocked quantization (block_size) is not supported")
    x = np.asarray(graph.const(node.inputs[0]), np.int64)
    scale = np.asarray(graph.const(node.inputs[1]), np.float32)
    zp_name = node.inputs[2] if len(node.inputs) > 2 else ""
    zp = np.asarray(graph.const(zp_name), np.int64) if zp_name else np.zeros(scale.shape, np.int64)
    if zp.shape != scale.shape and not zp.size == scale.size == 1:
        raise ShapeError(f"{node.describe()}: zero point of shape {zp.shape} against scale of shape {scale.shape}")
    if scale.ndim == 1 and scale.size > 1:  # per-axis: scale and zero point run along `axis`
        axis = node.attrs.get("axis", 1)
        axis = axis + x.ndim if axis < 0 else axis
        if not 0 <= axis < x.ndim or x.shape[axis] != scale.size:
            raise ShapeError(f"{node.describe()}: {scale.size} scales do not fit axis {node.attrs.get('axis', 1)} of "
                             f"shape {x.shape}")
        view = [1] * x.ndim
        view[axis] = scale.size
        scale, zp = scale.reshape(view), zp.reshape(view)
    return ((x - zp).astype(np.float32) * scale).astype(np.float32)


def _evaluate(graph: Graph, node: Node) -> list[np.ndarray]:
    if node.op == "DequantizeLinear":
        return [_dequantize(graph, node)]
    inputs = [helper.make_tensor_value_info(f"i{k}", onnx.TensorProto.UNDEFINED, None) for k in range(len(node.inputs))]
    feeds = {}
    names = []
    for k, name in enumerate(node.inputs):
        if not name:
            names.append("")
            continue
        names.append(f"i{k}")
        feeds[f"i{k}"] = graph.tensors[name].data if graph.tensors[name].is_const else np.zeros(graph.tensors[name].shape, np.float32)
    outs = [f"o{k}" for k in range(len(node.outputs))]
    # tensor attributes (ConstantOfShape's value) are kept as arrays in the IR
    attrs = {k: numpy_helper.from_array(v) if isinstance(v, np.ndarray) else v
             for k, v in node.attrs.items() if not k.startswith("wl_")}
    onnx_node = helper.make_node(node.op, names, outs, **attrs)
    g = helper.make_graph([onnx_node], "fold", [i for i, n in zip(inputs, names) if n], [helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in outs])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", graph.opset)])
    return ReferenceEvaluator(model).run(None, feeds)


def _inline_if(graph: Graph, node: Node, condition: bool) -> None:
    """Replace an If whose condition is known (torch's legacy exporter writes one for a
    squeeze of a dynamic axis) by the nodes of the branch taken."""
    branch = node.attrs["then_branch" if condition else "else_branch"]
    for init in branch.initializer:
        arr = initializer_array(init)
        graph.tensors[init.name] = Tensor(init.name, tuple(arr.shape), arr)
    inner = convert_nodes(branch.node, graph.tensors, prefix=f"{node.name}/")
    links = [Node("Identity", f"{node.name}/out{k}", [vi.name], [out])
             for k, (vi, out) in enumerate(zip(branch.output, node.outputs)) if out]
    at = graph.nodes.index(node)
    graph.nodes[at:at + 1] = inner + links
    # An output another If's branches read by name (a voice detector's decoder nests them) keeps
    # its name: renaming reaches node inputs, not the branches.
    read_by_branches = set().union(*(outer_scope_names(n) for n in graph.nodes))
    for link in links:
        if link.outputs[0] not in read_by_branches:
            _bypass(graph, link)


def check_tensor_sizes(graph: Graph) -> None:
    for t in graph.tensors.values():
        if any(d < 0 for d in t.shape):
            raise ShapeError(f"tensor '{t.name}' has a negative dimension: {t.shape}")
        n = int(np.prod(t.shape, dtype=object))
        if n > MAX_TENSOR_ELEMENTS:
            raise ShapeError(f"tensor '{t.name}' has shape {t.shape} ({n:,} elements); tensors above 2^31 - 1 elements "
                             f"are not supported")


def _folded_elements(graph: Graph, node: Node) -> int | None:
    """Elements a folded node would produce, where its output shapes or its
    size-making constant operands tell; None when unknown."""
    shapes = [graph.tensors[o].shape for o in node.outputs if o and o in graph.tensors]
    if shapes and len(shapes) == len([o for o in node.outputs if o]):
        return sum(int(np.prod(s, dtype=object)) for s in shapes)
    first = graph.tensors.get(node.inputs[0]) if node.inputs and node.inputs[0] else None
    return made_elements(node.op, [graph.const(i) if i else None for i in node.inputs], first.shape if first else None)


def fold_constants(graph: Graph) -> None:
    """Evaluate every node whose inputs are all constant (and Shape of a static
    tensor) with ONNX's reference evaluator, once, at compile time."""
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            present = [i for i in node.inputs if i]
            if node.op == "If" and graph.const(node.inputs[0]) is not None:
                _inline_if(graph, node, bool(np.asarray(graph.const(node.inputs[0])).reshape(-1)[0]))
                changed = True
                continue
            if node.op == "Shape" and present and present[0] in graph.tensors:
                shape = np.array(graph.tensors[present[0]].shape, np.int64)
                start, end = node.attrs.get("start", 0), node.attrs.get("end", None)
                value = shape[start:end]
            elif node.op == "Size" and present and present[0] in graph.tensors:
                value = np.array(graph.tensors[present[0]].size, np.int64)
            elif present and all(graph.tensors.get(i) is not None and graph.tensors[i].is_const for i in present):
                size = _folded_elements(graph, node)
                if size is not None and size > MAX_FOLDED_ELEMENTS:
                    raise ShapeError(f"{node.describe()} makes a constant of {size:,} elements; constants above "
                                     f"{MAX_FOLDED_ELEMENTS:,} elements are not supported")
                try:
                    outs = _evaluate(graph, node)
                except (UnsupportedOpError, ShapeError):
                    raise
                except Exception as exc:
                    raise FoldError(f"{node.describe()} has constant inputs but could not be evaluated: {exc}") from None
                for name, arr in zip(node.outputs, outs):
                    if name:
                        arr = np.asarray(arr)
                        arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int64)
                        graph.tensors[name] = Tensor(name, tuple(arr.shape), np.array(arr, order="C"))
                graph.nodes.remove(node)
                changed = True
                continue
            else:
                continue
            graph.tensors[node.outputs[0]] = Tensor(node.outputs[0], tuple(value.shape), value)
            graph.nodes.remove(node)
            changed = True


def infer_missing_shapes(graph: Graph) -> int:
    """Shapes that ONNX inference could not give before folding (e.g. a Reshape
    whose target came from Shape -> Gather -> Concat) are inferred again on the
    folded graph. Float constants travel as typed inputs, not data."""
    referenced = {t for n in graph.nodes for t in [*n.inputs, *n.outputs] if t}
    if all(t in graph.tensors for t in referenced):
        return 0
    inputs, inits = [], []
    for name in sorted(referenced | set(graph.inputs)):
        t = graph.tensors.get(name)
        if t is None:
            continue
        if t.is_const and t.data.dtype != np.float32:
            inits.append(numpy_helper.from_array(t.data, name))
        elif t.is_const or name in graph.inputs:
            inputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(t.shape)))
    nodes = [helper.make_node(n.op, n.inputs, n.outputs, name=n.name, **{k: v for k, v in n.attrs.items() if not k.startswith("wl_")})
             for n in graph.nodes]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, None) for o in graph.outputs]
    model = helper.make_model(helper.make_graph(nodes, graph.name, inputs, outs, inits),
                              opset_imports=[helper.make_opsetid("", graph.opset)])
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise UnsupportedOpError(f"shape inference failed after constant folding: {str(exc).strip().splitlines()[-1]}") from None
    added = 0
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if vi.name not in graph.tensors and vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
            graph.tensors[vi.name] = Tensor(vi.name, tuple(d.dim_value for d in dims))
            added += 1
    return added


def _single_use(graph: Graph, tensor: str) -> bool:
    return tensor not in graph.outputs and sum(i == tensor for n in graph.nodes for i in n.inputs) == 1


def matmul_add_to_gemm(graph: Graph) -> None:
    producers = graph.producers()
    for add in [n for n in graph.nodes if n.op == "Add"]:
        for k in (0, 1):
            mm = producers.get(add.inputs[k])
            bias = graph.const(add.inputs[1 - k])
            if mm is None or mm.op != "MatMul" or bias is None or not _single_use(graph, mm.outputs[0]):
                continue
            a, b = graph.tensors[mm.inputs[0]], graph.tensors[mm.inputs[1]]
            if a.is_const or b.data is None or len(a.shape) != 2 or b.data.ndim != 2:
                continue
            n_out = b.shape[1]
            if bias.size not in (1, n_out) or (bias.ndim == 2 and bias.shape[0] != 1) or bias.ndim > 2:
                continue
            gemm = Node("Gemm", mm.name, [mm.inputs[0], mm.inputs[1], add.inputs[1 - k]], add.outputs, {})
            graph.nodes[graph.nodes.index(mm)] = gemm
            graph.nodes.remove(add)
            producers = graph.producers()
            break


def fold_batchnorm(graph: Graph) -> None:
    producers = graph.producers()
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        prev = producers.get(bn.inputs[0])
        params = [graph.const(i) for i in bn.inputs[1:5]]
        if prev is None or prev.op not in ("Conv", "Gemm") or any(p is None for p in params):
            continue
        if not _single_use(graph, prev.outputs[0]) or ACT in prev.attrs:
            continue
        w = graph.const(prev.inputs[1])
        bias_name = prev.inputs[2] if len(prev.inputs) > 2 else ""
        bias = graph.const(bias_name) if bias_name else None
        if w is None or (bias_name and bias is None):
            continue
        if prev.op == "Gemm" and (prev.attrs.get("transA", 0) or len(graph.tensors[prev.outputs[0]].shape) != 2):
            continue
        scale, shift, mean, var = params
        eps = bn.attrs.get("epsilon", 1e-5)
        s = (scale / np.sqrt(var.astype(np.float64) + eps)).astype(np.float64)
        out_c = s.shape[0]
        if prev.op == "Conv":
            new_w = w.astype(np.float64) * s.reshape(-1, *([1] * (w.ndim - 1)))
        else:
            alpha = prev.attrs.get("alpha", 1.0)
            wt = w.T if not prev.attrs.get("transB", 0) else w
            new_w = (alpha * wt.astype(np.float64)) * s.reshape(-1, 1)
            prev.attrs = {"transB": 1, "beta": 1.0}
        if bias is None:
            base = np.zeros(out_c)
        else:
            base = np.broadcast_to(bias.astype(np.float64) * (prev.attrs.get("beta", 1.0) if prev.op == "Gemm" else 1.0), (out_c,))
        new_b = (base - mean) * s + shift
        wname, bname = prev.inputs[1] + "_bnfold", bn.name + "_bias_bnfold"
        graph.tensors[wname] = Tensor(wname, new_w.shape, new_w.astype(np.float32))
        graph.tensors[bname] = Tensor(bname, (out_c,), new_b.astype(np.float32))
        prev.inputs = [prev.inputs[0], wname, bname]
        prev.outputs = list(bn.outputs[:1])
        graph.nodes.remove(bn)
        producers = graph.producers()


def canonicalize_gemm(graph: Graph) -> None:
    """Gemm with constant B becomes transB=1, alpha=1 (and beta=1 with constant
    C): the weights are then exactly the rows the kernel walks, which is the
    form compression works on."""
    for node in graph.nodes:
        if node.op != "Gemm" or graph.const(node.inputs[1]) is None:
            continue
        w = graph.const(node.inputs[1])
        alpha = float(node.attrs.get("alpha", 1.0))
        if not node.attrs.get("transB", 0) or alpha != 1.0:
            rows = (w if node.attrs.get("transB", 0) else w.T).astype(np.float64) * alpha
            name = node.inputs[1] + "_wl_rows"
            graph.tensors[name] = Tensor(name, rows.shape, np.ascontiguousarray(rows, np.float32))
            node.inputs[1] = name
            node.attrs["transB"], node.attrs["alpha"] = 1, 1.0
        c = graph.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
        beta = float(node.attrs.get("beta", 1.0))
        if c is not None and beta != 1.0:
            name = node.inputs[2] + "_wl_scaled"
            graph.tensors[name] = Tensor(name, c.shape, (c.astype(np.float64) * beta).astype(np.float32))
            node.inputs[2] = name
            node.attrs["beta"] = 1.0


def fuse_activations(graph: Graph) -> None:
    producers = graph.producers()
    for act in [n for n in graph.nodes if n.op in ("Relu", "Clip")]:
        prev = producers.get(act.inputs[0])
        bounds = clip_bounds(graph, act)
        if prev is None or bounds is None or prev.op not in _FUSABLE_PRODUCERS:
            continue
        if not _single_use(graph, prev.outputs[0]) or len(prev.outputs) != 1:
            continue
        if prev.op == "MatMul" and graph.const(prev.inputs[1]) is None:
            continue
        lo0, hi0 = activation(prev)
        prev.attrs[ACT] = (max(lo0, bounds[0]), min(hi0, bounds[1]))
        prev.outputs = list(act.outputs)
        graph.nodes.remove(act)
        producers = graph.producers()


def _node_count(node) -> int:
    """1, plus the nodes of its branches (an ir Node or an onnx NodeProto)."""
    return 1 + sum(_node_count(n) for g in branch_graphs(node) for n in g.node)


def remove_float_casts(graph: Graph) -> None:
    """A Cast to float32 of a float32 tensor computed at run time is that tensor (exporters
    write them around shape arithmetic that folded away). Only after folding: before it, a
    Cast's input may be an integer the folding still has to compute."""
    for node in [n for n in graph.nodes if n.op == "Cast"]:
        x = node.inputs[0]
        if (int(node.attrs.get("to", 0)) == onnx.TensorProto.FLOAT and x in graph.tensors and not graph.tensors[x].is_const
                and graph.tensors[x].dtype == "float32"):
            _bypass(graph, node)


def drop_empty_resize_operands(graph: Graph) -> None:
    """A Resize's roi or scales given as an empty constant is the same as none given (opset 11
    wrote them so; torch's exporter still does), but shape inference from opset 13 on refuses
    scales next to sizes: the empty operands become absent ones."""
    for node in graph.nodes:
        if node.op == "Resize":
            for k in (1, 2):
                if k < len(node.inputs) and node.inputs[k] and (v := graph.const(node.inputs[k])) is not None and v.size == 0:
                    node.inputs[k] = ""


def run_passes(graph: Graph) -> Graph:
    check_tensor_sizes(graph)
    remove_identities(graph)
    fold_qdq(graph)  # before folding: the weights behind DequantizeLinear stay int8
    # Folding can reveal shapes, and shapes can make more nodes foldable (Shape).
    # Each round adds shapes of tensors it had none for, so this ends; the bound is a backstop
    # (counting the nodes inside If branches, which inlining brings into the graph).
    for _ in range(sum(_node_count(n) for n in graph.nodes) + 2):
        fold_constants(graph)
        drop_empty_resize_operands(graph)
        graph.prune()
        if not infer_missing_shapes(graph):
            break
    else:
        raise ShapeError("the shapes of the model did not settle while folding its constants")
    remove_float_casts(graph)
    remove_identities(graph)  # those inlining kept while a branch still read their output by name
    check_tensor_sizes(graph)
    matmul_add_to_gemm(graph)
    fold_batchnorm(graph)
    canonicalize_gemm(graph)
    fuse_activations(graph)
    graph.prune()
    return graph
