"""Our weights format (one safetensors file, three networks) and the weights cache.

Our weights file is one safetensors file holding the three networks (keys ``full.*``,
``instance.*``, ``fusion.*``) with string metadata:

``format`` (``instcolor-weights``), ``format_version``, ``architecture`` (``instcolorization``),
``config`` (JSON of :class:`~instcolor.models.config.ModelConfig`), ``source``, ``licence``,
``created``, and free-form provenance such as ``input_sha256``.

:func:`map_state_dict` is the explicit key mapping every converter of foreign checkpoints uses
(:mod:`.reference`, :mod:`.mmagic`): anything missing, unexpected or mis-shaped is an error that
names it.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from platformdirs import user_cache_dir
from safetensors import safe_open
from safetensors.torch import save as safetensors_save

from instcolor.io import atomic_write_bytes
from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel

FORMAT = "instcolor-weights"


FORMAT_VERSION = "1"


ARCHITECTURE = "instcolorization"


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
