"""Training configuration: :class:`TrainConfig`, config files, resuming a run directory's config,
and the names of the files a run directory holds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from instcolor.color.hints import NO_HINT_SHARE
from instcolor.detection.coco import COCO_CLASS_COUNT
from instcolor.models.config import CLASS_INPUTS, FUSION_RULES, ModelConfig
from instcolor.models.weights.registry import resolve_weights_path
from instcolor.models.weights.store import WeightsError, read_metadata
from instcolor.training.data import (
    AB_RANGE_THRESHOLD,
    STAGES,
)

#: ``fp64`` trains a float64 copy (for numerical checks); weights are exported as float32.
PRECISIONS = ("fp32", "bf16", "fp16", "fp64")


CHECKPOINT_FORMAT = "instcolor-train-checkpoint"


#: The reference's hyper-parameters per stage; a config's ``None`` fields take these.
STAGE_DEFAULTS: dict[str, dict[str, float | int]] = {
    "full": {"batch_size": 16, "lr": 5e-4, "epochs": 100, "decay_epochs": 50},
    "instance": {"batch_size": 16, "lr": 5e-4, "epochs": 100, "decay_epochs": 50},
    "fusion": {"batch_size": 1, "lr": 5e-5, "epochs": 10, "decay_epochs": 20},
}


#: Stage 3 start: ``"background"`` re-initialises the fusion weight generators so that the
#: full-image feature holds most of the weight (instance features earn theirs in training);
#: ``"keep"`` keeps the ``init`` weights' generators (to fine-tune trained fusion weights).
FUSION_INITS = ("background", "keep")

#: Fields a resumed run may change: they do not alter the weights it ends with.
RUNTIME_FIELDS = frozenset(
    {"max_steps", "num_workers", "threads", "progress", "device", "checkpoint_every", "log_every", "sample_every"}
)


#: Files of a run directory.
CONFIG_FILE = "config.json"


DATASET_FILE = "dataset.json"


BOXES_FILE = "boxes.json"


CHECKPOINT_FILE = Path("checkpoints") / "last.pt"


METRICS_FILE = "metrics.jsonl"


WEIGHTS_FILE = "weights.safetensors"


COLOUR_PRIOR_FILE = "colour_rebalancing.json"


class ConfigError(ValueError):
    """A training configuration that cannot run (a usage error)."""


@dataclass
class TrainConfig:
    """Everything that defines a training run; written resolved to ``RUN/config.json``.

    Fields left ``None`` take the stage's reference value (:data:`STAGE_DEFAULTS`); ``width``
    defaults to the ``init`` weights' width, else 1.0. ``hints`` trains with random colour hints
    (Zhang et al. 2017; :func:`instcolor.color.hints.draw_training_hints`), ``no_hint_share`` of
    the samples getting none; the weights then record ``hints`` in their config.

    ``class_aware`` (default: as the ``init`` weights, else off) trains a class-aware model
    (:attr:`instcolor.models.config.ModelConfig.num_classes`): each instance's boxes-file label
    feeds class embeddings at ``class_inputs``, which start at zero when the ``init`` weights
    lack them; ``class_dropout`` is the share of instances trained as of unknown class.
    """

    stage: str = "full"
    data: list[str] = field(default_factory=list)
    out: str = "runs/instcolor"
    boxes: str | None = None
    init: str | None = None
    width: float | None = None
    size: int = 256
    batch_size: int | None = None
    lr: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    epochs: int | None = None
    decay_epochs: int | None = None
    max_steps: int | None = None
    max_instances: int = 8
    ab_threshold: float = AB_RANGE_THRESHOLD
    augment: bool = True
    crop_scale_min: float = 0.5
    copy_backbones: bool = True
    fusion_head: bool = False
    fusion_rule: str = "confined"
    fusion_init: str = "background"
    fusion_masks: bool = True
    class_aware: bool | None = None
    class_inputs: str = "instance"
    class_dropout: float = 0.1
    colour_rebalance: float = 0.0
    hints: bool = False
    no_hint_share: float = NO_HINT_SHARE
    precision: str = "fp32"
    compile: bool = False
    device: str = "auto"
    detector: str = "auto"
    num_workers: int = 2
    threads: int | None = None
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    sample_every: int = 1000
    progress: bool = True
    licence: str = "depends on the training data and the initial weights"

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Build from a dict (a config file); keys may use ``-`` or ``_``; unknown keys are errors."""
        known = {f.name for f in fields(cls)}
        values = {str(k).replace("-", "_"): v for k, v in data.items()}
        unknown = sorted(values.keys() - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s): {', '.join(unknown)}")
        if isinstance(values.get("data"), str):
            values["data"] = [values["data"]]
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def model_config(self) -> ModelConfig:
        """The networks a resolved run trains (class-aware ones know the COCO classes)."""
        classes = {"num_classes": COCO_CLASS_COUNT, "class_inputs": self.class_inputs} if self.class_aware else {}
        return ModelConfig(
            width=self.width, input_size=self.size, fusion_rule=self.fusion_rule, hints=self.hints, **classes
        )

    def resolved(self) -> TrainConfig:
        """Stage defaults filled in, paths made absolute, values checked (raises :class:`ConfigError`)."""
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        if not self.data:
            raise ConfigError("no training data: give at least one --data folder")
        if self.size <= 0 or self.size % 8:
            raise ConfigError(f"size must be a positive multiple of 8, got {self.size}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.fusion_rule not in FUSION_RULES:
            raise ConfigError(f"fusion_rule must be one of {', '.join(FUSION_RULES)}, got {self.fusion_rule!r}")
        if self.fusion_init not in FUSION_INITS:
            raise ConfigError(f"fusion_init must be one of {', '.join(FUSION_INITS)}, got {self.fusion_init!r}")
        if self.class_inputs not in CLASS_INPUTS:
            raise ConfigError(f"class_inputs must be one of {', '.join(CLASS_INPUTS)}, got {self.class_inputs!r}")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ConfigError(f"class_dropout must be in [0, 1), got {self.class_dropout}")
        if not 0.0 <= self.colour_rebalance < 1.0:
            raise ConfigError(f"colour_rebalance must be in [0, 1), got {self.colour_rebalance}")
        if not 0.0 <= self.no_hint_share <= 1.0:
            raise ConfigError(f"no_hint_share must be in [0, 1], got {self.no_hint_share}")
        if not 0.0 < self.crop_scale_min <= 1.0:
            raise ConfigError(f"crop_scale_min must be in (0, 1], got {self.crop_scale_min}")
        defaults = STAGE_DEFAULTS[self.stage]
        out = replace(
            self,
            data=[os.path.abspath(d) for d in self.data],
            out=os.path.abspath(self.out),
            boxes=os.path.abspath(self.boxes) if self.boxes else None,
            init=_absolute_init(self.init),
            batch_size=int(self.batch_size if self.batch_size is not None else defaults["batch_size"]),
            lr=float(self.lr if self.lr is not None else defaults["lr"]),
            epochs=int(self.epochs if self.epochs is not None else defaults["epochs"]),
            decay_epochs=int(self.decay_epochs if self.decay_epochs is not None else defaults["decay_epochs"]),
        )
        if out.width is None:
            out.width = init_width(out.init) if out.init else 1.0
        if out.class_aware is None:
            out.class_aware = init_class_aware(out.init) if out.init else False
        for name in ("batch_size", "checkpoint_every", "log_every", "sample_every"):
            if getattr(out, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(out, name)}")
        if out.epochs < 0 or out.decay_epochs < 0 or out.epochs + out.decay_epochs == 0:
            raise ConfigError("epochs + decay_epochs must be at least 1")
        if out.max_steps is not None and out.max_steps < 0:
            raise ConfigError(f"max_steps must be >= 0, got {out.max_steps}")
        if out.width <= 0:
            raise ConfigError(f"width must be positive, got {out.width}")
        return out


def _absolute_init(init: str | None) -> str | None:
    if not init:
        return None
    return os.path.abspath(init) if os.path.exists(init) else init  # else: a name in the weights cache


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a JSON or TOML configuration file into a dict of :class:`TrainConfig` fields."""
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON ({err}); use a .json or .toml file") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a configuration file holds one object of settings")
    return data


def resume_config(run_dir: str | os.PathLike, overrides: dict | None = None) -> TrainConfig:
    """The saved configuration of a run, with the given runtime settings changed.

    Raises:
        ConfigError: when the run has no configuration, or an override would change the result.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise ConfigError(f"{run_dir}: not a training run (no {CONFIG_FILE}); nothing to resume")
    # Runs saved before the fusion rule existed trained the reference rule from their init's generators.
    # Runs saved before class awareness existed were class-blind.
    saved = TrainConfig.from_dict(
        {"fusion_rule": "reference", "fusion_init": "keep", "class_aware": False, **json.loads(path.read_text())}
    )
    changed = {}
    for key, value in (overrides or {}).items():
        if value is None or key == "out":
            continue
        current = getattr(saved, key)
        if key in RUNTIME_FIELDS:
            changed[key] = value
        elif key == "data" and [os.path.abspath(d) for d in value] == current:
            continue
        elif value != current and not (isinstance(current, str) and os.path.abspath(str(value)) == current):
            raise ConfigError(
                f"--resume continues the run as it was configured; {key} is {current!r} there, not {value!r}"
            )
    return replace(saved, **changed)


def init_width(init: str) -> float:
    """The width multiplier of initial weights (a run folder, our weights file, or a reference .pth)."""
    path = Path(init)
    if path.is_dir():
        config_path = path / CONFIG_FILE
        if config_path.is_file():
            return float(json.loads(config_path.read_text())["width"])
    return float(_init_model_config(init).get("width", 1.0))


def init_class_aware(init: str) -> bool:
    """Whether initial weights are class-aware (a run folder, our weights file; a reference .pth is not)."""
    path = Path(init)
    if path.is_dir():
        config_path = path / CONFIG_FILE
        if config_path.is_file():
            return bool(json.loads(config_path.read_text()).get("class_aware"))
    return int(_init_model_config(init).get("num_classes", 0)) > 0


def _init_model_config(init: str) -> dict:
    """The stored :class:`~instcolor.models.config.ModelConfig` fields of initial weights ({} for a .pth)."""
    path = Path(init)
    if path.is_dir():
        path = path / WEIGHTS_FILE
    if path.suffix == ".pth":
        return {}
    try:
        meta = read_metadata(resolve_weights_path(path))
    except WeightsError as err:
        raise ConfigError(str(err)) from err
    return json.loads(meta.get("config", "{}"))
