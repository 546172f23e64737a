"""Frontend: an ONNX file in, a checked `Graph` with static shapes out.

Loads external data, runs the ONNX checker, upgrades old opsets, fixes the
batch dimension to 1 (other symbolic dimensions need an override), infers
shapes and converts everything into the IR.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper, shape_inference, version_converter

from .errors import ModelLoadError, OptionError, ShapeError, UnsupportedOpError
from .ir import Graph, Node, Tensor
from .qoperator import to_qdq, uses_qoperator
from .size_limits import MAX_FOLDED_ELEMENTS, made_elements

# Models older than this are upgraded, so lowering sees one form of every op
# (Clip bounds and Squeeze axes as inputs, Softmax on a single axis).
MIN_OPSET = 13

_FLOAT = onnx.TensorProto.FLOAT
# The element types of model inputs and outputs, by the name the IR gives them (Graph.io_dtypes).
IO_TYPES = {_FLOAT: "float32", onnx.TensorProto.INT8: "int8", onnx.TensorProto.UINT8: "uint8"}


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Read and check a model file, external data included."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such model file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several types for bad bytes
        raise ModelLoadError(f"{path} is not an ONNX model, or is truncated: it could not be parsed ({type(exc).__name__})") from None
    if not model.HasField("graph") or model.ir_version == 0:
        raise ModelLoadError(f"{path} is not an ONNX model: it has no graph or no IR version")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: its external weight data could not be read ({exc})") from None
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "validation failed"
        raise ModelLoadError(f"{path} is not a valid ONNX model: {first}") from None
    except UnicodeDecodeError:  # a name or string attribute that is not UTF-8
        raise ModelLoadError(f"{path} is not a valid ONNX model: a name or string is not UTF-8 text") from None
    return model


def initializer_array(init: onnx.TensorProto) -> np.ndarray:
    try:
        return _const_array(numpy_helper.to_array(init))
    except (ValueError, TypeError) as exc:  # data that does not fill the declared shape, an unknown dtype
        raise ModelLoadError(f"initializer '{init.name}' (shape {list(init.dims)}) cannot be read: {str(exc).splitlines()[0]}") from None


def _opset(model: onnx.ModelProto) -> int:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    raise ModelLoadError("the model imports no version of the default ONNX operator set")


def _upgrade(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    if _opset(model) >= MIN_OPSET:
        return model
    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:
        raise ModelLoadError(
            f"{source}: its opset {_opset(model)} could not be upgraded to {MIN_OPSET} ({str(exc).splitlines()[0]})"
        ) from None


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`["x=1,3,32,32", ...]` -> {"x": (1, 3, 32, 32)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs or []:
        name, sep, dims = spec.rpartition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ShapeError(f"--input-shape '{spec}' is not of the form NAME=D0,D1,... with positive dimensions")
        shapes[name] = shape
    return shapes


@dataclass(frozen=True)
class InputOptions:
    """What the user says of the model's inputs: shapes of symbolic dimensions (--input-shape)
    and inputs fixed at compile time (--constant-input)."""

    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    constants: dict[str, tuple[float, ...]] = field(default_factory=dict)

    @staticmethod
    def of(shapes=None, constants=None) -> "InputOptions":
        return InputOptions(dict(shapes or {}), dict(constants or {}))


def parse_constant_inputs(specs: list[str] | None) -> dict[str, tuple[float, ...]]:
    """`["sr=16000", "mask=1,0,1"]` -> {"sr": (16000.0,), "mask": (1.0, 0.0, 1.0)}."""
    constants: dict[str, tuple[float, ...]] = {}
    for spec in specs or []:
        name, sep, text = spec.partition("=")
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if not sep or not name or not values:
            raise OptionError(f"--constant-input '{spec}' is not of the form NAME=V[,V...] with numbers")
        if name in constants:
            raise OptionError(f"--constant-input names '{name}' twice")
        constants[name] = values
    return constants


def _fix_constant_inputs(model: onnx.ModelProto, constants: dict[str, tuple[float, ...]],
                         shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Graph inputs made initializers of the given values (of any numeric type): a sample
    rate or a flag that feeds Shape, Equal or If arithmetic then folds away at compile time.
    The input's static shape holds them (_static_shape); one value fills the whole shape. Returns the arrays, by name."""
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    made: dict[str, np.ndarray] = {}
    for name, values in constants.items():
        if name not in names:
            raise OptionError(f"--constant-input names '{name}', which is not an input of the model "
                              f"(inputs: {', '.join(names)})")
        vi = next(v for v in model.graph.input if v.name == name)
        tt = vi.type.tensor_type
        try:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type))
        except (KeyError, TypeError, ValueError):
            dtype = np.dtype(object)
        if dtype.kind not in "biuf":
            raise UnsupportedOpError(f"--constant-input '{name}': its element type "
                                     f"{onnx.TensorProto.DataType.Name(tt.elem_type)} is not numeric")
        shape = _static_shape(vi, shapes.get(name))
        size = int(np.prod(shape, dtype=np.int64))
        if len(values) not in (1, size):
            raise ShapeError(f"--constant-input gives {len(values)} values for '{name}', of shape {list(shape)}: "
                             f"give {size}, or one to fill it")
        data = np.array(values, np.float64)
        if dtype.kind in "biu":
            info = np.iinfo(dtype) if dtype.kind != "b" else None
            if not np.all(data == np.round(data)) or (info is not None and not np.all((data >= info.min) & (data <= info.max))):
                raise OptionError(f"--constant-input '{name}' is of type {dtype.name}: {', '.join(f'{v:g}' for v in values)} "
                                  f"are not all {dtype.name} values")
        arr = (np.full(shape, data[0]) if len(values) == 1 else data.reshape(shape)).astype(dtype)
        model.graph.initializer.append(numpy_helper.from_array(arr, name))
        model.graph.input.remove(vi)
        made[name] = arr
    return made


