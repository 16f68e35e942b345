"""Writing an evaluation's report folder.

``write_report(result, folder)`` writes:

* ``metrics.json``: protocol, per-image values (whole image and each instance), means with 95%
  bootstrap intervals, Fréchet distances, unavailable metrics with their reasons;
* ``report.md``: the tables and the protocol, for people;
* ``contact_sheet.png``: per image, the grey input, each method's result and the ground truth,
  boxes drawn on the fusion result and the ground truth;
* ``distributions.png``: per-image (and per-instance) distribution of each metric by method;
* ``hints.png`` (with ``hint_points``): PSNR against the number of hint points, as Zhang et al.'s plot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from instcolor.evaluation.hints import hint_plot, hint_table
from instcolor.evaluation.runner import (
    GROUND_TRUTH,
    IMAGE_ONLY_METRICS,
    METRICS,
    PAIRED_METRICS,
    TRUTH_METRICS,
    EvaluationResult,
    json_safe,
)
from instcolor.evaluation.stats import Summary
from instcolor.io import atomic_path, atomic_write_bytes, save_image

METRIC_TITLES = {
    "psnr": "PSNR (dB)", "ssim": "SSIM", "lpips": "LPIPS", "colourfulness": "colourfulness",
    "seam": "seam score", "cast": "cast score",
}  # fmt: skip
_DECIMALS = {"psnr": 2, "ssim": 4, "lpips": 4, "colourfulness": 2, "seam": 3, "cast": 4}
#: Definitions printed under the tables.
METRIC_DEFINITIONS = {
    "seam": "mean Lab ab step across the instance box borders over the mean ab step 2-5 px inside and "
    "outside them (1: no seam; the ground truth's value is the reference)",
    "cast": "share of the pixels inside person boxes with a* < -5 (green); 0 to 1",
}
_ARROWS = {True: " ↑", False: " ↓", None: ""}
#: Contact-sheet column titles besides the methods.
_INPUT_TITLE, _TRUTH_TITLE = "grey input", "ground truth"
_BOX_COLOUR = (255, 40, 40)


def metrics_json(result: EvaluationResult) -> dict:
    """The ``metrics.json`` payload."""
    return {
        "protocol": json_safe(result.protocol),
        "methods": result.methods,
        "unavailable": result.unavailable,
        "summary": {
            level: {method: {m: s.to_json() for m, s in table.items()} for method, table in methods.items()}
            for level, methods in result.summary.items()
        },
        "fid": json_safe(result.fid),
        **({"hint_curve": {str(n): s.to_json() for n, s in result.hint_curve.items()}} if result.hint_curve else {}),
        "paired_differences": {
            level: {pair: {m: s.to_json() for m, s in table.items()} for pair, table in pairs.items()}
            for level, pairs in result.differences.items()
        },
        "images": [record.to_json() for record in result.images],
        "skipped": [{"image": name, "reason": reason} for name, reason in result.skipped],
        "failed": [{"image": name, "error": error} for name, error in result.failed],
    }


def _cell(summary: Summary | None, metric: str, signed: bool = False) -> str:
    """``mean [low, high]`` with the metric's decimals (``signed``: with a + on positive values)."""
    if summary is None or summary.n == 0:
        return "–"
    form = f"{'+' if signed else ''}.{_DECIMALS[metric]}f"
    if summary.low == summary.high:
        return f"{summary.mean:{form}}"
    return f"{summary.mean:{form}} [{summary.low:{form}}, {summary.high:{form}}]"


def _differences_table(result: EvaluationResult) -> list[str]:
    """Paired differences, whole image and inside boxes, one row per pair of methods."""
    pairs = list(dict.fromkeys([*result.differences.get("image", {}), *result.differences.get("instance", {})]))
    metrics = [m for m in PAIRED_METRICS if m not in result.unavailable]
    if not pairs or not metrics:
        return []
    columns = [(level, m) for m in metrics for level in ("image", "instance")]
    titles = [f"{METRIC_TITLES[m]}{_ARROWS[METRICS[m]]}, {'whole image' if level == 'image' else 'in boxes'}" for level, m in columns]
    lines = ["| first - second | " + " | ".join(titles) + " |", "|---" * (len(columns) + 1) + "|"]
    for pair in pairs:
        first, second = pair.split("-", 1)
        cells = [_cell(result.differences.get(level, {}).get(pair, {}).get(m), m, signed=True) for level, m in columns]
        lines.append(f"| `{first}` - `{second}` | " + " | ".join(cells) + " |")
    return [
        "",
        "## Paired differences",
        "",
        "Each photo's (inside boxes: each instance's) value of the first method minus the second's; mean and "
        "95% bootstrap interval over photos, both methods resampled together; `fusion` - `full` over the "
        "photos where fusion had instances only (elsewhere both are the full-image network). An interval "
        "that excludes 0 is a difference these photos support; ↑/↓: which sign is better; PSNR capped at "
        "100 dB (a perfect result).",
        "",
        *lines,
    ]


