"""The IR back to ONNX: after compression this is the decoded model (the
original graph with the decoded weights, false positives included), which
onnxruntime runs as the reference for the firmware."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .ir import Graph
from .op_semantics import ACT


def _attr_value(v):
    if isinstance(v, np.ndarray):
        return numpy_helper.from_array(v)
    return v


def graph_to_onnx(graph: Graph) -> onnx.ModelProto:
    used = {i for n in graph.nodes for i in n.inputs if i} | set(graph.outputs)
    inits = [numpy_helper.from_array(t.data, name) for name, t in graph.tensors.items()
             if t.is_const and name in used and name not in graph.inputs]
    nodes = []
    for n in graph.nodes:
        attrs = {k: _attr_value(v) for k, v in n.attrs.items() if not k.startswith("wl_")}
        act = n.attrs.get(ACT)
        if act is None:
            nodes.append(helper.make_node(n.op, n.inputs, n.outputs, name=n.name, **attrs))
            continue
        # A fused activation becomes the Clip it stands for.
        pre = n.outputs[0] + "_wl_preact"
        nodes.append(helper.make_node(n.op, n.inputs, [pre], name=n.name, **attrs))
        lo_name, hi_name = n.outputs[0] + "_wl_min", n.outputs[0] + "_wl_max"
        inits.append(numpy_helper.from_array(np.array(act[0], np.float32), lo_name))
        inits.append(numpy_helper.from_array(np.array(act[1], np.float32), hi_name))
        nodes.append(helper.make_node("Clip", [pre, lo_name, hi_name], n.outputs, name=n.name + "_wl_act"))

    def vi(name):
        return helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(graph.tensors[name].shape))

    g = helper.make_graph(nodes, graph.name, [vi(i) for i in graph.inputs], [vi(o) for o in graph.outputs], inits)
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", max(graph.opset, 13))],
                              producer_name="weightless-mcu")
    model.ir_version = min(model.ir_version, 10)
    return model