def _static_shape(vi: onnx.ValueInfoProto, override: tuple[int, ...] | None) -> tuple[int, ...]:
    """The static shape of a model input: the --input-shape given for it (which must agree with
    the dimensions the model fixes), or its own, a symbolic first dimension (the batch) being 1."""
    dims = vi.type.tensor_type.shape.dim
    if override is not None:
        if len(override) != len(dims):
            raise ShapeError(f"--input-shape gives {len(override)} dimensions for '{vi.name}', which has {len(dims)}")
        for d, v in zip(dims, override):
            if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != v:
                raise ShapeError(f"--input-shape sets a dimension of '{vi.name}' to {v}, but the model fixes it to {d.dim_value}")
        return tuple(override)
    shape = []
    for axis, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            shape.append(d.dim_value)
        elif axis == 0:
            shape.append(1)  # the batch dimension
        else:
            raise ShapeError(f"input '{vi.name}' has a symbolic dimension '{d.dim_param or '?'}' at axis {axis}; "
                             f"fix it with --input-shape {vi.name}=D0,D1,...")
    return tuple(shape)


def _fix_input_dims(model: onnx.ModelProto, overrides: dict[str, tuple[int, ...]]) -> None:
    inits = {i.name for i in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in inits]
    for name in overrides:
        if name not in names:
            raise ShapeError(f"--input-shape names '{name}', which is not an input of the model (inputs: {', '.join(names)})")
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        if tt.elem_type not in IO_TYPES:
            raise UnsupportedOpError(
                f"input '{vi.name}' has element type {onnx.TensorProto.DataType.Name(tt.elem_type)}; "
                f"only float32, int8 and uint8 inputs are supported (an input that is a setting, a sample rate "
                f"say, can be fixed at compile time with --constant-input {vi.name}=V[,V...])"
            )
        for d, v in zip(tt.shape.dim, _static_shape(vi, overrides.get(vi.name))):
            d.Clear()
            d.dim_value = v
    # Outputs and value_info may carry stale symbolic dims: shape inference recomputes them.
    for vi in list(model.graph.output) + list(model.graph.value_info):
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value"):
                d.Clear()
    del model.graph.value_info[:]


def _shape_of(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return tuple(dims)


def _const_array(arr: np.ndarray) -> np.ndarray:
    if arr.dtype.kind == "f":
        return np.array(arr, dtype=np.float32, order="C")  # keeps 0-d scalars 0-d
    if arr.dtype.kind in "iub":
        return np.array(arr, dtype=np.int64, order="C")
    return arr


def _dtype_name(stored: np.dtype) -> str:
    """Tensor.dtype of a constant: the integer type the model stored, else float32 (the IR's
    float data is float32 whatever the model stored)."""
    return stored.name if stored.kind in "iub" else "float32"


def _constant_value(attrs: dict) -> np.ndarray | None:
    if "value" in attrs:
        return _const_array(numpy_helper.to_array(attrs["value"]))
    for key in ("value_float", "value_floats", "value_int", "value_ints"):
        if key in attrs:
            return _const_array(np.array(attrs[key], np.float32 if "float" in key else np.int64))
    return None


def convert_nodes(protos, tensors: dict[str, Tensor], prefix: str = "") -> list[Node]:
    """ONNX nodes as IR nodes; Constant nodes become constant tensors instead."""
    nodes: list[Node] = []
    for i, n in enumerate(protos):
        label = n.name or f"{prefix}{n.op_type}_{i}"
        if n.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"node '{label}' uses op {n.op_type} of domain '{n.domain}'; only the default ONNX domain is supported")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        if n.op_type == "Constant":
            arr = _constant_value(attrs)
            if arr is None:
                raise UnsupportedOpError(f"Constant node '{label}' has no numeric value attribute")
            stored = numpy_helper.to_array(attrs["value"]).dtype if "value" in attrs else arr.dtype
            tensors[n.output[0]] = Tensor(n.output[0], tuple(arr.shape), arr, _dtype_name(stored))
            continue
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                attrs[a.name] = numpy_helper.to_array(a.t)
        nodes.append(Node(n.op_type, label, list(n.input), list(n.output), attrs))
    return nodes