def _number(value: float) -> str:
    return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.4e}"


def _table(result: EvaluationResult, level: str) -> list[str]:
    metrics = [m for m in METRICS if m not in result.unavailable and (level == "image" or m not in IMAGE_ONLY_METRICS)]
    header = "| method | " + " | ".join(METRIC_TITLES[m] + _ARROWS[METRICS[m]] for m in metrics) + " |"
    lines = [header, "|---" * (len(metrics) + 1) + "|"]
    rows = [*result.methods.items(), (GROUND_TRUTH, _TRUTH_TITLE)]
    for method, title in rows:
        table = result.summary.get(level, {}).get(method, {})
        cells = [_cell(table.get(m), m) for m in metrics]
        lines.append(f"| {title} (`{method}`) | " + " | ".join(cells) + " |")
    return lines


def render_markdown(result: EvaluationResult, files: dict[str, str]) -> str:
    """``report.md``: counts, the two tables, Fréchet distances, unavailable metrics, protocol."""
    n_instances = sum(1 for r in result.images for inst in r.instances if inst["used"])
    n_boxes = sum(len(r.instances) for r in result.images)
    images_with = sum(1 for r in result.images if any(inst["used"] for inst in r.instances))
    lines = [
        "# Colorization evaluation",
        "",
        f"{len(result.images)} images evaluated, {len(result.skipped)} skipped, {len(result.failed)} failed. "
        f"Resolution: {result.protocol.get('resolution')}. "
        "Values are means with 95% bootstrap intervals over images in brackets.",
        "",
        "## Whole image",
        "",
        *_table(result, "image"),
        "",
        *[f"- {METRIC_TITLES[m]}: {text}" for m, text in METRIC_DEFINITIONS.items()],
        "",
        f"## Inside instance boxes ({n_instances} instances in {images_with} images; "
        f"{n_boxes - n_instances} boxes too small)",
        "",
    ]
    if n_instances:
        lines += _table(result, "instance")
    else:
        lines.append("No instance large enough to measure (see the protocol's `boxes` and `instance_metrics`).")
    lines += _differences_table(result)
    for metric, key in (("LPIPS", "lpips_backbone_is_release"), ("The Fréchet distance", "fid_backbone_is_release")):
        if result.protocol.get(key) is False:
            lines += [
                "",
                f"> **Note:** {metric} ran with backbone weights that are not torchvision's published release "
                "(see the protocol): its values are not comparable with published numbers.",
            ]
    lines += ["", "## Fréchet distance (FID-style, whole images)", ""]
    if result.fid:
        lines += ["| method | distance ↓ |", "|---|---|"]
        lines += [f"| {result.methods[m]} (`{m}`) | {_number(v)} |" for m, v in result.fid.items() if m in result.methods]
    else:
        lines.append(f"unavailable: {result.unavailable.get('fid', 'not computed')}")
    if result.hint_curve:
        lines += ["", "## PSNR against hint points (fusion, whole image)", "", *hint_table(result.hint_curve)]
        if "hints.png" in files:
            lines += ["", "![PSNR against hint points](hints.png)"]
        fed_to_networks = result.protocol.get("hint_mode") in ("network", "both")
        if fed_to_networks and result.protocol.get("weights_trained_with_hints") is False:
            lines += ["", "> **Note:** these weights were not trained with hints (`instcolor train --hints`)."]
    if result.unavailable:
        lines += ["", "## Unavailable metrics", ""]
        lines += [f"- {METRIC_TITLES.get(k, k.upper())}: unavailable: {reason}" for k, reason in result.unavailable.items()]
    lines += ["", "## Protocol", ""]
    for key, value in result.protocol.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items()) or "–"
        lines.append(f"- **{key}**: {'unavailable' if value is None else value}")
    if files:
        lines += ["", "## Files", ""]
        lines += [f"- [{name}]({name}): {what}" for name, what in files.items()]
    if result.skipped or result.failed:
        lines += ["", "## Skipped and failed images", ""]
        lines += [f"- skipped {name}: {reason}" for name, reason in result.skipped]
        lines += [f"- failed {name}: {error}" for name, error in result.failed]
    return "\n".join(lines) + "\n"


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def contact_sheet(result: EvaluationResult, gap: int = 4) -> Image.Image | None:
    """Grid of the previews: one row per image; columns grey input, each method, ground truth."""
    if not result.previews:
        return None
    columns = [("grey", _INPUT_TITLE)] + [(m, m) for m in result.methods if m != "grey"] + [(GROUND_TRUTH, _TRUTH_TITLE)]
    height = max(p.images[GROUND_TRUTH].shape[0] for p in result.previews)
    widths = [max(p.images[key].shape[1] for p in result.previews) for key, _ in columns]
    font = _font(12)
    header, label = 18, 16
    sheet_w = sum(widths) + gap * (len(columns) + 1)
    sheet_h = header + len(result.previews) * (label + height + gap) + gap
    sheet = Image.new("RGB", (sheet_w, sheet_h), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    x = gap
    for (_, title), width in zip(columns, widths):
        draw.text((x, 3), title, fill=(0, 0, 0), font=font)
        x += width + gap
    y = header
    for preview in result.previews:
        draw.text((gap, y + 1), preview.name, fill=(60, 60, 60), font=font)
        y += label
        x = gap
        for (key, _), width in zip(columns, widths):
            tile = Image.fromarray(preview.images[key])
            if key in ("fusion", GROUND_TRUTH) and len(preview.boxes):
                tile_draw = ImageDraw.Draw(tile)
                for x1, y1, x2, y2 in preview.boxes.tolist():
                    tile_draw.rectangle([x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)], outline=_BOX_COLOUR, width=1)
            sheet.paste(tile, (x, y))
            x += width + gap
        y += height + gap
    return sheet


