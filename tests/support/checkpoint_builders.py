"""Build third-party checkpoint files (mmagic single file, authors' checkpoints.zip) from a tiny model."""

from __future__ import annotations

import io
import zipfile

import torch

from instcolor.models.weights.mmagic import MMAGIC_SEQUENTIAL_ALIASES, mmagic_key
from instcolor.models.model import InstColorModel

#: mmagic sub-model -> reference network name (the authors' file names).
MMAGIC_TO_REFERENCE = {"image_model": "GComp", "instance_model": "G", "fusion_model": "GF"}


def _dropped_heads(model: InstColorModel, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """The unused tensors a real checkpoint carries: ``model_class`` heads and ``weight_layerout``."""
    c256 = model.config.channels(256)
    hidden = model.config.fusion_hidden
    heads = {}
    for network in MMAGIC_TO_REFERENCE:
        heads[f"{network}.model_class.weight"] = torch.randn(529, c256, 1, 1, generator=generator)
        heads[f"{network}.model_class.bias"] = torch.randn(529, generator=generator)
    for part in ("simple_instance_conv", "simple_bg_conv"):
        for index, (c_out, c_in) in zip((0, 2, 4), ((hidden, 2), (hidden, hidden), (1, hidden))):
            prefix = f"fusion_model.weight_layerout.{part}.{index}"
            heads[f"{prefix}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=generator)
            heads[f"{prefix}.bias"] = torch.randn(c_out, generator=generator)
    return heads


def mmagic_state_dict(model: InstColorModel) -> dict[str, torch.Tensor]:
    """``model``'s tensors under mmagic's key names, plus the unused heads a real file has."""
    state = {mmagic_key(k): v.clone() for k, v in model.state_dict().items()}
    state.update(_dropped_heads(model, torch.Generator().manual_seed(7)))
    return state


def mmagic_checkpoint_bytes(model: InstColorModel) -> bytes:
    """An mmengine-style checkpoint: ``{"meta": {...}, "state_dict": {...}}``."""
    buffer = io.BytesIO()
    torch.save({"meta": {"mmagic_version": "1.0.0", "epoch": 0}, "state_dict": mmagic_state_dict(model)}, buffer)
    return buffer.getvalue()


def reference_state_dicts(model: InstColorModel) -> dict[str, dict[str, torch.Tensor]]:
    """The three reference networks' state dicts (``GF`` keys with ``module.``, ``model_class.0.*``)."""
    out: dict[str, dict[str, torch.Tensor]] = {name: {} for name in MMAGIC_TO_REFERENCE.values()}
    for key, value in mmagic_state_dict(model).items():
        network, module, rest = key.split(".", 2)
        if module in MMAGIC_SEQUENTIAL_ALIASES or module == "model_class":
            rest = f"0.{rest}"  # the reference wraps these layers in a one-element Sequential
        name = MMAGIC_TO_REFERENCE[network]
        out[name][("module." if name == "GF" else "") + f"{module}.{rest}"] = value
    return out


def reference_zip_bytes(model: InstColorModel, member: str, decoy: InstColorModel | None = None) -> bytes:
    """``checkpoints.zip`` with ``checkpoints/<member>/latest_net_{G,GF,GComp}.pth``.

    ``decoy``'s weights go into another folder listed first, as the real zip holds several sets.
    """
    buffer = io.BytesIO()
    folders = ([("checkpoints/coco_finetuned_mask_256", decoy)] if decoy is not None else []) + [
        (f"checkpoints/{member}", model)
    ]
    with zipfile.ZipFile(buffer, "w") as archive:
        for folder, source in folders:
            for name, state in reference_state_dicts(source).items():
                blob = io.BytesIO()
                torch.save(state, blob)
                archive.writestr(f"{folder}/latest_net_{name}.pth", blob.getvalue())
    return buffer.getvalue()
