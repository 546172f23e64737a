"""The supported ops as torch users write them, through both of torch's ONNX exporters
(legacy TorchScript and dynamo) at every opset from 11 to 21: each export is compiled
and verified against onnxruntime on the host build, one export per model under QEMU."""
from __future__ import annotations

import warnings

import pytest

from weightless_mcu import verify

torch = pytest.importorskip("torch")
nn = torch.nn
pytestmark = pytest.mark.slow  # the whole sweep; tests/test_exporters.py keeps a few exports in the quick run
F = torch.nn.functional


class Convs(nn.Module):
    """Conv2d (pads, stride, dilation, groups, depthwise 'same'), BatchNorm, LeakyRelu,
    HardSwish, PRelu per channel, Max/AveragePool with ceil_mode, Concat, Flatten, Reshape."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.c2 = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4)
        self.dw = nn.Conv2d(8, 8, 3, padding="same", groups=8)
        self.pr = nn.PReLU(8)

    def forward(self, x):
        x = F.leaky_relu(self.bn(self.c1(x)), 0.1)
        x = F.hardswish(self.c2(x))
        x = self.pr(self.dw(x))
        a = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)
        b = F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False)
        c = F.avg_pool2d(x, 2)
        return torch.cat([a.flatten(1), b.flatten(1), c.reshape(1, -1)], 1)


class Conv1dTranspose(nn.Module):
    """Conv1d, ConvTranspose1d/2d (output_padding), Clip (relu6), Tanh, Pad reflect and
    replicate, Slice, MaxPool1d, HardSigmoid, Sigmoid."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(4, 6, 5, stride=2, padding=2)
        self.t = nn.ConvTranspose1d(6, 4, 3, stride=2, padding=1, output_padding=1)
        self.t2 = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)

    def forward(self, x):
        y = torch.tanh(self.t(F.relu6(self.c(x))))
        y = F.pad(y, (1, 2), mode="reflect")
        z = y[:, :2, :16].reshape(1, 2, 4, 4)
        z = torch.sigmoid(self.t2(F.pad(z, (1, 1, 0, 1), mode="replicate")))
        return F.max_pool1d(y, 2), F.hardsigmoid(z)


class Dense(nn.Module):
    """Gemm (batch 4), BatchNorm1d, Clip, Dropout, MatMul with matrices and a vector,
    Sub/Div/Mul broadcasting, ReduceMean, Softmax on axis 0, LogSoftmax."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(12, 16)
        self.bn = nn.BatchNorm1d(16)
        self.l2 = nn.Linear(16, 6, bias=False)
        self.w = nn.Parameter(torch.randn(6, 3))
        self.v = nn.Parameter(torch.randn(3))
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        h = self.drop(torch.clamp(self.bn(self.l1(x)), -0.5, 2.0))
        m = self.l2(h) @ self.w
        v = m @ self.v
        out = (m - v.unsqueeze(1)) / (1.5 + torch.sigmoid(m)) * m.mean(dim=1, keepdim=True)
        return F.softmax(out, dim=0), F.log_softmax(out, dim=1), v


class Attention(nn.Module):
    """Linear on sequences, batched MatMul of two activations, Transpose, Softmax, Gather
    (indexing and index_select), Squeeze, Unsqueeze, ReduceMean, ReduceMax."""

    def __init__(self):
        super().__init__()
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)

    def forward(self, x):
        a = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / 2.0, dim=-1)
        y = a @ x
        z = y.permute(2, 0, 1).squeeze(1)
        return y[:, 0, :], y.index_select(2, torch.tensor([0, 3, 5])), z.mean(dim=-1), torch.unsqueeze(z, 0).amax(dim=2)


class GlobalPools(nn.Module):
    """GlobalAverage/GlobalMaxPool (adaptive pools to 1), View, Gemm, scalar Mul/Add, Pad constant."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        y = F.relu(self.c(x))
        a = F.adaptive_avg_pool2d(y, 1).flatten(1)
        b = F.adaptive_max_pool2d(y, 1).view(1, 4)
        return self.fc(torch.cat([a, b], 1)) * 2 + 1, F.pad(y, (1, 1, 1, 1), value=0.5)


