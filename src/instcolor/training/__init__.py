"""Training: the three-stage trainer (:mod:`.trainer`), its configuration (:mod:`.config`), stages
(:mod:`.stages`), data (:mod:`.data`), distributed runs (:mod:`.distributed`) and synthetic scenes
(:mod:`.synthetic`).

``from instcolor.training import TrainConfig, train`` is the entry point.
"""

from instcolor.training.config import (
    PRECISIONS,
    CHECKPOINT_FORMAT,
    STAGE_DEFAULTS,
    RUNTIME_FIELDS,
    CONFIG_FILE,
    DATASET_FILE,
    BOXES_FILE,
    CHECKPOINT_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    ConfigError,
    TrainConfig,
    load_config_file,
    resume_config,
    init_width,
)
from instcolor.training.stages import (
    HUBER_DELTA,
    LOSS_WEIGHT,
    colorization_loss_terms,
    lr_factor,
    load_initial_state,
    apply_initial_state,
    sync_fusion_backbone,
    trainable_parameters,
    set_stage_modes,
)
from instcolor.training.trainer import (
    TrainResult,
    train,
    sample_grid,
)

__all__ = [
    "BOXES_FILE",
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CONFIG_FILE",
    "ConfigError",
    "DATASET_FILE",
    "HUBER_DELTA",
    "LOSS_WEIGHT",
    "METRICS_FILE",
    "PRECISIONS",
    "RUNTIME_FIELDS",
    "STAGE_DEFAULTS",
    "TrainConfig",
    "TrainResult",
    "WEIGHTS_FILE",
    "apply_initial_state",
    "colorization_loss_terms",
    "init_width",
    "load_config_file",
    "load_initial_state",
    "lr_factor",
    "resume_config",
    "sample_grid",
    "set_stage_modes",
    "sync_fusion_backbone",
    "train",
    "trainable_parameters",
]
