"""Fuzzing the ONNX front end: mutated models (truncated or corrupted bytes, wrong
dtypes, missing initializers, cycles, absurd or negative shapes, huge attributes,
unknown ops) give a clear error every time: a WeightlessError, never another
exception, a crash or a hang (hypothesis' deadline)."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from weightless_mcu import compile_model
from weightless_mcu.errors import WeightlessError

H = helper.make_node
HUGE = [-(2**63), -5, -1, 0, 2**31, 10**9, 2**40, 2**62]


def base_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    nodes = [H("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]), H("Relu", ["c"], ["r"]),
             H("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]), H("Shape", ["p"], ["s"]),
             H("Gather", ["s", "zero"], ["n"], axis=0), H("Unsqueeze", ["n", "ax"], ["n1"]),
             H("Concat", ["n1", "minus1"], ["shape"], axis=0), H("Reshape", ["p", "shape"], ["f"]),
             H("Gemm", ["f", "g", "gb"], ["y"], transB=1)]
    inits = {"w": rng.random((4, 2, 3, 3), np.float32), "b": np.zeros(4, np.float32), "g": rng.random((5, 64), np.float32),
             "gb": np.zeros(5, np.float32), "zero": np.array(0, np.int64), "ax": np.array([0], np.int64),
             "minus1": np.array([-1], np.int64)}
    g = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", 1, [1, 2, 8, 8])],
                          [helper.make_tensor_value_info("y", 1, [1, 5])],
                          [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def _pick(seq, i):
    return seq[i % len(seq)] if len(seq) else None


def mutate(m: onnx.ModelProto, kind: int, a: int, b: int) -> None:
    g = m.graph
    node, init = _pick(g.node, a), _pick(g.initializer, a)
    if kind == 0 and init is not None:  # wrong dtype
        init.data_type = [2, 3, 6, 7, 9, 10, 11, 16, 0][b % 9]
    elif kind == 1 and init is not None:  # missing initializer
        g.initializer.remove(init)
    elif kind == 2 and node is not None and node.input:  # a cycle or a self loop
        node.input[0] = _pick(g.node, b).output[0]
    elif kind == 3:  # absurd or negative input shape
        g.input[0].type.tensor_type.shape.dim[b % 4].dim_value = _pick(HUGE, a)
    elif kind == 4 and node is not None:  # huge or negative attributes
        for attr in node.attribute:
            if attr.ints:
                attr.ints[b % len(attr.ints)] = _pick(HUGE, a)
            elif attr.type == onnx.AttributeProto.INT:
                attr.i = _pick(HUGE, a)
    elif kind == 5 and node is not None:  # unknown or misplaced ops
        node.op_type = ["Foo", "Conv", "Gemm", "Reshape", "Slice", "Concat", "If", "Loop", "", "Expand", "Tile", "LSTM",
                        "TopK", "Split", "BatchNormalization", "Dropout"][b % 16]
    elif kind == 6 and node is not None:  # an input nobody produces, or one too few
        if b % 2:
            node.input.append("nowhere")
        elif len(node.input) > 1:
            del node.input[-1]
    elif kind == 7 and init is not None:  # shape and data disagree, or huge declared dims
        dim = _pick([0, 1, 3, 10**6, 2**40], a)
        if init.dims:
            init.dims[b % len(init.dims)] = dim
        else:
            init.dims.append(dim)
    elif kind == 8:  # a non-float output
        g.output[0].type.tensor_type.elem_type = [0, 7, 10, 11][b % 4]
    elif kind == 9 and node is not None:  # outputs clashing with inputs and initializers
        node.output[0] = ["x", "y", "w", "shape", node.input[0] if node.input else "x"][b % 5]
    elif kind == 10:  # unknown or absurd opsets
        m.opset_import[0].version = [1, 5, 9, 30, 1000, -1][b % 6]
    elif kind == 11:  # a node that makes a huge constant
        g.node.insert(0, H(["ConstantOfShape", "Range", "Expand", "Tile"][b % 4], ["big"], ["bigout"]))
        g.initializer.append(numpy_helper.from_array(np.array([_pick(HUGE, a) % (2**40) + 1] * 2, np.int64), "big"))
    elif kind == 12 and node is not None:  # a duplicate node
        g.node.append(node)
    elif kind == 13 and node is not None:  # extra outputs nobody reads
        node.output.append(f"unused{b}")


mutations = st.lists(st.tuples(st.integers(0, 13), st.integers(0, 1000), st.integers(0, 1000)), min_size=1, max_size=3)


def _compile(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "m.onnx"
        path.write_bytes(data)
        try:
            compile_model(path, Path(d) / "out", target="cortex-m4")
        except WeightlessError as exc:
            assert str(exc) and "\n" not in str(exc).split(":")[0]  # one clear sentence first
            assert not (Path(d) / "out").exists()  # nothing half-written


@settings(max_examples=150, deadline=10000, suppress_health_check=[HealthCheck.too_slow])
@given(mutations)
def test_mutated_models_give_clear_errors(muts):
    m = base_model()
    for kind, a, b in muts:
        mutate(m, kind, a, b)
    _compile(m.SerializeToString())


@settings(max_examples=60, deadline=10000)
@given(st.integers(0, 10**6), st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       st.booleans())
def test_truncated_and_corrupted_bytes_give_clear_errors(cut, flips, truncate):
    data = bytearray(base_model().SerializeToString())
    for pos, value in flips:
        data[pos % len(data)] = value
    if truncate:
        data = data[: cut % len(data)]
    _compile(bytes(data))


def test_the_unmutated_model_compiles(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(base_model().SerializeToString())
    assert compile_model(path, tmp_path / "out")["run_function"] == "wl_m_run"


@pytest.mark.parametrize("op,operands", [("ConstantOfShape", [np.array([1, 10**10], np.int64)]),
                                         ("Range", [np.array(0.0, np.float32), np.array(1e12, np.float32), np.array(1.0, np.float32)])])
def test_huge_constants_are_refused_before_they_are_built(tmp_path, op, operands):
    names = [f"c{i}" for i in range(len(operands))]
    g = helper.make_graph([H(op, names, ["big"]), H("Cast", ["big"], ["bf"], to=1), H("Add", ["x", "bf"], ["y"])], "m",
                          [helper.make_tensor_value_info("x", 1, [1])], [helper.make_tensor_value_info("y", 1, ["n"])],
                          [numpy_helper.from_array(v, k) for k, v in zip(names, operands)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = tmp_path / "m.onnx"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(WeightlessError, match="more than 16,777,216 are not supported"):
        compile_model(path, tmp_path / "out")


def test_nan_and_infinite_weights_compile_to_c(tmp_path):
    from weightless_mcu.targets import get_target
    from weightless_mcu.toolchain import build_firmware

    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    w[0, 1], w[1, 2], w[2, 3] = np.nan, np.inf, -np.inf
    g = helper.make_graph([H("Gemm", ["x", "w"], ["y"], transB=1)], "m", [helper.make_tensor_value_info("x", 1, [1, 4])],
                          [helper.make_tensor_value_info("y", 1, [1, 3])], [numpy_helper.from_array(w, "w")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    (tmp_path / "m.onnx").write_bytes(m.SerializeToString())
    compile_model(tmp_path / "m.onnx", tmp_path / "out")
    text = (tmp_path / "out" / "model.c").read_text()
    assert "NAN" in text and "-INFINITY" in text
    assert build_firmware(tmp_path / "out", get_target("host"), tmp_path / "build").exists()