class Misc(nn.Module):
    """Dilated MaxPool, AvgPool1d with padding, addmm with alpha/beta, MatMul with a
    constant broadcast batch, Hardtanh, flip (negative-step Slice), ReduceSum."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4))
        self.b = nn.Parameter(torch.randn(4))
        self.m = nn.Parameter(torch.randn(2, 1, 3, 4))

    def forward(self, x):
        p = F.max_pool2d(x, 2, stride=1, dilation=2)
        q = F.avg_pool1d(x.reshape(1, 2, 60), 4, stride=3, padding=1)
        r = torch.addmm(self.b, x[0, 0], self.w, beta=0.5, alpha=2.0)
        t = F.hardtanh(torch.matmul(self.m, x[0].transpose(1, 2)[:, :4, :3]), -0.3, 0.4)
        return p, q, r, t, torch.flip(x, [2]) * x.sum(dim=(2, 3), keepdim=True)


class PaddingModes(nn.Module):
    """Conv padding_mode reflect/circular/replicate, 'same' with an even kernel, chunk
    (Split), stack, repeat (Expand/Tile), adaptive average pooling to 2x2, Linear on NHWC."""

    def __init__(self):
        super().__init__()
        self.r = nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")
        self.c = nn.Conv2d(4, 4, 3, padding=1, padding_mode="circular")
        self.e = nn.Conv1d(4, 4, 4, padding="same")
        self.z = nn.Conv2d(4, 6, 2, padding="same", padding_mode="replicate")
        self.lin = nn.Linear(6, 5)

    def forward(self, x):
        y = F.relu(self.c(self.r(x)))
        a, b = torch.chunk(y, 2, dim=1)
        y = torch.cat([b, a], 1) + torch.stack([a, b], 0).sum(0).repeat(1, 2, 1, 1)
        z = self.z(y)
        return self.e(y.flatten(2)), F.adaptive_avg_pool2d(x, 2), F.relu(self.lin(z.permute(0, 2, 3, 1))), z.mean([2, 3])


class Elementwise(nn.Module):
    """BatchNorm1d on (N, C, L), PReLU with one slope, Identity, clamp with one bound,
    constant minus activation, Dropout2d, grouped ConvTranspose2d, per-channel scale,
    AvgPool counting pads, LeakyRelu, Softmax over channels, Linear without bias."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv1d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm1d(6)
        self.pr = nn.PReLU()
        self.t = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1, groups=2)
        self.scale = nn.Parameter(torch.randn(1, 4, 1, 1))
        self.lin = nn.Linear(24, 3, bias=False)
        self.id = nn.Identity()
        self.d2 = nn.Dropout2d(0.5)

    def forward(self, x):
        y = self.pr(self.bn(self.c(x)))
        y = self.id(y.clamp(min=-0.2)) + (1 - y).clamp(max=0.7) / 3.0
        z = self.t(self.d2(y.reshape(1, 6, 4, 4)))
        z = F.leaky_relu(F.avg_pool2d(z * self.scale, 3, stride=1, padding=1, count_include_pad=True))
        v = self.lin(z.reshape(1, 4, -1)[:, :, :24])
        return F.softmax(z.flatten(2), dim=1).reshape(-1), F.log_softmax(v, dim=-1), y.unsqueeze(1).squeeze(1)


class GeluMath(nn.Module):
    """A GELU MLP block (erf and tanh forms) and the math of audio front ends: pow, sqrt,
    exp, log, abs, neg, reciprocal, rsqrt, minimum and maximum."""

    def __init__(self):
        super().__init__()
        self.up = nn.Linear(8, 16)
        self.down = nn.Linear(16, 8)

    def forward(self, x):
        h = self.down(F.gelu(self.up(x))) + x
        g = F.gelu(h, approximate="tanh")
        mag = torch.sqrt(h.pow(2) + g ** 2 + 1e-3)
        e = torch.exp(-h.abs()) + torch.reciprocal(1.5 + torch.sigmoid(g))
        return torch.log(mag), torch.minimum(e, torch.maximum(h, g)), torch.rsqrt(mag) * h.pow(3)


