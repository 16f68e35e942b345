"""Reader for TensorFlow.js graph models: ``model.json`` + binary weight shards -> numpy.

A TFJS graph model is a JSON file holding a TensorFlow ``GraphDef`` (``modelTopology.node``: name,
op, inputs, attributes) and a ``weightsManifest``: groups of shard files whose concatenated bytes
hold every constant tensor in manifest order, little-endian. A weight may be stored quantized:

* ``{"dtype": "float16"}``: IEEE half floats, widened to the declared dtype;
* ``{"dtype": "uint8" | "uint16", "scale": s, "min": m}``: affine, ``value = q * s + m``.

Only reading is implemented; nothing here executes the graph.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "GraphNode",
    "TFJSFormatError",
    "TFJSGraphModel",
    "decode_attr",
    "find_model_json",
    "load_graph_model",
    "read_weights",
]

#: Bytes of one element for the dtypes a manifest may declare (``string`` is variable length).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("u1"),
    "complex64": np.dtype("<c8"),
    "float16": np.dtype("<f2"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
}


class TFJSFormatError(ValueError):
    """The files are not a readable TFJS graph model."""


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph.

    Attributes:
        name: unique node name, e.g. ``"tower_0/MobilenetV3/Conv/BatchNorm/FusedBatchNorm"``.
        op: TensorFlow op type, e.g. ``"_FusedConv2D"``.
        inputs: input tensor names; ``"node:1"`` is output 1 of ``node``, ``"^node"`` a control edge.
        attrs: attributes decoded to Python values by :func:`decode_attr`.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class TFJSGraphModel:
    """A loaded graph model.

    Attributes:
        nodes: graph nodes in file order (TFJS writes them topologically sorted only by chance:
            executors must sort them themselves).
        weights: constant tensors by node name, as numpy arrays of the declared dtype
            (float16/uint8/uint16-quantized weights are already dequantized).
        signature: the ``signature`` block (inputs/outputs with dtypes and shapes), may be empty.
        info: top-level metadata: ``format``, ``generatedBy``, ``convertedBy`` when present.
        manifest: the raw ``weightsManifest`` (names, shapes, dtypes, quantization).
    """

    nodes: list[GraphNode]
    weights: dict[str, np.ndarray]
    signature: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    manifest: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name = {node.name: node for node in self.nodes}

    def node(self, name: str) -> GraphNode:
        """The node called ``name`` (a ``":k"`` output suffix is ignored); KeyError when absent."""
        return self._by_name[name.lstrip("^").split(":")[0]]

    def __contains__(self, name: str) -> bool:
        return name.lstrip("^").split(":")[0] in self._by_name

    def op_counts(self) -> Counter[str]:
        """How often each op type occurs."""
        return Counter(node.op for node in self.nodes)

    def consumers(self, name: str) -> list[GraphNode]:
        """Nodes that read any output of node ``name``."""
        return [n for n in self.nodes if any(i.lstrip("^").split(":")[0] == name for i in n.inputs)]


def decode_attr(value: dict[str, Any]) -> Any:
    """Decode one ``AttrValue`` as TFJS stores it in JSON.

    ``s`` is base64 (decoded to ``str`` when UTF-8, else ``bytes``), ``i`` a decimal string,
    ``f`` a float, ``b`` a bool, ``type`` a ``DT_*`` name, ``shape`` a ``TensorShapeProto``
    (returned as a list of ints, ``-1`` for unknown, or None for unknown rank), ``list`` a list of
    any of those. Anything else is returned as given.
    """
    if not isinstance(value, dict) or not value:
        return value
    if "list" in value:
        items = value["list"] or {}
        for key in ("s", "i", "f", "b", "type", "shape"):
            if key in items:
                return [decode_attr({key: item}) for item in items[key]]
        return []
    (key, raw), *_ = value.items()
    if key == "s":
        data = base64.b64decode(raw)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data
    if key == "i":
        return int(raw)
    if key == "f":
        return float(raw)
    if key == "b":
        return bool(raw)
    if key == "type":
        return str(raw)
    if key == "shape":
        if raw.get("unknownRank"):
            return None
        return [int(d.get("size", -1)) for d in raw.get("dim", [])]
    return value


def _element_count(shape: list[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


def _read_strings(buffer: memoryview, offset: int, count: int) -> tuple[np.ndarray, int]:
    """``count`` strings, each a little-endian uint32 byte length followed by the bytes."""
    items = []
    for _ in range(count):
        (length,) = np.frombuffer(buffer, "<u4", 1, offset)
        offset += 4
        items.append(bytes(buffer[offset : offset + int(length)]))
        offset += int(length)
    return np.array(items, dtype=object), offset


def _decode_entry(entry: dict[str, Any], buffer: memoryview, offset: int) -> tuple[np.ndarray, int]:
    """Decode the weight ``entry`` at byte ``offset`` of its group's buffer; returns (array, next offset)."""
    name, dtype, shape = entry["name"], entry["dtype"], list(entry.get("shape", []))
    count = _element_count(shape)
    if dtype == "string":
        values, offset = _read_strings(buffer, offset, count)
        return values.reshape(shape), offset
    if dtype not in _NUMPY_DTYPES:
        raise TFJSFormatError(f"weight {name!r}: unsupported dtype {dtype!r}")
    quantization = entry.get("quantization")
    stored = _NUMPY_DTYPES[quantization["dtype"] if quantization else dtype]
    end = offset + count * stored.itemsize
    if end > len(buffer):
        raise TFJSFormatError(f"weight {name!r} needs bytes {offset}..{end} but the shards hold {len(buffer)}")
    raw = np.frombuffer(buffer, stored, count, offset)
    target = _NUMPY_DTYPES[dtype]
    if quantization is None:
        values = raw.copy()
    elif quantization["dtype"] == "float16":
        values = raw.astype(target)
    elif quantization["dtype"] in ("uint8", "uint16"):
        if "scale" not in quantization or "min" not in quantization:
            raise TFJSFormatError(f"weight {name!r}: affine quantization without scale/min")
        dequantized = raw.astype(np.float64) * float(quantization["scale"]) + float(quantization["min"])
        values = np.round(dequantized).astype(target) if target.kind in "iu" else dequantized.astype(target)
    else:
        raise TFJSFormatError(f"weight {name!r}: unsupported quantization {quantization['dtype']!r}")
    if dtype == "bool":
        values = values.astype(bool)
    return values.reshape(shape), end


