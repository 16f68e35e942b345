"""Rebuild the reference-format weights of a fixture case from its deterministic recipe."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

OFFICIAL_DIR = Path(__file__).parents[1] / "fixtures" / "official"


def official_cases() -> list[Path]:
    return sorted(p for p in OFFICIAL_DIR.iterdir() if (p / "case.npz").is_file()) if OFFICIAL_DIR.is_dir() else []


def read_keys(path: Path) -> list[tuple[str, tuple[int, ...], str]]:
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(json.loads(shape)), dtype))
    return rows


def recipe_tensor(seed: int, k: int, key: str, shape: tuple[int, ...]) -> torch.Tensor:
    if key.endswith("num_batches_tracked"):
        return torch.zeros((), dtype=torch.int64)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, k])))
    u = rng.random(shape) * 2.0 - 1.0
    if key.endswith("weight") and len(shape) == 4:
        value = u * 2.0 / np.sqrt(shape[1] * shape[2] * shape[3])
    elif key.endswith("weight"):
        value = 1.0 + 0.1 * u
    elif key.endswith("running_var"):
        value = 1.0 + 0.25 * (u + 1.0)
    else:
        value = 0.05 * u
    return torch.from_numpy(value.astype(np.float32))


def rebuild_state_dict(case: Path, network: str, seed: int) -> tuple[dict[str, torch.Tensor], str]:
    """The reference state dict of ``network`` and the sha256 of its float tensors."""
    state: dict[str, torch.Tensor] = {}
    digest = hashlib.sha256()
    for k, (key, shape, _) in enumerate(read_keys(case / f"keys_{network}.tsv")):
        tensor = recipe_tensor(seed, k, key, shape)
        state[key] = tensor
        if tensor.is_floating_point():
            digest.update(tensor.numpy().tobytes(order="C"))
    return state, digest.hexdigest()


def write_reference_checkpoints(case: Path, folder: Path) -> dict[str, str]:
    """Write ``latest_net_{G,GF,GComp}.pth`` as the reference publishes them (GF keys with ``module.``).

    Returns the sha256 of each network's float tensors.
    """
    meta = json.loads((case / "meta.json").read_text())
    folder.mkdir(parents=True, exist_ok=True)
    hashes = {}
    for network in ("G", "GF", "GComp"):
        state, hashes[network] = rebuild_state_dict(case, network, meta["seed"])
        if network == "GF":
            state = {f"module.{k}": v for k, v in state.items()}
        torch.save(state, folder / f"latest_net_{network}.pth")
    return hashes
