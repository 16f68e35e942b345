import json
from pathlib import Path

import numpy as np
import pytest

from instcolor.detection.tfjs import TFJSFormatError, decode_attr, find_model_json, load_graph_model, read_weights

FIXTURE = Path(__file__).parents[1] / "fixtures" / "centernet"


def _write_model(folder: Path, weights: list[dict], shards: list[bytes], nodes: list[dict] | None = None) -> Path:
    for index, data in enumerate(shards):
        (folder / f"group1-shard{index + 1}of{len(shards)}.bin").write_bytes(data)
    paths = [f"group1-shard{index + 1}of{len(shards)}.bin" for index in range(len(shards))]
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes or [{"name": "x", "op": "Placeholder"}]},
        "weightsManifest": [{"paths": paths, "weights": weights}],
    }
    path = folder / "model.json"
    path.write_text(json.dumps(model))
    return path


def test_reads_every_weight_encoding_across_shards(tmp_path):
    plain = np.array([[1.5, -2.25], [3.0, 4.125]], np.float32)
    ints = np.array([7, -8, 9], np.int32)
    half = np.array([0.1666259765625, -3.5, 65504.0], np.float16)
    quant8 = np.array([0, 1, 255], np.uint8)
    quant16 = np.array([0, 2, 65535], np.uint16)
    flags = np.array([1, 0, 1], np.uint8)
    strings = b"".join(len(s).to_bytes(4, "little") + s for s in (b"ab", b"", b"xyz"))
    blob = b"".join(a.tobytes() for a in (plain, ints, half, quant8, quant16, flags)) + strings
    weights = [
        {"name": "plain", "shape": [2, 2], "dtype": "float32"},
        {"name": "ints", "shape": [3], "dtype": "int32"},
        {"name": "half", "shape": [3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "q8", "shape": [3], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}},
        {"name": "q16i", "shape": [3], "dtype": "int32",
         "quantization": {"dtype": "uint16", "scale": 0.25, "min": 1.0}},
        {"name": "flags", "shape": [3], "dtype": "bool"},
        {"name": "words", "shape": [3], "dtype": "string"},
    ]
    # Shard boundaries fall in the middle of tensors, as the TFJS converter writes them.
    path = _write_model(tmp_path, weights, [blob[:13], blob[13:40], blob[40:]])
    model = load_graph_model(tmp_path)
    w = model.weights
    np.testing.assert_array_equal(w["plain"], plain)
    np.testing.assert_array_equal(w["ints"], ints)
    assert w["half"].dtype == np.float32 and w["half"].tolist() == [0.1666259765625, -3.5, 65504.0]
    np.testing.assert_allclose(w["q8"], [-1.0, -0.5, 126.5])
    assert w["q16i"].dtype == np.int32 and w["q16i"].tolist() == [1, 2, 16385]
    assert w["flags"].dtype == bool and w["flags"].tolist() == [True, False, True]
    assert w["words"].tolist() == [b"ab", b"", b"xyz"]
    assert find_model_json(tmp_path) == path and load_graph_model(path).weights.keys() == w.keys()


def test_size_mismatch_and_missing_shard_are_errors(tmp_path):
    weights = [{"name": "a", "shape": [4], "dtype": "float32"}]
    _write_model(tmp_path, weights, [np.zeros(3, np.float32).tobytes()])
    with pytest.raises(TFJSFormatError, match="needs bytes"):
        load_graph_model(tmp_path)
    _write_model(tmp_path, weights, [np.zeros(5, np.float32).tobytes()])
    with pytest.raises(TFJSFormatError, match="hold 20 bytes"):
        load_graph_model(tmp_path)
    with pytest.raises(TFJSFormatError, match="missing"):
        read_weights([{"paths": ["nope.bin"], "weights": weights}], tmp_path)
    (tmp_path / "other.json").write_text("{}")
    (tmp_path / "model.json").unlink()
    with pytest.raises(TFJSFormatError, match="not a TFJS graph model"):
        load_graph_model(tmp_path)


def test_attributes_are_decoded():
    assert decode_attr({"s": "U0FNRQ=="}) == "SAME"
    assert decode_attr({"list": {"i": ["1", "2", "2", "1"]}}) == [1, 2, 2, 1]
    assert decode_attr({"list": {"s": ["Qmlhc0FkZA==", "UmVsdQ=="]}}) == ["BiasAdd", "Relu"]
    assert decode_attr({"list": {}}) == []
    assert decode_attr({"f": 0}) == 0.0 and decode_attr({"b": True}) is True
    assert decode_attr({"type": "DT_FLOAT"}) == "DT_FLOAT"
    assert decode_attr({"shape": {"dim": [{"size": "1"}, {"size": "512"}]}}) == [1, 512]


def test_reads_the_centernet_graph():
    model = load_graph_model(FIXTURE)
    assert model.info["generatedBy"] == "https://github.com/610265158/mobilenetv3_centernet"
    assert len(model.nodes) == 544 and len(model.weights) == 267
    assert model.op_counts()["_FusedConv2D"] == 62 and model.op_counts()["Const"] == 267
    stem = model.node("tower_0/MobilenetV3/Conv/BatchNorm/FusedBatchNorm")
    assert stem.attrs["strides"] == [1, 2, 2, 1] and stem.attrs["padding"] == "SAME"
    assert stem.attrs["fused_ops"] == ["BiasAdd"]
    kernel = model.weights[stem.inputs[1]]
    assert kernel.shape == (3, 3, 3, 16) and kernel.dtype == np.float32
    # float16-quantized: every value is exactly a half float.
    np.testing.assert_array_equal(kernel, kernel.astype(np.float16).astype(np.float32))
    assert model.weights["tower_0/TopKV2/k"].dtype == np.int32 and int(model.weights["tower_0/TopKV2/k"]) == 100
