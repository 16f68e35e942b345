"""Import of the reference checkpoints (``latest_net_{G,GF,GComp}.pth``, ericsujw/InstColorization).

They are torch pickles, read with ``torch.load(weights_only=True)`` only; every key is mapped
explicitly (:func:`map_reference_key`), and anything missing, unexpected or mis-shaped is an error
that names it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
import zipfile
from pathlib import Path

import torch

from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel
from instcolor.models.weights.store import WeightsError, map_state_dict, save_state, weights_home

REFERENCE_LICENCE = "MIT (ericsujw/InstColorization)"


REFERENCE_SOURCE = "Su, Chu, Huang: Instance-aware Image Colorization (CVPR 2020), checkpoints.zip"


#: Reference network name -> our sub-module.
REFERENCE_NETWORKS = {"GComp": "full", "G": "instance", "GF": "fusion"}


REFERENCE_FILES = {name: f"latest_net_{name}.pth" for name in REFERENCE_NETWORKS}


_BACKBONE_RENAMES = {
    "model1.": "conv1.", "model2.": "conv2.", "model3.": "conv3.", "model4.": "conv4.",
    "model5.": "conv5.", "model6.": "conv6.", "model7.": "conv7.", "model8up.0.": "conv8_up.",
    "model8.": "conv8.", "model9up.0.": "conv9_up.", "model9.": "conv9.",
    "model10up.0.": "conv10_up.", "model10.": "conv10.", "model3short8.0.": "shortcut3_8.",
    "model2short9.0.": "shortcut2_9.", "model1short10.0.": "shortcut1_10.", "model_out.": "ab_head.",
}  # fmt: skip


_FUSER_RENAMES = {
    "weight_layer.": "conv1_2", "weight_layer2.": "conv2_2", "weight_layer3.": "conv3_3",
    "weight_layer4.": "conv4_3", "weight_layer5.": "conv5_3", "weight_layer6.": "conv6_3",
    "weight_layer7.": "conv7_3", "weight_layer8_1.": "conv8_up", "weight_layer8_2.": "conv8_3",
    "weight_layer9_1.": "conv9_up", "weight_layer9_2.": "conv9_3", "weight_layer10_1.": "conv10_up",
    "weight_layer10_2.": "conv10_2",
}  # fmt: skip


_FUSER_PARTS = {"simple_instance_conv.": "instance_net.", "simple_bg_conv.": "background_net."}


#: Present in every reference checkpoint, unused at inference: dropped on purpose.
_DROPPED_PREFIXES = ("model_class.", "weight_layerout.")


def map_reference_key(network: str, key: str) -> str | None:
    """Map a reference state-dict key onto our :class:`InstColorModel` key.

    Args:
        network: ``"G"``, ``"GF"`` or ``"GComp"``.
        key: a key of that network's checkpoint (a ``module.`` prefix is stripped).

    Returns:
        Our key, or None for a tensor that is dropped on purpose (unused heads).

    Raises:
        WeightsError: for a key we do not know.
    """
    if network not in REFERENCE_NETWORKS:
        raise WeightsError(f"unknown reference network {network!r}")
    key = key.removeprefix("module.")
    if key.startswith(_DROPPED_PREFIXES):
        return None
    target = REFERENCE_NETWORKS[network]
    if network == "GF":
        for old, name in _FUSER_RENAMES.items():
            if key.startswith(old):
                rest = key[len(old) :]
                for part_old, part_new in _FUSER_PARTS.items():
                    if rest.startswith(part_old):
                        return f"fusion.fusers.{name}.{part_new}{rest[len(part_old):]}"
                raise WeightsError(f"unexpected key in GF checkpoint: {key!r}")
        target = "fusion.backbone"
    for old, new in _BACKBONE_RENAMES.items():
        if key.startswith(old):
            return f"{target}.{new}{key[len(old):]}"
    raise WeightsError(f"unexpected key in {network} checkpoint: {key!r}")


def convert_reference_state_dicts(
    state_dicts: dict[str, dict[str, torch.Tensor]], config: ModelConfig = ModelConfig()
) -> dict[str, torch.Tensor]:
    """Map the three reference state dicts onto a full :class:`InstColorModel` state dict.

    Raises:
        WeightsError: naming every missing, unexpected or mis-shaped tensor.
    """
    expected = InstColorModel(config).state_dict()
    out: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for network in REFERENCE_NETWORKS:
        if network not in state_dicts:
            problems.append(f"missing network {network} ({REFERENCE_FILES[network]})")
            continue
        mapped, network_problems = map_state_dict(
            state_dicts[network], lambda key: map_reference_key(network, key), expected, where=network
        )
        out.update(mapped)
        problems += network_problems
    missing = [k for k in expected if k not in out]
    if missing and not any(p.startswith("missing network") for p in problems):
        problems.extend(f"missing tensor {k!r}" for k in missing)
    if problems:
        raise WeightsError("reference checkpoint does not fit the architecture:\n  " + "\n  ".join(problems))
    return out


def load_refusal(err: BaseException) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, without torch's advice to turn the check off.

    Torch suggests ``weights_only=False``, which would run whatever code the pickle holds; we never
    do that, and never suggest it.
    """
    text = str(err)
    reasons = re.findall(r"WeightsUnpickler error: ([^\n]*)", text)
    if reasons:
        text = "; ".join(reason.strip() for reason in reasons)
    if "weights_only" in text or not text.strip():
        text = "the file holds more than tensors"
    return f"{text}; refused: instcolor loads only plain tensors and never runs code from a checkpoint"


