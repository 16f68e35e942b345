"""Build third-party checkpoint files (mmagic single file, authors' checkpoints.zip) from a tiny model."""

from __future__ import annotations

import io
import zipfile

import torch

from tests.support.mmagic_layout import BARE_LAYERS, MMAGIC_SUBMODELS, mmagic_layout, reference_name, scaled_shape
from instcolor.models.weights.reference import map_reference_key
from instcolor.models.model import InstColorModel

#: mmagic sub-model -> reference network name (the authors' file names).
MMAGIC_TO_REFERENCE = MMAGIC_SUBMODELS


def mmagic_state_dict(model: InstColorModel, seed: int = 7) -> dict[str, torch.Tensor]:
    """``model``'s tensors under mmagic's key names (the literal layout in ``mmagic_layout``),
    plus the unused heads (``model_class``, ``weight_layerout``) a real file has, random.

    Each mmagic key is found in ``model`` through the *reference* networks' names and
    :func:`map_reference_key`, never through the mmagic converter's own table, so that a wrong row
    in that table shows up as a wrong tensor.
    """
    ours = model.state_dict()
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, full_shape in mmagic_layout().items():
        shape = scaled_shape(full_shape, model.config.width)
        target = map_reference_key(*reference_name(key))
        if target is None:  # a head the model does not have
            state[key] = torch.randn(shape, generator=generator)
        else:
            assert tuple(ours[target].shape) == shape, (key, target, tuple(ours[target].shape), shape)
            state[key] = ours[target].clone()
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
        if module in BARE_LAYERS:
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