def to_graph(model: onnx.ModelProto, name: str) -> Graph:
    g = model.graph
    tensors: dict[str, Tensor] = {}
    for init in g.initializer:
        arr = initializer_array(init)
        tensors[init.name] = Tensor(init.name, tuple(arr.shape), arr,
                                    _dtype_name(np.dtype(helper.tensor_dtype_to_np_dtype(init.data_type))))
    for vi in list(g.input) + list(g.value_info) + list(g.output):
        if vi.name in tensors:
            continue
        shape = _shape_of(vi)
        if shape is not None:
            tensors[vi.name] = Tensor(vi.name, shape)
    nodes = convert_nodes(g.node, tensors)
    inits = {i.name for i in g.initializer}
    inputs = [vi.name for vi in g.input if vi.name not in inits]
    outputs = [vi.name for vi in g.output]
    io_dtypes = {}
    for vi in [v for v in g.input if v.name not in inits] + list(g.output):
        kind = IO_TYPES.get(vi.type.tensor_type.elem_type)
        if kind is None:
            raise UnsupportedOpError(f"output '{vi.name}' has element type "
                                     f"{onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)}; "
                                     f"only float32, int8 and uint8 outputs are supported")
        if kind != "float32":
            io_dtypes[vi.name] = kind
            if vi.name in tensors and vi.name in inputs:
                tensors[vi.name].dtype = kind
    return Graph(name, nodes, tensors, inputs, outputs, _opset(model), io_dtypes=io_dtypes)


def _refuse_huge_constants(model: onnx.ModelProto) -> None:
    """ONNX's own shape inference would build these arrays (data propagation): refuse
    an absurd ConstantOfShape/Range/Expand/Tile of constant operands before it runs."""
    known = {i.name: i for i in model.graph.initializer}
    consts = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
    shapes = {i.name: tuple(i.dims) for i in model.graph.initializer}

    def value(name):
        try:
            if name in known:
                return numpy_helper.to_array(known[name])
            if name in consts:
                return _constant_value({a.name: onnx.helper.get_attribute_value(a) for a in consts[name].attribute})
        except (ValueError, TypeError):
            return None
        return None

    for vi in model.graph.input:
        dims = vi.type.tensor_type.shape.dim
        shapes.setdefault(vi.name, tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims))
    for i, n in enumerate(model.graph.node):
        if n.op_type in ("ConstantOfShape", "Range", "Expand", "Tile"):
            size = made_elements(n.op_type, [value(name) for name in n.input], shapes.get(n.input[0]) if n.input else None)
            if size is not None and size > MAX_FOLDED_ELEMENTS:
                raise ShapeError(f"{n.op_type} node '{n.name or f'{n.op_type}_{i}'}' makes {size:,} elements; more than "
                                 f"{MAX_FOLDED_ELEMENTS:,} are not supported")


def load_model(path: str | os.PathLike, input_shapes: dict[str, tuple[int, ...]] | None = None,
               constant_inputs: dict[str, tuple[float, ...]] | None = None) -> tuple[onnx.ModelProto, Graph]:
    """Load a model file into the IR. Returns the prepared ONNX model too (static
    shapes, upgraded opset, constant inputs as initializers): it is what onnxruntime
    runs as the reference."""
    path = Path(path)
    model = load_onnx(path)
    _refuse_huge_constants(model)
    model = _upgrade(model, str(path))
    shapes = dict(input_shapes or {})
    fixed = _fix_constant_inputs(model, constant_inputs or {}, shapes)
    _fix_input_dims(model, {k: v for k, v in shapes.items() if k not in fixed})
    model = _infer_shapes(model, path)
    # QOperator ops (QLinearConv, com.microsoft's QGemm, ...) are read in their QDQ form;
    # onnxruntime runs the model as it was given.
    read = _infer_shapes(to_qdq(model), path) if uses_qoperator(model) else model
    graph = to_graph(read, model_name(path))
    graph.constant_inputs = {k: v.reshape(-1).tolist() for k, v in fixed.items()}
    return model, graph


def _infer_shapes(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except Exception as exc:
        raise ShapeError(f"{path}: shape inference failed: {str(exc).strip().splitlines()[-1]}") from None


def model_name(path: Path) -> str:
    """A C identifier made from the file name: 'ad01-fp32.onnx' -> 'ad01_fp32'."""
    stem = path.name[: -len(".onnx")] if path.name.endswith(".onnx") else path.stem
    ident = "".join(c if c.isalnum() else "_" for c in stem.lower()).strip("_") or "model"
    return ident if not ident[0].isdigit() else "m_" + ident