def read_reference_checkpoints(path: str | os.PathLike) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """Read the reference ``latest_net_{G,GF,GComp}.pth`` from a folder or ``checkpoints.zip``.

    In a zip the files are looked up in ``coco_finetuned_mask_256_ffs/`` first, then anywhere.

    Returns:
        ``(state_dicts, sha256 of each file)``.
    """
    path = Path(path)
    blobs: dict[str, bytes] = {}
    if path.is_dir():
        for name, file_name in REFERENCE_FILES.items():
            candidates = [path / file_name, *sorted(path.rglob(file_name))]
            found = next((c for c in candidates if c.is_file()), None)
            if found is not None:
                blobs[name] = found.read_bytes()
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
            for name, file_name in REFERENCE_FILES.items():
                matches = sorted(m for m in members if m.endswith("/" + file_name) or m == file_name)
                preferred = [m for m in matches if "coco_finetuned_mask_256_ffs/" in m] or matches
                if preferred:
                    blobs[name] = archive.read(preferred[0])
    elif path.is_file():
        raise WeightsError(f"{path}: expected checkpoints.zip or a folder holding {', '.join(REFERENCE_FILES.values())}")
    else:
        raise WeightsError(f"{path}: no such file or folder")
    missing = [REFERENCE_FILES[n] for n in REFERENCE_NETWORKS if n not in blobs]
    if missing:
        raise WeightsError(f"{path}: missing {', '.join(missing)}")
    state_dicts: dict[str, dict[str, torch.Tensor]] = {}
    for name, blob in blobs.items():
        try:
            with warnings.catch_warnings():  # torch's notes on pickle protocols are not for our users
                warnings.simplefilter("ignore")
                loaded = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as err:  # an unpickling refusal or a corrupt file
            raise WeightsError(f"{REFERENCE_FILES[name]}: cannot be loaded safely ({load_refusal(err)})") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
            raise WeightsError(f"{REFERENCE_FILES[name]}: not a state dict of tensors")
        state_dicts[name] = loaded
    hashes = {REFERENCE_FILES[n]: hashlib.sha256(b).hexdigest() for n, b in blobs.items()}
    return state_dicts, hashes


def import_reference(
    path: str | os.PathLike, output: str | os.PathLike | None = None, name: str = "paper-coco"
) -> Path:
    """Convert the reference checkpoints into our safetensors format (the ``weights import`` command).

    Returns:
        The written file: ``output`` or ``weights_home() / f"{name}.safetensors"``.
    """
    state_dicts, hashes = read_reference_checkpoints(path)
    state = convert_reference_state_dicts(state_dicts)
    output = Path(output) if output is not None else weights_home() / f"{name}.safetensors"
    metadata = {
        "name": name,
        "source": f"{REFERENCE_SOURCE}; imported from {Path(path).name}",
        "licence": REFERENCE_LICENCE,
        "input_sha256": json.dumps(hashes, sort_keys=True),
    }
    save_state(output, state, ModelConfig(), metadata)
    return output
