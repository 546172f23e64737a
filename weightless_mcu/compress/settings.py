"""Compression settings: defaults for every layer, overrides per layer, read
from command-line options or a TOML file:

    [defaults]
    density = 0.08        # kept fraction of each layer's weights, (0, 1]
    channels = 1.0        # kept fraction of its output channels (filters, neurons), (0, 1]
    clusters = 8          # K shared values per layer
    bits = 6              # t, bits per Bloomier cell (K <= 2^t - 1)
    hashes = 4            # location hashes (cell reads) per key, 2..4
    cells_per_key = 1.03  # table size the solver starts from
    encoding = "auto"     # auto | bloomier | codebook | sparse | dense
    prune = "layer"       # layer | global (one magnitude threshold for all layers)
    protect = "auto"      # auto | none (see below)
    min_positions = 256   # layers with fewer weights stay dense float32
    seed = 24301
    bias_clusters = 4     # with retraining: each bias as K shared values where that is smaller; 0: float32

With protect = "auto" (the default), the output layer when it holds under a
quarter of the model's compressible weights (a classifier's head), and any
layer under 2% of them (a first convolution, a small depthwise one), keep
every weight as a dense cluster index (the codebook encoding): pruning them
and false positives in them cost accuracy out of proportion to the few bytes
they would save, and a pruned output layer was seen to take a model from 98%
to 43%. A layer's own density or encoding setting, or an encoding given
for every layer, wins over this.

    [layers."conv1"]      # a node name or its weight tensor's name
    density = 0.5
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..errors import OptionError

ENCODINGS = ("auto", "bloomier", "codebook", "sparse", "dense")
PROTECT = ("auto", "none")
PROTECT_OUTPUT_SHARE = 0.25  # of the model's compressible weights
PROTECT_SHARE = 0.02


@dataclass(frozen=True)
class LayerSettings:
    density: float = 1.0
    channels: float = 1.0
    clusters: int = 16
    bits: int = 8
    hashes: int = 4
    cells_per_key: float = 1.03
    encoding: str = "auto"
    min_positions: int = 256
    seed: int = 24301
    bias_clusters: int = 4  # with retraining: the bias as K shared values where that stores fewer bytes; 0: float32

    def validate(self, where: str) -> "LayerSettings":
        if not 0.0 < self.density <= 1.0:
            raise OptionError(f"{where}: density must be in (0, 1], not {self.density}")
        if not 0.0 < self.channels <= 1.0:
            raise OptionError(f"{where}: channels must be in (0, 1], not {self.channels}")
        if not 1 <= self.bits <= 16:
            raise OptionError(f"{where}: bits must be 1 to 16, not {self.bits}")
        if self.clusters < 1:
            raise OptionError(f"{where}: clusters must be at least 1, not {self.clusters}")
        if self.clusters > (1 << self.bits) - 1:
            raise OptionError(f"{where}: {self.bits} bits hold at most {(1 << self.bits) - 1} clusters (2^t - 1), "
                              f"not {self.clusters}; use more bits or fewer clusters")
        if not 2 <= self.hashes <= 4:
            raise OptionError(f"{where}: hashes must be 2 to 4, not {self.hashes}")
        if not 1.0 <= self.cells_per_key <= 4.0:
            raise OptionError(f"{where}: cells_per_key must be in [1, 4], not {self.cells_per_key}")
        if self.encoding not in ENCODINGS:
            raise OptionError(f"{where}: encoding must be one of {', '.join(ENCODINGS)}, not '{self.encoding}'")
        if self.min_positions < 0:
            raise OptionError(f"{where}: min_positions must be >= 0")
        if not 0 <= self.seed < 2**32:
            raise OptionError(f"{where}: seed must be a 32-bit unsigned integer")
        if not 0 <= self.bias_clusters <= 256:
            raise OptionError(f"{where}: bias_clusters must be 0 (float32 biases) to 256, not {self.bias_clusters}")
        return self


@dataclass(frozen=True)
class CompressionSettings:
    defaults: LayerSettings
    layers: dict[str, dict]  # node or tensor name -> overrides
    prune: str = "layer"
    # The defaults the user set (the budget search leaves them as they are; a given encoding
    # is obeyed on protected layers too). None: those that differ from LayerSettings()'s.
    given: frozenset[str] | None = None
    protect: str = "auto"  # auto: the output layer and small layers as dense indices (see the module's notes)

    def __post_init__(self):
        if self.given is None:
            plain = LayerSettings()
            object.__setattr__(self, "given", frozenset(f.name for f in fields(LayerSettings)
                                                        if getattr(self.defaults, f.name) != getattr(plain, f.name)))

    def for_layer(self, node: str, tensor: str) -> LayerSettings:
        over = {**self.layers.get(tensor, {}), **self.layers.get(node, {})}
        return replace(self.defaults, **over).validate(f"layer '{node}'")

    def given_for(self, node: str, tensor: str) -> frozenset[str]:
        """The settings the user fixed for this layer: uniform ones and its own."""
        return self.given | set(self.layers.get(tensor, {})) | set(self.layers.get(node, {}))


_FIELDS = {f.name: f.type for f in fields(LayerSettings)}


def _coerce(key: str, value, where: str):
    if key not in _FIELDS:
        raise OptionError(f"{where}: unknown setting '{key}' (known: {', '.join(sorted(_FIELDS))}, prune, protect)")
    kind = _FIELDS[key]
    try:
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError):
        raise OptionError(f"{where}: setting '{key}' has a bad value {value!r}") from None


def make_settings(options: dict | None = None, config: str | Path | None = None) -> CompressionSettings | None:
    """Settings from command-line options (None values ignored) over a config
    file's; None when neither asks for compression."""
    options = {k: v for k, v in (options or {}).items() if v is not None}
    if not options and config is None:
        return None
    defaults: dict = {}
    layers: dict[str, dict] = {}
    prune = "layer"
    protect = "auto"
    if config is not None:
        path = Path(config)
        try:
            table = tomllib.loads(path.read_text())
        except OSError as exc:
            raise OptionError(f"--config {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise OptionError(f"--config {path} is not valid TOML: {exc}") from None
        unknown = set(table) - {"defaults", "layers"}
        if unknown:
            raise OptionError(f"--config {path}: unknown section(s) {', '.join(sorted(unknown))}; use [defaults] and [layers.NAME]")
        for k, v in table.get("defaults", {}).items():
            if k == "prune":
                prune = str(v)
            elif k == "protect":
                protect = str(v)
            else:
                defaults[k] = _coerce(k, v, f"{path} [defaults]")
        for name, over in table.get("layers", {}).items():
            if not isinstance(over, dict):
                raise OptionError(f"{path}: [layers] entries must be tables, like [layers.\"{name}\"]")
            layers[name] = {k: _coerce(k, v, f"{path} [layers.{name}]") for k, v in over.items()}
    if "prune" in options:
        prune = options.pop("prune")
    if "protect" in options:
        protect = options.pop("protect")
    if protect not in PROTECT:
        raise OptionError(f"protect must be 'auto' or 'none', not '{protect}'")
    for k, v in options.items():
        defaults[k] = _coerce(k, v, f"--{k.replace('_', '-')}")
    if prune not in ("layer", "global"):
        raise OptionError(f"prune must be 'layer' or 'global', not '{prune}'")
    base = replace(LayerSettings(), **defaults).validate("compression settings")
    return CompressionSettings(base, layers, prune, frozenset(defaults), protect)


_COMMENTS = {
    "density": "kept fraction of each layer's weights, (0, 1]",
    "channels": "kept fraction of its output channels (filters, neurons), (0, 1]",
    "clusters": "K shared values per layer",
    "bits": "t, bits per Bloomier cell (K <= 2^t - 1)",
    "hashes": "location hashes (cell reads) per key, 2..4",
    "cells_per_key": "table size the solver starts from",
    "encoding": "auto | bloomier | codebook | sparse | dense",
    "min_positions": "layers with fewer weights stay dense float32",
    "seed": "hash seed (32-bit)",
    "bias_clusters": "with --train-data: biases as K shared values where smaller; 0: float32",
}


def _toml_value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else repr(v)  # a JSON string is a TOML basic string


def config_text(model_name: str, layers: list[tuple[str, str, int]], defaults: LayerSettings = LayerSettings()) -> str:
    """A TOML config with every setting at its default and one table per layer with
    weights (node name, op, positions), ready to edit and pass to --config."""
    lines = [f"# Compression settings for {model_name}: weightless-mcu compile MODEL --config THIS_FILE -o out/",
             "# Every value below is the default. A layer's table overrides [defaults] for that layer.", "",
             "[defaults]"]
    width = max(len(f"{f.name} = {_toml_value(getattr(defaults, f.name))}") for f in fields(LayerSettings))
    for f in fields(LayerSettings):
        text = f"{f.name} = {_toml_value(getattr(defaults, f.name))}"
        lines.append(f"{text:<{width}}  # {_COMMENTS[f.name]}")
    lines.append(f'{"prune = " + chr(34) + "layer" + chr(34):<{width}}  # layer | global (one magnitude threshold for all layers)')
    lines.append(f'{"protect = " + chr(34) + "auto" + chr(34):<{width}}  # auto: a small output layer and tiny layers '
                 f'as dense indices | none')
    for name, op, positions in layers:
        small = positions < defaults.min_positions
        lines += ["", f"[layers.{_toml_value(name)}]  # {op}, {positions:,} weights" + (" (below min_positions: stays dense)" if small else ""),
                  f"# density = {defaults.density}", f"# clusters = {defaults.clusters}"]
    return "\n".join(lines) + "\n"
