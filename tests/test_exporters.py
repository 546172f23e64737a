"""Models as real exporters write them: torch's default (dynamo) exporter with
external data, Reshape for flatten and ReduceMean for adaptive pooling, and
torch's legacy exporter (old opset, Shape/Gather/Concat chains, dynamic batch)."""
from __future__ import annotations

import warnings

import pytest

from weightless_mcu import verify

torch = pytest.importorskip("torch")
nn = torch.nn


class SmallCnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, padding=1)
        self.b1 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 16, 1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(16, 12)
        self.bn1 = nn.BatchNorm1d(12)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.b1(self.c1(x)))
        x = nn.functional.relu6(self.dw(x))
        y = self.pw(x)
        x = nn.functional.max_pool2d(y + torch.sigmoid(y), 2)
        x = self.gap(x)
        x = x.view(x.size(0), -1)
        x = self.drop(torch.tanh(self.bn1(self.fc1(x))))
        return torch.softmax(self.fc2(x), dim=-1)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = SmallCnn().eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for bn in (m.b1, m.bn1):
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
    return m


def _export(m, path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(m, (torch.randn(1, 3, 16, 16),), str(path), **kw)


def test_dynamo_exporter_with_external_data(tmp_path, net):
    path = tmp_path / "dynamo.onnx"
    _export(net, path, dynamo=True, external_data=True)
    assert (tmp_path / "dynamo.onnx.data").exists()
    res = verify(path, target="cortex-m4", samples=4)
    assert res["match"], res


def test_dynamo_exporter_dynamic_batch(tmp_path, net):
    path = tmp_path / "dyn.onnx"
    _export(net, path, dynamo=True, dynamic_shapes=({0: torch.export.Dim("batch")},))
    assert verify(path, target="host", samples=4)["match"]


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_legacy_exporter(tmp_path, net, opset):
    path = tmp_path / f"legacy{opset}.onnx"
    _export(net, path, dynamo=False, opset_version=opset, input_names=["image"], dynamic_axes={"image": {0: "N"}})
    assert verify(path, target="host", samples=4)["match"]


def test_linear_on_sequences_then_transpose(tmp_path):
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(8, 4)

        def forward(self, x):
            return self.lin(x).transpose(1, 2)

    torch.manual_seed(0)
    path = tmp_path / "seq.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Seq().eval(), (torch.randn(1, 5, 8),), str(path), dynamo=True)
    assert verify(path, target="cortex-m4", samples=2)["match"]
