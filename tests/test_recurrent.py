"""LSTM and GRU with ONNX semantics through the generated C, against onnxruntime (and, for the
batch-first layout onnxruntime does not run, ONNX's reference evaluator); the state carried
across calls, chained as an application would."""
from __future__ import annotations

import subprocess

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from weightless_mcu import compile_model, verify
from weightless_mcu.qemu import run_firmware
from weightless_mcu.targets import get_target
from weightless_mcu.toolchain import build_firmware

GATES = {"LSTM": 4, "GRU": 3}


def recurrent_model(path, op, *, hidden=5, inputs=3, seq=4, batch=1, direction="forward", layout=0, states="inputs",
                    peepholes=False, head=False, opset=14, seed=0, **attrs):
    """One LSTM or GRU (W, R, B constants), its initial states as model inputs ("inputs"),
    constants ("constants") or absent (None); Y, Y_h (and Y_c) as outputs, or with head, a
    Gemm on the last step's Y_h and the final states."""
    rng = np.random.default_rng(seed)
    nd, g = (2 if direction == "bidirectional" else 1), GATES[op]

    def r(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(np.float32)

    inits = [numpy_helper.from_array(r(nd, g * hidden, inputs), "W"), numpy_helper.from_array(r(nd, g * hidden, hidden), "R"),
             numpy_helper.from_array(r(nd, 2 * g * hidden), "B")]
    x_shape = [seq, batch, inputs] if layout == 0 else [batch, seq, inputs]
    s_shape = [nd, batch, hidden] if layout == 0 else [batch, nd, hidden]
    y_shape = [seq, nd, batch, hidden] if layout == 0 else [batch, seq, nd, hidden]
    vi = helper.make_tensor_value_info
    graph_in = [vi("x", TensorProto.FLOAT, x_shape)]
    names = ["h0", "c0"][: 2 if op == "LSTM" else 1]
    node_in = ["x", "W", "R", "B", ""]
    for name in names:
        if states == "inputs":
            graph_in.append(vi(name, TensorProto.FLOAT, s_shape))
        elif states == "constants":
            inits.append(numpy_helper.from_array(r(*s_shape), name))
        node_in.append(name if states else "")
    if peepholes:
        inits.append(numpy_helper.from_array(r(nd, 3 * hidden), "P"))
        node_in += [""] * (7 - len(node_in)) + ["P"]
    outs = ["y", "y_h", "y_c"][: 3 if op == "LSTM" else 2]
    kw = dict(hidden_size=hidden, direction=direction, **attrs)
    if layout:
        kw["layout"] = layout
    nodes = [helper.make_node(op, node_in, outs, **kw)]
    graph_out = [vi("y", TensorProto.FLOAT, y_shape)] + [vi(o, TensorProto.FLOAT, s_shape) for o in outs[1:]]
    if head:
        inits.append(numpy_helper.from_array(r(3, nd * batch * hidden), "Wh"))
        inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "flat"))
        nodes += [helper.make_node("Reshape", ["y_h", "flat"], ["hf"]), helper.make_node("Gemm", ["hf", "Wh"], ["logits"], transB=1)]
        graph_out = [vi("logits", TensorProto.FLOAT, [1, 3])] + graph_out[1:]
    graph = helper.make_graph(nodes, "rnn", graph_in, graph_out, inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


CASES = {
    "lstm_forward_states_in": dict(op="LSTM"),
    "lstm_reverse_batch2": dict(op="LSTM", direction="reverse", batch=2, hidden=6),
    "lstm_bidirectional": dict(op="LSTM", direction="bidirectional", batch=2, states="constants"),
    "lstm_peepholes_clip": dict(op="LSTM", peepholes=True, clip=0.7, hidden=7),
    "lstm_no_initial_state": dict(op="LSTM", states=None, seq=9, inputs=10, hidden=16),
    "gru_forward": dict(op="GRU", linear_before_reset=0),
    "gru_linear_before_reset": dict(op="GRU", linear_before_reset=1, hidden=7),
    "gru_bidirectional_lbr": dict(op="GRU", direction="bidirectional", linear_before_reset=1, batch=2, states="constants"),
    "gru_reverse_clip": dict(op="GRU", direction="reverse", clip=0.5, states=None),
    "lstm_head": dict(op="LSTM", head=True, seq=6, hidden=8),
}
QEMU = ["lstm_forward_states_in", "lstm_bidirectional", "gru_linear_before_reset", "lstm_head"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_recurrent_layer_matches_onnxruntime_on_the_host(tmp_path, case):
    res = verify(recurrent_model(tmp_path / "m.onnx", **CASES[case]), target="host", samples=3)
    assert res["match"] and res["max_rel_error"] <= 1e-5, res["max_rel_error"]


@pytest.mark.parametrize("case", QEMU)
def test_recurrent_layer_matches_onnxruntime_under_qemu(tmp_path, case):
    res = verify(recurrent_model(tmp_path / "m.onnx", **CASES[case]), target="cortex-m4", samples=2)
    assert res["match"] and res["max_rel_error"] <= 1e-5, res["max_rel_error"]


def _run(tmp_path, model, target, feeds: list[np.ndarray], tag=""):
    out = tmp_path / f"out{tag}"
    manifest = compile_model(model, out, target=target)
    elf = build_firmware(out, get_target(target), tmp_path / f"build{tag}")
    sizes = [int(np.prod(o["shape"])) for o in manifest["outputs"]]
    flat = np.concatenate([np.asarray(f, np.float32).reshape(1, -1) for f in feeds], axis=1)
    run = run_firmware(elf, get_target(target), flat, sum(sizes), model=manifest["name"])
    outs = np.split(run.outputs[0], np.cumsum(sizes)[:-1])
    return [o.reshape(m["shape"]) for o, m in zip(outs, manifest["outputs"])]


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_batch_first_layout_matches_the_onnx_reference(tmp_path, op):
    """layout = 1 (batch first), which onnxruntime refuses: against ONNX's reference evaluator."""
    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    model = recurrent_model(tmp_path / "m.onnx", op, layout=1, batch=2, direction="bidirectional", **extra)
    rng = np.random.default_rng(3)
    feeds = [rng.standard_normal((2, 4, 3)).astype(np.float32)] + \
        [rng.standard_normal((2, 2, 5)).astype(np.float32) for _ in range(2 if op == "LSTM" else 1)]
    names = ["x", "h0", "c0"][: len(feeds)]
    want = ReferenceEvaluator(str(model)).run(None, dict(zip(names, feeds)))
    got = _run(tmp_path, model, "host", feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_state_carried_over_ten_calls_under_qemu(tmp_path, op):
    """Ten consecutive calls, each fed the state the one before returned, as a streaming
    keyword spotter runs: equal to onnxruntime doing the same, call after call."""
    model = recurrent_model(tmp_path / "m.onnx", op, head=True, seq=2, inputs=4, hidden=6)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    n_state = 2 if op == "LSTM" else 1
    ours = theirs = [np.zeros((1, 1, 6), np.float32)] * n_state
    for call in range(10):
        x = rng.standard_normal((2, 1, 4)).astype(np.float32)
        want = sess.run(None, dict(zip(["x", "h0", "c0"], [x, *theirs])))
        got = _run(tmp_path, model, "cortex-m4", [x, *ours], tag=str(call))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"call {call}")
        ours, theirs = got[1:], want[1:]
    assert np.abs(theirs[0]).max() > 0.1  # the state did carry something


def test_state_buffers_may_be_shared_between_calls(tmp_path):
    """model.h says the final-state outputs may be the initial-state inputs' buffers: a C
    program that passes one buffer as both, ten calls, gives onnxruntime's chained results."""
    model = recurrent_model(tmp_path / "m.onnx", "LSTM", head=True, seq=3, inputs=4, hidden=6)
    out = tmp_path / "out"
    compile_model(model, out, target="host", name="kws")
    header = (out / "model.h").read_text()
    assert "output 'y_h' is the final state of the recurrent layer whose initial state is input 'h0'" in header
    assert "output 'y_c' is the final state of the recurrent layer whose initial state is input 'c0'" in header
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((10, 3, 1, 4)).astype(np.float32)
    main = tmp_path / "main.c"
    main.write_text(
        '#include <stdio.h>\n#include "model.h"\n'
        f"static const float xs[10][12] = {{{','.join('{' + ','.join(float(v).hex() for v in x.reshape(-1)) + '}' for x in xs)}}};\n"
        "int main(void) {\n  float h[6] = {0}, c[6] = {0}, logits[3];\n"
        "  for (int k = 0; k < 10; k++) {\n    if (wl_kws_run(xs[k], h, c, logits, h, c) != 0) return 1;\n"
        '    for (int i = 0; i < 3; i++) printf("%.9g\\n", logits[i]);\n  }\n  return 0;\n}\n')
    exe = tmp_path / "kws"
    subprocess.run(["cc", "-O2", "-std=c99", "-I", str(out), "-I", str(out / "runtime"), str(main), str(out / "model.c"),
                    *map(str, sorted((out / "runtime").glob("*.c"))), "-lm", "-o", str(exe)], check=True)
    got = np.array(subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(), np.float32)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    state = [np.zeros((1, 1, 6), np.float32)] * 2
    want = []
    for x in xs:
        logits, *state = sess.run(None, {"x": x, "h0": state[0], "c0": state[1]})
        want.append(logits.reshape(-1))
    np.testing.assert_allclose(got, np.concatenate(want), rtol=1e-5, atol=1e-6)


def test_unsupported_recurrent_settings_are_one_clear_error(tmp_path):
    from weightless_mcu.errors import UnsupportedOpError

    with pytest.raises(UnsupportedOpError, match="activations relu, tanh, tanh are not supported"):
        compile_model(recurrent_model(tmp_path / "a.onnx", "LSTM", activations=["Relu", "Tanh", "Tanh"]), tmp_path / "o1")
    with pytest.raises(UnsupportedOpError, match="input_forget is not supported"):
        compile_model(recurrent_model(tmp_path / "b.onnx", "LSTM", input_forget=1), tmp_path / "o2")


@pytest.mark.parametrize("op,encoding,target,lbr", [("LSTM", "bloomier", "cortex-m4", 0), ("GRU", "sparse", "cortex-m4", 1),
                                                    ("LSTM", "codebook", "host", 0), ("GRU", "bloomier", "host", 1),
                                                    ("GRU", "bloomier", "host", 0), ("GRU", "sparse", "cortex-m4", 0)])
def test_compressed_weights_decode_in_the_kernel(tmp_path, op, encoding, target, lbr):
    """A one-direction layer's W and R are Weightless layers like a Gemm's: pruned, shared and
    stored as tables the recurrent kernel reads through the fully connected one at every step (a
    GRU's R twice without linear_before_reset); the firmware equals onnxruntime on the decoded
    model."""
    from weightless_mcu.compress.settings import make_settings

    extra = {"linear_before_reset": lbr} if op == "GRU" else {}
    model = recurrent_model(tmp_path / "m.onnx", op, inputs=40, hidden=16, seq=5, **extra)
    res = verify(model, target=target, samples=2,
                 compression=make_settings(dict(density=0.3, clusters=8, encoding=encoding)))
    assert res["match"] and res["max_rel_error"] <= 1e-5
    assert [s["kernel"] for s in res["steps"]] == [f"{op.lower()}_encoded"]
    g = GATES[op]
    w_bytes, r_bytes, bias_bytes = 4 * g * 16 * 40, 4 * g * 16 * 16, 4 * (g * 16 + (16 if lbr else 0))
    # W, R and the bias the kernel adds (W's and R's summed; GRU's R hidden-gate bias apart)
    assert res["weights_float32_bytes"] == w_bytes + r_bytes + bias_bytes
    assert res["weights_stored_bytes"] - bias_bytes < 0.5 * (w_bytes + r_bytes)  # both tables


@pytest.mark.parametrize("op,target", [("LSTM", "host"), ("GRU", "cortex-m4")])
def test_a_bidirectional_layer_is_compressed_one_direction_at_a_time(tmp_path, op, target):
    """Compressed, a bidirectional layer becomes one layer per direction (its initial states
    sliced) and a Concat of their outputs, each direction's W and R in tables of their own; the
    firmware equals onnxruntime on the decoded model. Dense, it stays one kernel call."""
    from weightless_mcu.compress.settings import make_settings

    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    model = recurrent_model(tmp_path / "m.onnx", op, direction="bidirectional", batch=2, inputs=20, hidden=8, **extra)
    res = verify(model, target=target, samples=2, compression=make_settings(dict(density=0.3, clusters=8)))
    assert res["match"] and res["max_rel_error"] <= 1e-5
    kernels = [s["kernel"] for s in res["steps"]]
    assert kernels.count(f"{op.lower()}_encoded") == 2 and kernels.count("concat") == (3 if op == "LSTM" else 2)
    assert res["weights_stored_bytes"] < 0.4 * res["weights_float32_bytes"]
    dense = compile_model(model, tmp_path / "dense")
    assert [s["kernel"] for s in dense["steps"]] == [op.lower()]


def test_retraining_says_it_cannot_train_a_recurrent_layer(tmp_path):
    from weightless_mcu.api import Retraining
    from weightless_mcu.compress.settings import make_settings
    from weightless_mcu.errors import UnsupportedOpError

    np.savez(tmp_path / "d.npz", x=np.zeros((8, 1, 3), np.float32), y=np.zeros(8, np.int64))
    with pytest.raises(UnsupportedOpError, match="retraining does not support op LSTM"):
        compile_model(recurrent_model(tmp_path / "f.onnx", "LSTM", states=None), tmp_path / "o2",
                      compression=make_settings(dict(density=0.3)), retraining=Retraining(tmp_path / "d.npz"))


@pytest.mark.parametrize("op,states", [("LSTM", "inputs"), ("LSTM", "constants"), ("GRU", "inputs"), ("GRU", None)])
def test_splitting_the_directions_computes_the_same_function(tmp_path, op, states):
    """The rewrite itself against the model as given: onnxruntime on the split graph (two
    one-direction layers, sliced initial states, Concats) equals onnxruntime on the bidirectional
    original, on every output (the firmware check above compares with the split graph)."""
    from weightless_mcu.compress.directions import split_directions
    from weightless_mcu.export import graph_to_onnx
    from weightless_mcu.frontend import load_model
    from weightless_mcu.passes import run_passes

    extra = {"linear_before_reset": 1} if op == "GRU" else {}
    model = recurrent_model(tmp_path / "m.onnx", op, direction="bidirectional", batch=2, states=states,
                            peepholes=op == "LSTM", clip=0.9, **extra)
    _, graph = load_model(model)
    run_passes(graph)
    assert split_directions(graph) == 1
    assert [n.op for n in graph.nodes].count(op) == 2
    rng = np.random.default_rng(4)
    feeds = {"x": rng.standard_normal((4, 2, 3)).astype(np.float32)}
    if states == "inputs":
        feeds.update({n: rng.standard_normal((2, 2, 5)).astype(np.float32) for n in ["h0", "c0"][: 2 if op == "LSTM" else 1]})
    want = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, feeds)
    got = ort.InferenceSession(graph_to_onnx(graph).SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
