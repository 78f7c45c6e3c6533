"""TensorFlow ``GraphDef`` protobuf messages, built at run time: frozen graphs read without TensorFlow.

A minimal, wire-compatible subset of ``tensorflow/core/framework/{graph,node_def,attr_value,tensor,
tensor_shape,versions}.proto`` (same field numbers and types; ``DataType`` as a plain int32, which has the same
varint encoding as the enum). Fields left out (``GraphDef.library``, ``NodeDef.experimental_*``,
``AttrValue.func``, ``TensorProto.resource_handle_val``/``variant_val``) are kept as unknown fields by the
parser and never interpreted. The messages live in a private descriptor pool, so they never clash with a
TensorFlow or TensorBoard installed alongside.

Only decoding is needed by the converter; tests use the same classes to write replicas.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

#: TF ``DataType`` values this module decodes (tensorflow/core/framework/types.proto).
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT64, DT_HALF = 1, 2, 3, 4, 9, 19
_NUMPY = {DT_FLOAT: ("<f4", "float_val"), DT_DOUBLE: ("<f8", "double_val"), DT_INT32: ("<i4", "int_val"),
          DT_UINT8: ("u1", "int_val"), DT_INT64: ("<i8", "int64_val"), DT_HALF: ("<f2", "half_val")}

_T = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _T.LABEL_OPTIONAL, _T.LABEL_REPEATED

# message -> [(name, number, type, label, message type name)]
_SCHEMA: dict[str, list[tuple[str, int, int, int, str]]] = {
    "TensorShapeProto.Dim": [("size", 1, _T.TYPE_INT64, _OPTIONAL, ""), ("name", 2, _T.TYPE_STRING, _OPTIONAL, "")],
    "TensorShapeProto": [("dim", 2, _T.TYPE_MESSAGE, _REPEATED, ".tfgraph.TensorShapeProto.Dim"),
                         ("unknown_rank", 3, _T.TYPE_BOOL, _OPTIONAL, "")],
    "TensorProto": [
        ("dtype", 1, _T.TYPE_INT32, _OPTIONAL, ""),
        ("tensor_shape", 2, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.TensorShapeProto"),
        ("version_number", 3, _T.TYPE_INT32, _OPTIONAL, ""),
        ("tensor_content", 4, _T.TYPE_BYTES, _OPTIONAL, ""),
        ("float_val", 5, _T.TYPE_FLOAT, _REPEATED, ""),
        ("double_val", 6, _T.TYPE_DOUBLE, _REPEATED, ""),
        ("int_val", 7, _T.TYPE_INT32, _REPEATED, ""),
        ("string_val", 8, _T.TYPE_BYTES, _REPEATED, ""),
        ("scomplex_val", 9, _T.TYPE_FLOAT, _REPEATED, ""),
        ("int64_val", 10, _T.TYPE_INT64, _REPEATED, ""),
        ("bool_val", 11, _T.TYPE_BOOL, _REPEATED, ""),
        ("dcomplex_val", 12, _T.TYPE_DOUBLE, _REPEATED, ""),
        ("half_val", 13, _T.TYPE_INT32, _REPEATED, ""),
        ("uint32_val", 16, _T.TYPE_UINT32, _REPEATED, ""),
        ("uint64_val", 17, _T.TYPE_UINT64, _REPEATED, ""),
    ],
    "AttrValue.ListValue": [
        ("s", 2, _T.TYPE_BYTES, _REPEATED, ""), ("i", 3, _T.TYPE_INT64, _REPEATED, ""),
        ("f", 4, _T.TYPE_FLOAT, _REPEATED, ""), ("b", 5, _T.TYPE_BOOL, _REPEATED, ""),
        ("type", 6, _T.TYPE_INT32, _REPEATED, ""),
        ("shape", 7, _T.TYPE_MESSAGE, _REPEATED, ".tfgraph.TensorShapeProto"),
        ("tensor", 8, _T.TYPE_MESSAGE, _REPEATED, ".tfgraph.TensorProto"),
    ],
    "AttrValue": [  # a oneof in TF; plain optional fields decode the same bytes
        ("list", 1, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.AttrValue.ListValue"),
        ("s", 2, _T.TYPE_BYTES, _OPTIONAL, ""), ("i", 3, _T.TYPE_INT64, _OPTIONAL, ""),
        ("f", 4, _T.TYPE_FLOAT, _OPTIONAL, ""), ("b", 5, _T.TYPE_BOOL, _OPTIONAL, ""),
        ("type", 6, _T.TYPE_INT32, _OPTIONAL, ""),
        ("shape", 7, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.TensorShapeProto"),
        ("tensor", 8, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.TensorProto"),
        ("placeholder", 9, _T.TYPE_STRING, _OPTIONAL, ""),
    ],
    "NodeDef.AttrEntry": [("key", 1, _T.TYPE_STRING, _OPTIONAL, ""),
                          ("value", 2, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.AttrValue")],
    "NodeDef": [("name", 1, _T.TYPE_STRING, _OPTIONAL, ""), ("op", 2, _T.TYPE_STRING, _OPTIONAL, ""),
                ("input", 3, _T.TYPE_STRING, _REPEATED, ""), ("device", 4, _T.TYPE_STRING, _OPTIONAL, ""),
                ("attr", 5, _T.TYPE_MESSAGE, _REPEATED, ".tfgraph.NodeDef.AttrEntry")],
    "VersionDef": [("producer", 1, _T.TYPE_INT32, _OPTIONAL, ""), ("min_consumer", 2, _T.TYPE_INT32, _OPTIONAL, ""),
                   ("bad_consumers", 3, _T.TYPE_INT32, _REPEATED, "")],
    "GraphDef": [("node", 1, _T.TYPE_MESSAGE, _REPEATED, ".tfgraph.NodeDef"),
                 ("version", 3, _T.TYPE_INT32, _OPTIONAL, ""),
                 ("versions", 4, _T.TYPE_MESSAGE, _OPTIONAL, ".tfgraph.VersionDef")],
}


def _fill(message: descriptor_pb2.DescriptorProto, name: str) -> None:
    for field, number, kind, label, type_name in _SCHEMA[name]:
        entry = message.field.add(name=field, number=number, type=kind, label=label)
        if type_name:
            entry.type_name = type_name
        if label == _REPEATED and kind not in (_T.TYPE_MESSAGE, _T.TYPE_STRING, _T.TYPE_BYTES):
            entry.options.packed = True  # proto3 default; the parser accepts unpacked data as well


@lru_cache(maxsize=1)
def messages() -> dict[str, Any]:
    """The message classes by name: ``GraphDef``, ``NodeDef``, ``AttrValue``, ``TensorProto``, ..."""
    proto = descriptor_pb2.FileDescriptorProto(name="furiosa_tfgraph.proto", package="tfgraph", syntax="proto3")
    nested: dict[str, descriptor_pb2.DescriptorProto] = {}
    for name in _SCHEMA:
        outer, _, inner = name.partition(".")
        if not inner:
            nested[name] = proto.message_type.add(name=name)
    for name in _SCHEMA:
        outer, _, inner = name.partition(".")
        if inner:
            sub = nested[outer].nested_type.add(name=inner)
            if inner == "AttrEntry":
                sub.options.map_entry = True
            _fill(sub, name)
        else:
            _fill(nested[name], name)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tfgraph.{name}"))
            for name in _SCHEMA if not name.endswith("AttrEntry")}


def tensor_to_array(tensor: Any) -> np.ndarray:
    """A ``TensorProto`` as a numpy array (``tensor_content`` bytes, or the typed ``*_val`` field).

    As TF does, a typed field shorter than the shape is padded with its last value (a single value fills
    the tensor). Raises ValueError for a dtype this module does not decode or a size that does not fit.
    """
    shape = tuple(int(d.size) for d in tensor.tensor_shape.dim)
    if tensor.dtype not in _NUMPY:
        raise ValueError(f"TF dtype {tensor.dtype} is not decoded here (float, double, int32, uint8, int64, half)")
    dtype, field = _NUMPY[tensor.dtype]
    count = int(np.prod(shape, dtype=np.int64))
    if tensor.tensor_content:
        array = np.frombuffer(tensor.tensor_content, dtype=dtype)
        if array.size != count:
            raise ValueError(f"tensor_content holds {array.size} values, shape {shape} needs {count}")
        return array.reshape(shape).copy()
    values = list(getattr(tensor, field))
    if tensor.dtype == DT_HALF:
        values = np.asarray(values, dtype="<u2").view("<f2").tolist()
    if len(values) > count:
        raise ValueError(f"{field} holds {len(values)} values, shape {shape} needs {count}")
    if not values:
        return np.zeros(shape, dtype=dtype)
    values = values + [values[-1]] * (count - len(values))
    return np.asarray(values, dtype=dtype).reshape(shape)


def array_to_tensor(array: np.ndarray) -> Any:
    """A float32 numpy array as a ``TensorProto`` (``tensor_content``; a scalar as ``float_val``, as TF writes)."""
    tensor = messages()["TensorProto"](dtype=DT_FLOAT)
    array = np.asarray(array, dtype="<f4")
    tensor.tensor_shape.SetInParent()  # TF writes an empty shape for a scalar
    for size in array.shape:
        tensor.tensor_shape.dim.add(size=size)
    if array.size == 1 and array.ndim == 0:
        tensor.float_val.append(float(array))
    else:
        tensor.tensor_content = array.tobytes()
    return tensor