def distribution_plot(result: EvaluationResult, path: str | os.PathLike) -> bool:
    """Box plots (with the points) of each metric's per-image and per-instance values, by method.

    Uses matplotlib's Agg canvas directly (no pyplot, no global backend change). Returns False when
    there is nothing to plot.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    methods = list(result.methods)
    metrics = [m for m in METRICS if m not in result.unavailable]
    levels = [("image", "whole image")]
    if any(inst for r in result.images for inst in r.metrics["fusion"]["instances"]):
        levels.append(("instances", "inside boxes"))
    if not result.images:
        return False
    figure = Figure(figsize=(3.2 * len(metrics), 3.0 * len(levels)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(levels), len(metrics), squeeze=False)
    rng = np.random.default_rng(0)
    for row, (level, level_title) in enumerate(levels):
        for col, metric in enumerate(metrics):
            axis = axes[row][col]
            names = methods + ([GROUND_TRUTH] if metric in TRUTH_METRICS and level == "image" else [])
            data = []
            for method in names:
                if level == "image":
                    values = [r.metrics[method]["image"].get(metric, np.nan) for r in result.images]
                else:
                    values = [inst.get(metric, np.nan) for r in result.images for inst in r.metrics[method]["instances"]]
                values = np.asarray(values, dtype=np.float64)
                data.append(values[np.isfinite(values)])
            positions = np.arange(1, len(names) + 1)
            present = [i for i, d in enumerate(data) if d.size]
            if present:
                axis.boxplot([data[i] for i in present], positions=positions[present], widths=0.6, showfliers=False)
                for i in present:
                    jitter = rng.uniform(-0.15, 0.15, size=data[i].size)
                    axis.plot(positions[i] + jitter, data[i], "o", markersize=2.5, alpha=0.5)
            axis.set_xticks(positions, ["truth" if n == GROUND_TRUTH else n for n in names], rotation=30)
            axis.set_title(f"{METRIC_TITLES[metric]}{_ARROWS[METRICS[metric]]}, {level_title}", fontsize=9)
            axis.grid(axis="y", alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    return True


def write_report(result: EvaluationResult, folder: str | os.PathLike) -> dict[str, Path]:
    """Write ``metrics.json``, ``report.md``, ``contact_sheet.png`` and ``distributions.png``.

    Returns:
        ``{file name: path}`` of what was written (the pictures only when there is something to show).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    described: dict[str, str] = {"metrics.json": "every value, per image and instance, with the protocol"}
    sheet = contact_sheet(result)
    if sheet is not None:
        save_image(sheet, folder / "contact_sheet.png")
        written["contact_sheet.png"] = folder / "contact_sheet.png"
        described["contact_sheet.png"] = f"grey input / each method / ground truth for the first {len(result.previews)} images"
    if hint_plot(result.hint_curve, folder / "hints.png"):
        written["hints.png"] = folder / "hints.png"
        described["hints.png"] = "PSNR against the number of hint points drawn from the ground truth"
    if distribution_plot(result, folder / "distributions.png"):
        written["distributions.png"] = folder / "distributions.png"
        described["distributions.png"] = "per-image and per-instance distribution of each metric"
    payload = json.dumps(metrics_json(result), indent=1, allow_nan=False)
    atomic_write_bytes(folder / "metrics.json", payload.encode())
    written["metrics.json"] = folder / "metrics.json"
    atomic_write_bytes(folder / "report.md", render_markdown(result, described).encode())
    written["report.md"] = folder / "report.md"
    return written
