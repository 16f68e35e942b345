"""Weights: our safetensors format, the weights cache, and import of the reference checkpoints.

Our weights file is one safetensors file holding the three networks (keys ``full.*``,
``instance.*``, ``fusion.*``) with string metadata:

``format`` (``instcolor-weights``), ``format_version``, ``architecture`` (``instcolorization``),
``config`` (JSON of :class:`~instcolor.networks.ModelConfig`), ``source``, ``licence``,
``created``, and free-form provenance such as ``input_sha256``.

Reference checkpoints (``latest_net_{G,GF,GComp}.pth``) are torch pickles. They are read with
``torch.load(weights_only=True)`` only, every key is mapped explicitly (:func:`map_reference_key`),
and anything missing, unexpected or mis-shaped is an error that names it.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from instcolor.io import atomic_write_bytes
from instcolor.networks import InstColorModel, ModelConfig

FORMAT = "instcolor-weights"
FORMAT_VERSION = "1"
ARCHITECTURE = "instcolorization"
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


class WeightsError(ValueError):
    """A weights file is missing, corrupt, or does not fit the architecture."""


@dataclass
class LoadedWeights:
    model: InstColorModel
    metadata: dict[str, str]
    path: Path | None = None


def weights_home() -> Path:
    """Cache folder for weights: ``$INSTCOLOR_HOME`` or the user cache dir, with ``weights/`` inside."""
    root = os.environ.get("INSTCOLOR_HOME") or user_cache_dir("instcolor")
    return Path(root) / "weights"


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


def map_state_dict(
    state: Mapping[str, torch.Tensor],
    map_key: Callable[[str], str | None],
    expected: Mapping[str, torch.Tensor],
    where: str = "",
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename a foreign state dict's tensors onto our keys, collecting every misfit instead of stopping.

    Args:
        state: the foreign tensors.
        map_key: foreign key -> our key, None for a tensor to drop; raises :class:`WeightsError`
            for a key it does not know.
        expected: our state dict (names, shapes and dtypes to fit).
        where: prefix for the problem lines (the foreign network's name).

    Returns:
        ``(tensors under our keys, in our dtypes; problems)``: unknown keys, keys mapping to no
        tensor of ours, two keys mapping to one tensor, wrong shapes. Missing tensors are the
        caller's to report.
    """
    prefix = f"{where}: " if where else ""
    out: dict[str, torch.Tensor] = {}
    source_of: dict[str, str] = {}
    problems: list[str] = []
    for key, value in state.items():
        try:
            ours = map_key(key)
        except WeightsError as err:
            problems.append(str(err))
            continue
        if ours is None:
            continue
        if ours not in expected:
            problems.append(f"{prefix}{key!r} maps to {ours!r}, which the model does not have")
        elif ours in source_of:
            problems.append(f"{prefix}{key!r} and {source_of[ours]!r} both map to {ours!r}")
        elif tuple(value.shape) != tuple(expected[ours].shape):
            problems.append(f"{prefix}{key!r} has shape {tuple(value.shape)}, expected {tuple(expected[ours].shape)}")
        else:
            out[ours] = value.detach().to(expected[ours].dtype).contiguous()
            source_of[ours] = key
    return out, problems


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
            loaded = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
        except Exception as err:  # an unpickling refusal or a corrupt file
            raise WeightsError(f"{REFERENCE_FILES[name]}: cannot be loaded safely ({err})") from err
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


def save_state(
    path: str | os.PathLike, state: dict[str, torch.Tensor], config: ModelConfig, metadata: dict[str, str]
) -> None:
    """Write a model state dict as our safetensors weights file, atomically."""
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": ARCHITECTURE,
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        **{k: str(v) for k, v in metadata.items()},
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items() if not k.endswith("num_batches_tracked")}
    atomic_write_bytes(path, safetensors_save(tensors, metadata=meta))


def save_model(path: str | os.PathLike, model: InstColorModel, metadata: dict[str, str]) -> None:
    """Write an :class:`InstColorModel` as our weights file."""
    save_state(path, model.state_dict(), model.config, metadata)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of one of our weights files (reads no tensor)."""
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as err:
        raise WeightsError(f"{path}: not a readable safetensors file ({err})") from err
    if meta.get("format") != FORMAT:
        raise WeightsError(f"{path}: not an instcolor weights file (format={meta.get('format')!r})")
    return meta


def load_weights(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LoadedWeights:
    """Load one of our safetensors weights files into an :class:`InstColorModel` (in eval mode).

    Raises:
        WeightsError: when the file is not ours or its tensors do not fit the stored config.
    """
    meta = read_metadata(path)
    if meta.get("architecture") != ARCHITECTURE:
        raise WeightsError(f"{path}: architecture {meta.get('architecture')!r} is not {ARCHITECTURE!r}")
    config = ModelConfig(**json.loads(meta.get("config", "{}")))
    model = InstColorModel(config)
    with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}
    expected = model.state_dict()
    wanted = {k for k in expected if not k.endswith("num_batches_tracked")}
    missing = sorted(wanted - state.keys())
    unexpected = sorted(state.keys() - wanted)
    mis_shaped = [k for k in wanted & state.keys() if state[k].shape != expected[k].shape]
    if missing or unexpected or mis_shaped:
        raise WeightsError(
            f"{path}: tensors do not fit the architecture; missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"mis-shaped {mis_shaped[:5]}"
        )
    model.load_state_dict(state, strict=False)
    model.eval()
    return LoadedWeights(model=model.to(map_location), metadata=meta, path=Path(path))


def installed_weights(home: Path | None = None) -> list[tuple[Path, dict[str, str]]]:
    """Every readable weights file in the cache, with its metadata."""
    home = home or weights_home()
    found = []
    for path in sorted(home.glob("*.safetensors")) if home.is_dir() else []:
        try:
            found.append((path, read_metadata(path)))
        except WeightsError:
            continue
    return found


def resolve_weights_path(name_or_path: str | os.PathLike) -> Path:
    """A file path as given, or the weights called ``name``: installed in the cache, or bundled."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if re.fullmatch(r"[A-Za-z0-9_.-]+", str(name_or_path)):
        from instcolor.registry import installed_path  # the registry builds on this module

        installed = installed_path(str(name_or_path))
        if installed is not None:
            return installed
    raise WeightsError(
        f"weights {os.fspath(name_or_path)!r} not found (neither a file nor installed in {weights_home()}); "
        "install the paper's weights with: instcolor weights import PATH/TO/checkpoints.zip"
    )
