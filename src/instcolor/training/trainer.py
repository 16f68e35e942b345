"""Training: the paper's three stages, resumable bit for bit, on one CPU or many GPUs (torchrun).

Stages (DESIGN.md section 1):

1. ``full``: the full-image net (``model.full``) on whole images. The fusion net's backbone is
   kept equal to it in every file written, so that every export is a complete model.
2. ``instance``: the instance net (``model.instance``) on one box crop per image, initialised
   from the full-image net.
3. ``fusion``: only the fusion weight generators (``model.fusion.fusers``) train; the fusion
   backbone (initialised from the full-image net) and the instance net are frozen with batch
   norm in eval mode; one batch element is one image with all its crops.

Class-aware runs (``TrainConfig.class_aware``) feed each instance's boxes-file label to the class
embeddings: stage 2 trains the instance net's (with the instance net), stage 3 the fusion layers'
(with the weight generators); embeddings the ``init`` weights lack start at zero.

Loss ``10 * mean(huber)``: smooth-L1 with ``delta = 1/110`` on ab/110, summed over a and b,
averaged over pixels and over the colour (non-greyscale) samples of the global batch; with
``colour_rebalance`` each pixel weighs by the rarity of its colour in the run's data
(:mod:`instcolor.training.rebalance`, table kept in ``RUN/colour_rebalancing.json``). Adam
(lr 5e-4, betas 0.9/0.999; stage 3: lr 5e-5), linear decay: ``epochs`` at the base rate, then
``decay_epochs`` with the rate falling by ``1 / (decay_epochs + 1)`` per epoch.

Resuming (``train(config, resume=True)``) restores model, optimiser, scheduler, gradient scaler
and RNG states from the last checkpoint, and the data order and augmentation are functions of
``(seed, epoch, index)`` (:mod:`instcolor.training.data`): a run killed at any moment and resumed ends
with the same weights, bit for bit, as one never interrupted. Under ``torchrun`` the trained
network is wrapped in DistributedDataParallel with batch norm synchronised over the processes
(:mod:`instcolor.training.distributed`), so K processes equal one process with the same global batch.
While training on CPU, denormal floats are flushed to zero (they made steps up to 20x slower).

A run directory holds ``config.json`` (the resolved configuration), ``dataset.json`` (the
images and boxes, in order), ``checkpoints/last.pt``, ``metrics.jsonl``, ``samples/*.png``,
``tensorboard/`` (when TensorBoard is installed) and, at the end, ``weights.safetensors`` in the
format ``colorize --weights`` loads.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torchvision.utils import make_grid

from instcolor.color import AB_SCALE, L_CENTER, L_SCALE, join_lab
from instcolor.devices import resolve_device
from instcolor.instances import Instances, load_boxes_file, save_boxes_file
from instcolor.io import atomic_path, save_image, to_pil
from instcolor.models.model import InstColorModel
from instcolor.models.weights.store import save_state
from instcolor.training.config import (
    BOXES_FILE,
    CHECKPOINT_FILE,
    CHECKPOINT_FORMAT,
    COLOUR_PRIOR_FILE,
    CONFIG_FILE,
    DATASET_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    ConfigError,
    TrainConfig,
)
from instcolor.training.data import (
    NO_AUGMENTATION,
    Augmentation,
    Batch,
    ColorizationDataset,
    StepBatchSampler,
    TrainingItem,
    collate,
    collect_items,
    load_items,
    save_items,
)
from instcolor.training.distributed import DistributedContext, synchronize_batch_norm
from instcolor.training.rebalance import ab_histogram, load_table, pixel_weights, rebalancing_table, save_table
from instcolor.training.stages import (
    apply_initial_state,
    colorization_loss_terms,
    copy_full_to_instance,
    initialise_fusers,
    load_initial_state,
    lr_factor,
    set_stage_modes,
    sync_fusion_backbone,
    trainable_parameters,
)


@dataclass
class TrainResult:
    """What a finished (or stopped at ``max_steps``) run produced."""

    run_dir: Path
    weights: Path | None
    step: int
    total_steps: int
    loss: float | None


def train(config: TrainConfig, resume: bool = False, console: Console | None = None) -> TrainResult:
    """Run (or continue, with ``resume``) one training stage; see the module docstring.

    Under ``torchrun`` every process calls this with the same configuration; ``batch_size`` is
    the global batch, split evenly between the processes.

    Raises:
        ConfigError: for configurations that cannot run (a usage error).
        WeightsError: for initial weights that do not fit.
    """
    config = config.resolved()
    device = _resolve_device(config.device)
    context = DistributedContext.from_environment(device.type)
    threads = torch.get_num_threads()
    # Denormal floats (tiny Adam moments, activations) made CPU steps up to 20x slower.
    torch.set_flush_denormal(True)
    try:
        if device.type == "cuda":
            device = torch.device("cuda", context.local_rank)
            torch.cuda.set_device(device)
        return _Trainer(config, resume, context, device, console or Console(stderr=True)).run()
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(threads)
        context.close()


def _resolve_device(name: str) -> torch.device:
    try:
        return resolve_device(name)
    except ValueError as err:
        raise ConfigError(str(err)) from None


class _Trainer:
    def __init__(
        self, config: TrainConfig, resume: bool, context: DistributedContext, device: torch.device, console: Console
    ) -> None:
        self.config = config
        self.context = context
        self.device = device
        self.console = console
        self.run_dir = Path(config.out)
        self.checkpoint_path = self.run_dir / CHECKPOINT_FILE
        if config.precision == "fp16" and device.type != "cuda":
            raise ConfigError("fp16 needs CUDA; use --precision bf16 on CPU")
        if config.batch_size % context.world_size:
            raise ConfigError(f"batch size {config.batch_size} is not divisible by the {context.world_size} processes")
        if not resume and self.checkpoint_path.exists():
            raise ConfigError(f"{self.run_dir} already holds a run; pass --resume, or choose another --out")
        self.resume = resume and self.checkpoint_path.exists()
        if config.threads:
            torch.set_num_threads(config.threads)

    # -- setup

    def _items(self) -> list[TrainingItem]:
        """The run's images and boxes: read back when resuming, else collected (rank 0 writes)."""
        dataset_path = self.run_dir / DATASET_FILE
        if self.resume and dataset_path.is_file():
            return load_items(dataset_path)
        instances: dict[str, Instances] | None = None
        if self.config.boxes:
            instances = load_boxes_file(self.config.boxes, max_instances=self.config.max_instances)
        elif self.config.stage != "full":
            instances = self._detect_boxes()
        if instances is not None and not (self.config.stage == "fusion" and self.config.fusion_masks):
            instances = {name: replace(found, masks=None) for name, found in instances.items()}
        items, problems = collect_items(self.config.data, self.config.stage, instances, self.config.max_instances)
        if self.context.is_main:
            for problem in problems:
                self.console.print(f"[yellow]note:[/] {problem}", highlight=False)
            save_items(dataset_path, items)
        if not items:
            raise ConfigError(f"no usable training images for the {self.config.stage} stage")
        return items

    def _detect_boxes(self) -> dict[str, Instances]:
        """Boxes computed on the fly with the detector, once, and kept in ``RUN/boxes.json``."""
        path = self.run_dir / BOXES_FILE
        if self.context.is_main and not path.is_file():
            from instcolor.detection import load_detector
            from instcolor.io import find_images

            detector = load_detector(
                self.config.detector, device=str(self.device), max_instances=self.config.max_instances
            )
            if detector is None:
                raise ConfigError(f"the {self.config.stage} stage needs boxes: give --boxes or a detector")
            paths, _ = find_images(self.config.data)
            entries = {}
            with self._progress() as progress:
                task = progress.add_task(f"detecting boxes ({detector.name})", total=len(paths), loss="", speed="")
                for image_path in paths:
                    found = detector.detect(image_path)
                    entries[str(image_path)] = Instances(boxes=found.boxes, scores=found.scores, labels=found.labels)
                    progress.advance(task)
            save_boxes_file(path, entries)
        self.context.barrier()
        return load_boxes_file(path, max_instances=self.config.max_instances)

    def _build_model(self) -> InstColorModel:
        config = self.config
        torch.manual_seed(config.seed)
        model = InstColorModel(config.model_config())
        if not self.resume:
            if config.init:
                apply_initial_state(model, load_initial_state(config.init, model.config))
            if config.copy_backbones and config.stage == "instance":
                copy_full_to_instance(model)
            if config.copy_backbones and config.stage == "fusion":
                sync_fusion_backbone(model)
            if config.stage == "fusion" and config.fusion_init == "background":
                initialise_fusers(model)
        return model

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.config.progress and self.context.is_main),
        )

    def _prepare_model(self, checkpoint: dict | None) -> list[nn.Parameter]:
        """Build the model, place it, synchronise batch norm and wrap the trained network.

        Sets ``self.model`` (the :class:`InstColorModel`), ``self.net`` (what the loop calls:
        the trained network, maybe in DDP and compiled) and ``self.ddp``; returns the parameters
        to optimise.
        """
        config, device = self.config, self.device
        model = self._build_model()
        self.dtype = torch.float64 if config.precision == "fp64" else torch.float32
        model.to(dtype=self.dtype)
        if checkpoint is not None:
            model.load_state_dict(checkpoint["model"])
        model.to(device)
        net: nn.Module = {"full": model.full, "instance": model.instance, "fusion": model.fusion}[config.stage]
        if self.context.enabled and config.stage != "fusion":
            synchronize_batch_norm(net, device)  # before collecting parameters: BN layers are replaced
        params = trainable_parameters(model, config.stage, config.fusion_head)
        set_stage_modes(model, config.stage, params)
        if self.context.enabled:
            net = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
        self.model = model
        self.ddp = net if isinstance(net, DistributedDataParallel) else None
        self.net = torch.compile(net) if config.compile else net
        return params

    def _dataset(self, items: list[TrainingItem]) -> tuple[ColorizationDataset, int]:
        """The stage's dataset and its number of steps per epoch."""
        config = self.config
        dataset = ColorizationDataset(
            items,
            config.stage,
            size=config.size,
            augmentation=Augmentation(crop_scale=(config.crop_scale_min, 1.0)) if config.augment else NO_AUGMENTATION,
            seed=config.seed,
            ab_threshold=config.ab_threshold,
            classes=bool(config.class_aware),
            class_dropout=config.class_dropout,
            hints=config.hints,
            no_hint_share=config.no_hint_share,
        )
        try:
            sampler = StepBatchSampler(len(dataset), config.batch_size, config.seed, world_size=self.context.world_size)
        except ValueError as err:
            raise ConfigError(str(err)) from err
        return dataset, sampler.steps_per_epoch

    def _colour_rebalancing(self, dataset: ColorizationDataset) -> torch.Tensor | None:
        """Per-bin loss weights for ``colour_rebalance``: from the colour samples of epoch 0, once."""
        strength = self.config.colour_rebalance
        if not strength:
            return None
        path = self.run_dir / COLOUR_PRIOR_FILE
        if self.context.is_main and not path.is_file():
            self.console.print(f"colour rebalancing: counting the colours of {len(dataset)} samples", highlight=False)
            samples = (dataset[(0, index)] for index in range(len(dataset)))
            histogram = ab_histogram(sample.target for sample in samples if sample.valid)
            save_table(path, rebalancing_table(histogram, strength), strength, float(histogram.sum()))
        self.context.barrier()
        return torch.from_numpy(load_table(path)).to(self.device, torch.float32)

    def _pixel_weights(self, targets: torch.Tensor) -> torch.Tensor | None:
        return None if self.colour_table is None else pixel_weights(targets, self.colour_table)

    def run(self) -> TrainResult:
        config, context = self.config, self.context
        if context.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.checkpoint_path.parent.glob(f".{self.checkpoint_path.name}.*.part"):
                stale.unlink(missing_ok=True)  # left by a process killed while writing
            _write_json(self.run_dir / CONFIG_FILE, config.to_dict())
        context.barrier()
        items = self._items()
        context.barrier()

        checkpoint = None
        if self.resume:
            checkpoint = torch.load(self.checkpoint_path, map_location="cpu", weights_only=True)
            if checkpoint.get("format") != CHECKPOINT_FORMAT:
                raise ConfigError(f"{self.checkpoint_path}: not an instcolor training checkpoint")
        params = self._prepare_model(checkpoint)
        dataset, steps_per_epoch = self._dataset(items)
        self.colour_table = self._colour_rebalancing(dataset)
        total_steps = (config.epochs + config.decay_epochs) * steps_per_epoch
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=(config.beta1, config.beta2))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step // steps_per_epoch, config.epochs, config.decay_epochs)
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.precision == "fp16")
        step = 0
        if checkpoint is not None:
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            self.scheduler.load_state_dict(checkpoint["scheduler"])
            self.scaler.load_state_dict(checkpoint["scaler"])
            _set_rng_state(checkpoint["rng"])
            step = int(checkpoint["step"])
        stop = total_steps if config.max_steps is None else min(total_steps, config.max_steps)
        if context.is_main:
            self.console.print(
                f"stage {config.stage}: {len(dataset)} samples, {steps_per_epoch} steps per epoch, "
                f"{total_steps} steps in all; running steps {step}..{stop} on {self.device}"
                + (f" x {context.world_size} processes" if context.enabled else ""),
                highlight=False,
            )
        last_loss = self._loop(dataset, step, stop, steps_per_epoch)

        weights = None
        if context.is_main:
            weights = self.run_dir / WEIGHTS_FILE
            if config.stage == "full":
                sync_fusion_backbone(self.model)
            state = {k: v.float() if v.is_floating_point() else v for k, v in self.model.state_dict().items()}
            save_state(weights, state, self.model.config, self._weights_metadata(max(step, stop), total_steps))
        context.barrier()
        return TrainResult(self.run_dir, weights, max(step, stop), total_steps, last_loss)

    def _loop(self, dataset: ColorizationDataset, step: int, stop: int, steps_per_epoch: int) -> float | None:
        """Steps ``step .. stop - 1`` with logging, sample grids and checkpoints; the last logged loss."""
        config, context = self.config, self.context
        sampler = StepBatchSampler(
            len(dataset), config.batch_size, config.seed, step, stop, context.rank, context.world_size
        )
        loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=config.num_workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_worker_init,
        )
        logger = _MetricsLogger(self.run_dir, step, enabled=context.is_main)
        window = torch.zeros(2, dtype=torch.float64)  # loss sum and colour samples since the last log
        window_start, window_steps, last_loss = time.perf_counter(), 0, None
        with self._progress() as progress, contextlib.closing(logger):
            task = progress.add_task(f"train {config.stage}", total=stop, completed=step, loss="", speed="")
            for batch in loader:
                result = self._train_step(batch)
                step += 1
                window_steps += 1
                if result is not None:
                    window += torch.tensor(result[:2], dtype=torch.float64)
                if step % config.log_every == 0 or step == stop:
                    totals = context.sum(window.to(self.device)).cpu()
                    speed = window_steps * config.batch_size / max(time.perf_counter() - window_start, 1e-9)
                    last_loss = float(totals[0] / totals[1]) if totals[1] > 0 else None
                    logger.log(
                        step=step,
                        epoch=step / steps_per_epoch,
                        loss=last_loss,
                        lr=self.last_lr,
                        samples_per_s=speed,
                        valid_samples=int(totals[1]),
                    )
                    shown = f"loss {last_loss:.4f}" if last_loss is not None else ""
                    progress.update(task, loss=shown, speed=f"{speed:.1f} img/s")
                    window.zero_()
                    window_start, window_steps = time.perf_counter(), 0
                if context.is_main and result is not None and (step % config.sample_every == 0 or step == stop):
                    self._save_samples(step, *result[2])
                if step % config.checkpoint_every == 0 or step == stop:
                    self._save_checkpoint(step)
                progress.update(task, completed=step)
        return last_loss

    def _autocast(self):
        precision = self.config.precision
        if precision not in ("bf16", "fp16"):
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

    def _train_step(self, batch: Batch) -> tuple[float, float, tuple] | None:
        """One optimiser step on this process's share of a global batch.

        Returns ``(local loss sum, local valid count, (inputs, predictions, targets) to draw)``,
        or None when the whole global batch was greyscale (then no step is taken).
        """
        valid = batch.valid.to(self.device)
        global_valid = float(self.context.sum(valid.sum()))
        scale = self.context.world_size / max(global_valid, 1.0)  # DDP averages over processes
        if global_valid > 0:
            if self.config.stage == "fusion":
                loss_sum, shown = self._fusion_backward(batch, valid, scale)
            else:
                inputs = batch.inputs.to(self.device, self.dtype, non_blocking=True)
                targets = batch.targets.to(self.device, self.dtype, non_blocking=True)
                classes = {} if batch.classes is None else {"classes": batch.classes.to(self.device)}
                with self._autocast():
                    pred, _ = self.net(inputs, **classes)
                terms = colorization_loss_terms(pred, targets, self._pixel_weights(targets)) * valid
                self.scaler.scale(terms.sum() * scale).backward()
                loss_sum = float(terms.sum().detach())
                shown = (inputs[:4].detach(), pred[:4].detach(), targets[:4])
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.last_lr = self.scheduler.get_last_lr()[0]
        self.scheduler.step()
        if global_valid == 0:
            return None
        return loss_sum, float(valid.sum()), shown

    def _fusion_backward(self, batch: Batch, valid: torch.Tensor, scale: float) -> tuple[float, tuple]:
        """Stage 3: each image with its crops in turn, gradients accumulated (synchronised once)."""
        loss_sum, shown = 0.0, None
        last = len(batch.samples) - 1
        for i, sample in enumerate(batch.samples):
            no_sync = self.ddp.no_sync() if self.ddp is not None and i < last else contextlib.nullcontext()
            full_input = sample.input[None].to(self.device, self.dtype)
            target = sample.target[None].to(self.device, self.dtype)
            box_info = {grid: info.to(self.device) for grid, info in sample.box_info.items()}
            crops = sample.crops.to(self.device, self.dtype)
            crop_masks = None if sample.crop_masks is None else sample.crop_masks.to(self.device)
            classes = None if sample.classes is None else sample.classes.to(self.device)
            supports = self.model.fusion.supports(crop_masks, len(crops), crops.shape[-1], full_input)
            with no_sync:
                with torch.no_grad(), self._autocast():
                    _, instance_features = self.model.instance(crops, classes=classes)
                with self._autocast():
                    pred = self.net(full_input, instance_features, box_info, supports, classes)
                term = colorization_loss_terms(pred, target, self._pixel_weights(target))[0] * valid[i]
                self.scaler.scale(term * scale).backward()
            loss_sum += float(term.detach())
            if shown is None:
                shown = (full_input, pred.detach(), target)
        return loss_sum, shown

    def _save_checkpoint(self, step: int) -> None:
        if self.context.is_main:
            if self.config.stage == "full":
                sync_fusion_backbone(self.model)
            state = {
                "format": CHECKPOINT_FORMAT,
                "step": step,
                "config": self.config.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": _rng_state(),
            }
            with atomic_path(self.checkpoint_path) as tmp:
                torch.save(state, tmp)
        self.context.barrier()

    def _save_samples(self, step: int, inputs: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor) -> None:
        grid = sample_grid(inputs.float().cpu(), preds.float().cpu(), targets.float().cpu())
        save_image(grid, self.run_dir / "samples" / f"step-{step:08d}.png")

    def _weights_metadata(self, step: int, total_steps: int) -> dict[str, str]:
        config = self.config
        return {
            "name": self.run_dir.name,
            "source": f"instcolor train --stage {config.stage} (run {self.run_dir.name}, step {step} of {total_steps})",
            "licence": config.licence,
            "stage": config.stage,
            "step": str(step),
            "complete": str(step >= total_steps).lower(),
            "training_config": json.dumps(config.to_dict(), sort_keys=True),
        }


