"""Small builders shared by tests: tiny weights and images."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from instcolor.models.config import ModelConfig
from instcolor.models.model import InstColorModel
from instcolor.models.weights.store import save_model

TINY = ModelConfig(width=0.0625)


def tiny_model(seed: int = 0, config: ModelConfig = TINY) -> InstColorModel:
    """A tiny model with non-trivial random weights (BN statistics perturbed so outputs vary)."""
    torch.manual_seed(seed)
    model = InstColorModel(config)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_mean"):
                tensor.uniform_(-0.1, 0.1)
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
    return model.eval()


def hint_following_model(seed: int = 0, gain: float = 200.0) -> InstColorModel:
    """A tiny model marked as trained with hints (``ModelConfig.hints``) whose output visibly moves
    with the hint planes: the hint-colour weights of each network's first convolution are multiplied
    by ``gain`` (random weights hardly respond to a hint: a fraction of a grey level). The direction
    it moves in is random; it does not follow the hint's colour."""
    model = tiny_model(seed, dataclasses.replace(TINY, hints=True))
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.endswith("conv1.0.weight"):  # input channels: L, hint a, hint b, mask
                weight[:, 1:3] *= gain
    return model


def tiny_weights_file(path: Path, seed: int = 0) -> Path:
    save_model(path, tiny_model(seed), {"source": "tests", "licence": "MIT"})
    return path


def gradient_image(height: int = 48, width: int = 64, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A smooth colourful uint8 test image (``HxW`` when ``channels == 1``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    planes = [
        (np.sin(xx / width * np.pi * (1 + c) + rng.uniform(0, 3)) * 0.5 + 0.5) * (yy / height * 0.5 + 0.5)
        for c in range(channels)
    ]
    image = np.round(np.stack(planes, axis=-1) * 255).astype(np.uint8)
    return image[..., 0] if channels == 1 else image


def tiny_class_aware_model(seed: int = 0, class_inputs: str = "both", fusion_rule: str = "reference") -> InstColorModel:
    """:func:`tiny_model` made class-aware (81 classes), with random non-zero class embeddings."""
    from dataclasses import replace

    model = tiny_model(seed, replace(TINY, num_classes=81, class_inputs=class_inputs, fusion_rule=fusion_rule))
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for key in model.class_state_keys():
            tensor = model.get_parameter(key)
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
    return model