class Upsampling(nn.Module):
    """interpolate nearest and bilinear (align_corners off and on, by scale and by size),
    nn.Upsample, PixelShuffle (DepthToSpace) and PixelUnshuffle (SpaceToDepth), 1-D linear."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        self.shuffle = nn.PixelShuffle(2)
        self.unshuffle = nn.PixelUnshuffle(2)

    def forward(self, x):
        y = F.relu(self.c1(x))
        a = F.interpolate(y, scale_factor=2, mode="nearest")
        b = F.interpolate(self.c2(a), size=(10, 14), mode="bilinear", align_corners=False)
        c = self.up(y)
        d = self.shuffle(y)
        return b, c[:, :2] + d, self.unshuffle(c), F.interpolate(y.flatten(2), scale_factor=1.5, mode="linear")


class KwsLstm(nn.Module):
    """A keyword-spotting LSTM as torch users write one: batch first, its final (h, c) returned,
    a Linear on the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(10, 16, batch_first=True)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return self.fc(y[:, -1]), h, c


class KwsGru(nn.Module):
    """A bidirectional GRU (linear_before_reset, as torch's is), averaged over time, then a Linear."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(10, 12, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(24, 4)

    def forward(self, x):
        y, h = self.gru(x)
        return self.fc(y.mean(1)), h


MODELS = {
    "convs": (Convs, (1, 3, 12, 12)),
    "conv1d_transpose": (Conv1dTranspose, (1, 4, 20)),
    "dense": (Dense, (4, 12)),
    "attention": (Attention, (1, 5, 8)),
    "global_pools": (GlobalPools, (1, 3, 8, 8)),
    "misc": (Misc, (1, 2, 10, 6)),
    "padding_modes": (PaddingModes, (1, 3, 8, 8)),
    "elementwise": (Elementwise, (1, 3, 16)),
    "gelu_math": (GeluMath, (1, 4, 8)),
    "upsampling": (Upsampling, (1, 3, 6, 7)),
    "kws_lstm": (KwsLstm, (1, 7, 10)),
    "kws_gru": (KwsGru, (1, 7, 10)),
}
OPSETS = range(11, 22)
FIRST_OPSET = {"kws_lstm": 14, "kws_gru": 14}  # the recurrent models from opset 14 (layout attribute) on
EXPORTS = [(name, exporter, opset) for name in sorted(MODELS) for exporter in ("legacy", "dynamo")
           for opset in OPSETS if opset >= FIRST_OPSET.get(name, 0)]


def _model(name):
    cls, shape = MODELS[name]
    torch.manual_seed(0)
    m = cls().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in m.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
    return m, torch.randn(*shape)


def _export(tmp_path, name, exporter, opset=None, dynamic_batch=False):
    m, x = _model(name)
    path = tmp_path / f"{name}_{exporter}_{opset}.onnx"
    kw = {"opset_version": opset} if opset else {}
    if dynamic_batch and exporter == "legacy":
        kw.update(input_names=["x"], dynamic_axes={"x": {0: "N"}})
    elif dynamic_batch:
        kw["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (x,), str(path), dynamo=exporter == "dynamo", **kw)
    return path


@pytest.mark.parametrize("name,exporter,opset", EXPORTS)
def test_export_compiles_and_verifies(tmp_path, name, exporter, opset):
    res = verify(_export(tmp_path, name, exporter, opset), target="host", samples=3)
    assert res["match"], (name, exporter, opset, res["max_abs_error"], res["max_rel_error"])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_under_qemu(tmp_path, name):
    res = verify(_export(tmp_path, name, "dynamo", 18), target="cortex-m4", samples=2)
    assert res["match"] and res["instructions"] > 0, (name, res["max_abs_error"])


# A dynamic batch: the batch axis is fixed to 1. (The attention model squeezes the batch axis,
# which torch's dynamo export records as a no-op; padding_modes does not export dynamically.)
DYNAMIC = [(n, e) for n in ("convs", "dense", "elementwise", "misc") for e in ("legacy", "dynamo")] + [("attention", "legacy")]


@pytest.mark.parametrize("name,exporter", DYNAMIC)
def test_dynamic_batch_export(tmp_path, name, exporter):
    path = _export(tmp_path, name, exporter, 17 if exporter == "legacy" else None, dynamic_batch=True)
    assert verify(path, target="host", samples=2)["match"], (name, exporter)