def sample_grid(inputs: torch.Tensor, preds: torch.Tensor, targets: torch.Tensor, max_images: int = 4) -> Image.Image:
    """Rows grey / predicted / truth of up to ``max_images`` samples.

    Args:
        inputs: ``(B, 4, S, S)`` network inputs (channel 0 is the normalised lightness).
        preds, targets: ``(B, 2, S, S)`` ab in network units.
    """
    n = min(max_images, len(inputs))
    l_channel = inputs[:n, :1] * L_SCALE + L_CENTER
    rows = [
        join_lab(l_channel, torch.zeros_like(preds[:n])),
        join_lab(l_channel, preds[:n] * AB_SCALE),
        join_lab(l_channel, targets[:n] * AB_SCALE),
    ]
    grid = make_grid(torch.cat(rows), nrow=n, padding=2, pad_value=1.0)
    return to_pil(grid.permute(1, 2, 0).numpy())


class _MetricsLogger:
    """``metrics.jsonl`` (one object per log step) and TensorBoard scalars when installed.

    A resumed run first drops the lines of steps after its checkpoint, which a killed run may
    have written, so that the file reads as one uninterrupted run.
    """

    def __init__(self, run_dir: Path, start_step: int, enabled: bool) -> None:
        self.enabled = enabled
        self.file = None
        self.writer = None
        if not enabled:
            return
        path = run_dir / METRICS_FILE
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [line for line in lines if json.loads(line)["step"] <= start_step]
            with atomic_path(path) as tmp:
                tmp.write_text("".join(line + "\n" for line in kept))
        self.file = path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(os.fspath(run_dir / "tensorboard"), purge_step=start_step + 1)
        except ImportError:
            self.writer = None

    def log(self, **record) -> None:
        if not self.enabled:
            return
        record["time"] = time.time()
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key not in ("step", "time") and value is not None:
                    self.writer.add_scalar(f"train/{key}", value, record["step"])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        if self.writer is not None:
            self.writer.close()


def _rng_state() -> dict:
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [np.random.get_state()[0], np.random.get_state()[1].tolist(), *np.random.get_state()[2:]],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_tuples(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and resize; the main process owns the cores


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1) + "\n")