def read_weights(manifest: list[dict[str, Any]], base_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every weight listed in a ``weightsManifest`` from its shard files under ``base_dir``.

    Returns:
        ``{name: array}``; float16 / affine-quantized weights come back dequantized in the
        declared dtype (float32 for weights).

    Raises:
        TFJSFormatError: a shard is missing, or its size does not match the manifest.
    """
    base_dir = Path(base_dir)
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        chunks = []
        for relative in group["paths"]:
            shard = base_dir / relative
            if not shard.is_file():
                raise TFJSFormatError(f"weight shard {shard} is missing")
            chunks.append(shard.read_bytes())
        buffer = memoryview(b"".join(chunks))
        offset = 0
        for entry in group["weights"]:
            weights[entry["name"]], offset = _decode_entry(entry, buffer, offset)
        if offset != len(buffer):
            raise TFJSFormatError(
                f"shards {group['paths']} hold {len(buffer)} bytes but the manifest describes {offset}"
            )
    return weights


def find_model_json(path: str | os.PathLike) -> Path:
    """The model JSON file: ``path`` itself, or inside folder ``path`` its ``model.json``, else its
    only ``*.json`` file."""
    path = Path(path)
    if not path.is_dir():
        return path
    candidates = sorted(path.glob("*.json"))
    preferred = [p for p in candidates if p.name == "model.json"]
    if preferred:
        return preferred[0]
    if len(candidates) == 1:
        return candidates[0]
    raise TFJSFormatError(f"{path}: expected one model JSON file, found {[p.name for p in candidates]}")


def load_graph_model(path: str | os.PathLike) -> TFJSGraphModel:
    """Load a TFJS graph model from its JSON file, or from a folder holding exactly one ``*.json``
    (``model.json`` is preferred when there are several).

    Raises:
        TFJSFormatError: not a graph model, or its weights cannot be read.
    """
    path = find_model_json(path)
    try:
        model = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise TFJSFormatError(f"{path}: cannot read model JSON ({err})") from err
    topology = model.get("modelTopology") if isinstance(model, dict) else None
    if not isinstance(topology, dict) or "node" not in topology:
        raise TFJSFormatError(f"{path}: not a TFJS graph model (no modelTopology.node)")
    nodes = [
        GraphNode(
            name=raw["name"],
            op=raw["op"],
            inputs=tuple(raw.get("input", [])),
            attrs={key: decode_attr(value) for key, value in raw.get("attr", {}).items()},
        )
        for raw in topology["node"]
    ]
    manifest = model.get("weightsManifest", [])
    weights = read_weights(manifest, path.parent)
    info = {key: model[key] for key in ("format", "generatedBy", "convertedBy") if key in model}
    return TFJSGraphModel(
        nodes=nodes, weights=weights, signature=model.get("signature") or {}, info=info, manifest=manifest
    )


def input_sha256(graph: TFJSGraphModel, tfjs_path: str | os.PathLike) -> str:
    """JSON ``{file name: sha256}`` of a graph's model JSON and weight shards (provenance of a conversion)."""
    import hashlib

    json_path = find_model_json(tfjs_path)
    files = [json_path] + [json_path.parent / p for group in graph.manifest for p in group["paths"]]
    return json.dumps({p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}, sort_keys=True)


def save_converted(output_path: str | os.PathLike, state: dict, metadata: dict[str, str]) -> Path:
    """Write a converted state dict as safetensors, atomically; float16 when that is exact.

    TFJS weights are often float16-quantized: then float16 storage is lossless and half the size.
    ``metadata["tensor_dtype"]`` says which was stored.
    """
    import torch
    from safetensors.torch import save

    from instcolor.io import atomic_write_bytes

    lossless = all(torch.equal(t, t.half().float()) for t in state.values())
    stored = {k: (t.half() if lossless else t) for k, t in sorted(state.items())}
    metadata = {**metadata, "tensor_dtype": "float16 (exact: the source weights are float16)" if lossless else "float32"}
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(output_path, save(stored, metadata=metadata))
    return output_path


def load_converted(
    path: str | os.PathLike,
    build,
    *,
    format: str,
    architecture: str,
    what: str,
    error: type[Exception],
    device="cpu",
):
    """Load a file written by :func:`save_converted` (no pickle) into an eval-mode float32 network.

    Args:
        build: ``(metadata) -> nn.Module``, the empty network the stored config describes.
        format, architecture: what the file's metadata must say.
        what: the network's name in messages ("CenterNet weights").
        error: the exception raised for an unreadable, foreign or mis-shaped file.

    Returns:
        ``(network, metadata)``.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = os.fspath(path)
    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        state = load_file(path, device="cpu")
    except Exception as err:
        raise error(f"{path}: not a readable safetensors file ({err})") from err
    if metadata.get("format") != format or metadata.get("architecture") != architecture:
        found = f"format={metadata.get('format')!r}, architecture={metadata.get('architecture')!r}"
        raise error(f"{path}: not {what} ({found})")
    model = build(metadata)
    try:
        model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    except RuntimeError as err:
        raise error(f"{path}: tensors do not fit the stored config ({err})") from err
    return model.eval().to(device), metadata
