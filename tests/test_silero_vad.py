"""A real audio model as its authors publish it (models/silero-vad/): an If on an int64 sample
rate around an STFT front end, Conv encoders and an LSTM cell in nested Ifs on shapes. With the
rate fixed by --constant-input it compiles, and the firmware equals onnxruntime, the state
carried across ten chunks."""
from __future__ import annotations

import numpy as np
import pytest

from weightless_mcu import compile_model, verify

from .conftest import REPO

MODEL = REPO / "models" / "silero-vad" / "silero_vad.onnx"
CHUNK = {16000: 512, 8000: 256}


@pytest.mark.parametrize("rate", [16000, 8000])
def test_silero_vad_on_the_host(tmp_path, rate):
    assert MODEL.exists(), f"{MODEL} is missing from the checkout"
    res = verify(MODEL, target="host", samples=3, input_shapes={"input": (1, CHUNK[rate]), "state": (2, 1, 128)},
                 constant_inputs={"sr": (rate,)})
    assert res["match"] and res["max_rel_error"] <= 1e-4
    kernels = {s["kernel"] for s in res["steps"]}
    assert {"conv2d", "lstm", "unary", "binary"} <= kernels and "If" not in str(kernels)


def test_silero_vad_state_carried_over_ten_chunks_under_qemu(tmp_path):
    """The firmware's own state output fed back as its next input, ten chunks of a tone that
    starts in the fourth, on cortex-m4: each call equals onnxruntime given the same chunk and
    state (a recurrent state amplifies float rounding: two chains run apart by about 1e-4 in ten
    chunks, so each call is compared on the same inputs)."""
    import onnxruntime as ort

    from weightless_mcu.qemu import run_firmware
    from weightless_mcu.targets import get_target
    from weightless_mcu.toolchain import build_firmware

    out = tmp_path / "out"
    manifest = compile_model(MODEL, out, target="cortex-m4", input_shapes={"input": (1, 512), "state": (2, 1, 128)},
                             constant_inputs={"sr": (16000,)})
    assert [i["name"] for i in manifest["inputs"]] == ["input", "state"]
    elf = build_firmware(out, get_target("cortex-m4"), tmp_path / "build")
    sess = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    t = np.arange(10 * 512) / 16000
    audio = (0.01 * np.random.default_rng(0).standard_normal(t.size) + 0.5 * np.sin(2 * np.pi * 440 * t) * (t > 0.1)).astype(np.float32)
    ours = np.zeros((2, 1, 128), np.float32)
    probs = []
    for k in range(10):
        chunk = audio[k * 512:(k + 1) * 512].reshape(1, 512)
        want_p, want_s = sess.run(None, {"input": chunk, "state": ours, "sr": np.array(16000, np.int64)})
        run = run_firmware(elf, get_target("cortex-m4"), np.concatenate([chunk.reshape(-1), ours.reshape(-1)])[None], 1 + 256,
                           model="silero_vad")
        got_p, got_s = run.outputs[0][:1], run.outputs[0][1:].reshape(2, 1, 128)
        # verify's criterion: max |error| within 1e-4 of the largest reference output (near-silent
        # STFT bins go through a square root, which magnifies rounding in them)
        for got, want in ((got_p, want_p), (got_s, want_s)):
            assert np.abs(got.reshape(-1) - want.reshape(-1)).max() <= 1e-4 * np.abs(want).max(), f"chunk {k}"
        ours = got_s
        probs.append(float(got_p[0]))
    assert np.abs(ours).max() > 0.01  # the state carried something
    assert max(probs[5:]) > 2 * max(probs[:2])  # and the tone moved the speech probability
