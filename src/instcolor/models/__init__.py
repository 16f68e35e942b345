"""The networks: backbone (:mod:`.backbone`), fusion (:mod:`.fusion`), the model (:mod:`.model`),
their configuration (:mod:`.config`), and weights (:mod:`.weights`).

Imports only the layers below (:mod:`instcolor.color`, :mod:`instcolor.io`).
"""

from instcolor.models.backbone import (
    FEATURE_NAMES,
    FEATURE_STRIDE,
    RECTIFIED_INSTANCE_FEATURES,
    ColorizationBackbone,
)
from instcolor.models.config import (
    ModelConfig,
)
from instcolor.models.model import (
    InstColorModel,
    network_input,
)

__all__ = [
    "ColorizationBackbone",
    "FEATURE_NAMES",
    "FEATURE_STRIDE",
    "InstColorModel",
    "ModelConfig",
    "RECTIFIED_INSTANCE_FEATURES",
    "network_input",
]
