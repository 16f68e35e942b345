"""``instcolor train``: one stage of the paper's three-stage training recipe.

    instcolor train --stage full --data photos/ --out runs/full
    instcolor train --stage instance --data photos/ --boxes boxes.json --init runs/full --out runs/instance
    instcolor train --stage fusion --data photos/ --boxes boxes.json --init runs/instance --out runs/fusion
    instcolor train --stage instance --class-aware --data photos/ --boxes boxes.json --init runs/full --out runs/ca
    instcolor train --resume --out runs/fusion            # after an interruption
    instcolor train --stage full --hints ...               # with random colour hints (each stage)
    torchrun --nproc-per-node 4 -m instcolor.cli train --stage full --data photos/ --out runs/full

Settings come from the defaults (the reference's), then ``--config`` (JSON or TOML with the
option names as keys), then the flags given. The resolved settings are written to
``RUN/config.json``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from instcolor.cli.app import EXIT_USAGE, app, console, fail


class Stage(str, Enum):
    full = "full"
    instance = "instance"
    fusion = "fusion"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp64 = "fp64"


@app.command("train")
def train_command(
    stage: Stage | None = typer.Option(None, help="full (stage 1), instance (stage 2) or fusion (stage 3)"),
    data: list[str] | None = typer.Option(None, "--data", help="folder, file or glob of colour images (repeatable)"),
    out: Path | None = typer.Option(None, "--out", help="run folder (default: runs/instcolor)"),
    config: Path | None = typer.Option(None, "--config", help="JSON or TOML file of settings (flags override it)"),
    resume: bool = typer.Option(False, "--resume", help="continue the run in --out exactly where it stopped"),
    boxes: Path | None = typer.Option(None, help="boxes file from `instcolor detect` (default: detect on the fly)"),
    init: str | None = typer.Option(None, help="initial weights: a run folder, a weights file or name, or a .pth"),
    width: float | None = typer.Option(None, help="channel width multiplier (default: the --init weights', else 1)"),
    size: int | None = typer.Option(None, help="network input side in pixels, a multiple of 8 (default: 256)"),
    batch_size: int | None = typer.Option(None, help="global batch (default: 16; fusion: 1 image with its crops)"),
    lr: float | None = typer.Option(None, help="Adam learning rate (default: 5e-4; fusion: 5e-5)"),
    epochs: int | None = typer.Option(None, help="epochs at the full rate (default: 100; fusion: 10)"),
    decay_epochs: int | None = typer.Option(None, help="epochs of linear decay (default: 50; fusion: 20)"),
    max_steps: int | None = typer.Option(None, help="stop after this many optimiser steps (a quick run)"),
    max_instances: int | None = typer.Option(None, help="boxes per image, highest scores first (default: 8)"),
    augment: bool | None = typer.Option(
        None, "--augment/--no-augment", help="random flip and resized crop (default: on)"
    ),
    copy_backbones: bool | None = typer.Option(
        None,
        "--copy-backbones/--no-copy-backbones",
        help="start the instance net (stage 2) / fusion backbone (stage 3) from the full-image net (default: on)",
    ),
    fusion_head: bool | None = typer.Option(
        None, "--fusion-head/--no-fusion-head", help="stage 3 also trains conv10 + ab head, as the reference code"
    ),
    fusion_rule: str | None = typer.Option(
        None,
        help="confined: each instance only inside its box/mask (default); reference: the paper's softmax",
    ),
    fusion_init: str | None = typer.Option(
        None, help="stage 3 start: background (fresh generators, full-image feature first; default) or keep"
    ),
    fusion_masks: bool | None = typer.Option(
        None, "--fusion-masks/--no-fusion-masks", help="stage 3 uses the boxes file's masks (default: on)"
    ),
    class_aware: bool | None = typer.Option(
        None,
        "--class-aware/--class-blind",
        help="feed each instance's label (COCO class) to the networks (default: as the --init weights, else blind)",
    ),
    class_inputs: str | None = typer.Option(
        None, help="class-aware: where classes go in: instance (default), fusion or both"
    ),
    class_dropout: float | None = typer.Option(
        None, help="class-aware: share of instances trained as of unknown class (default: 0.1)"
    ),
    colour_rebalance: float | None = typer.Option(
        None,
        help="weigh each pixel's loss by the rarity of its colour (0 = off, default; 0.5 = Zhang et al.): "
        "fights the muted sepia look",
    ),
    hints: bool | None = typer.Option(
        None, "--hints/--no-hints", help="train with random colour hints from the ground truth (default: off)"
    ),
    no_hint_share: float | None = typer.Option(
        None, help="with --hints, the share of samples given no hint at all (default: 0.25)"
    ),
    precision: Precision | None = typer.Option(
        None, help="fp32, bf16 (CPU/CUDA), fp16 (CUDA), or fp64 for numerical checks (default: fp32)"
    ),
    compile: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the trained network"),
    device: str | None = typer.Option(None, help="auto, cpu or cuda (default: auto)"),
    workers: int | None = typer.Option(None, "--workers", help="data-loading processes (default: 2)"),
    threads: int | None = typer.Option(None, help="torch CPU threads"),
    seed: int | None = typer.Option(None, help="seed of initialisation, data order and augmentation (default: 0)"),
    checkpoint_every: int | None = typer.Option(None, help="steps between checkpoints (default: 500)"),
    log_every: int | None = typer.Option(None, help="steps between metric lines (default: 10)"),
    sample_every: int | None = typer.Option(None, help="steps between sample grids (default: 1000)"),
    progress: bool | None = typer.Option(None, "--progress/--no-progress", help="show a progress bar (default: on)"),
) -> None:
    """Train one stage of InstColorization; checkpoints are resumable bit for bit."""
    from instcolor.models.weights.store import WeightsError
    from instcolor.training import ConfigError, TrainConfig, load_config_file, resume_config, train

    flags = {
        "stage": stage.value if stage else None,
        "data": list(data) if data else None,
        "out": str(out) if out else None,
        "boxes": str(boxes) if boxes else None,
        "init": init,
        "width": width,
        "size": size,
        "batch_size": batch_size,
        "lr": lr,
        "epochs": epochs,
        "decay_epochs": decay_epochs,
        "max_steps": max_steps,
        "max_instances": max_instances,
        "augment": augment,
        "copy_backbones": copy_backbones,
        "fusion_head": fusion_head,
        "fusion_rule": fusion_rule,
        "fusion_init": fusion_init,
        "fusion_masks": fusion_masks,
        "class_aware": class_aware,
        "class_inputs": class_inputs,
        "class_dropout": class_dropout,
        "colour_rebalance": colour_rebalance,
        "hints": hints,
        "no_hint_share": no_hint_share,
        "precision": precision.value if precision else None,
        "compile": compile,
        "device": device,
        "num_workers": workers,
        "threads": threads,
        "seed": seed,
        "checkpoint_every": checkpoint_every,
        "log_every": log_every,
        "sample_every": sample_every,
        "progress": progress,
    }
    try:
        settings = load_config_file(config) if config else {}
        settings = {k.replace("-", "_"): v for k, v in settings.items()}
        settings.update({k: v for k, v in flags.items() if v is not None})
        if resume:
            if "out" not in settings:
                raise ConfigError("--resume needs the run folder: --out RUN_DIR")
            run_config = resume_config(settings["out"], settings)
        else:
            run_config = TrainConfig.from_dict(settings)
        result = train(run_config, resume=resume, console=console)
    except (ConfigError, FileNotFoundError) as err:
        raise fail(str(err), EXIT_USAGE) from None
    except (WeightsError, ValueError) as err:
        raise fail(str(err)) from None
    if result.weights is not None:
        loss = f", loss {result.loss:.4f}" if result.loss is not None else ""
        console.print(
            f"step {result.step}/{result.total_steps}{loss}: weights written to {result.weights}", highlight=False
        )
