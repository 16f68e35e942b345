"""The report folder: strict JSON, a readable Markdown table with the protocol, and the two pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from tests.support.helpers import tiny_model
from instcolor.evaluation import EvaluationConfig, evaluate, write_report
from instcolor.evaluation.report import contact_sheet, render_markdown
from instcolor.inference.pipeline import Colorizer


def strict_json(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON number {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module")
def report_folder(evaluated, tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    written = write_report(evaluated, folder)
    assert set(written) == {"metrics.json", "report.md", "contact_sheet.png", "distributions.png"}
    return folder


def test_metrics_json_holds_protocol_images_and_intervals(report_folder, evaluated):
    data = strict_json(report_folder / "metrics.json")
    for key in ("resize", "grey_input", "colour_conversion", "boxes", "ssim", "psnr", "lpips", "confidence_intervals"):
        assert data["protocol"][key], key
    assert data["protocol"]["resolution"] == 64
    assert [item["image"] for item in data["images"]] == [r.name for r in evaluated.images]
    fusion = data["summary"]["image"]["fusion"]["psnr"]
    assert fusion["ci95"][0] <= fusion["mean"] <= fusion["ci95"][1] and fusion["n"] == 3
    chelsea = next(item for item in data["images"] if item["image"] == "chelsea.png")
    assert set(chelsea["metrics"]["fusion"]["image"]) == {"psnr", "ssim", "lpips", "colourfulness", "seam", "cast"}
    assert len(chelsea["metrics"]["fusion"]["instances"]) == 1
    assert data["unavailable"]["fid"].startswith("inception_v3_google")
    paired = data["paired_differences"]["image"]["fusion-full"]["psnr"]
    assert paired["ci95"][0] <= paired["mean"] <= paired["ci95"][1] and paired["n"] == 2  # photos with instances
    assert {item["image"] for item in data["skipped"]} == {"grey.png", "colourless.png"}
    assert [item["image"] for item in data["failed"]] == ["broken.png"]


def test_report_md_has_tables_unavailable_reasons_and_protocol(report_folder):
    text = (report_folder / "report.md").read_text()
    assert "| method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | colourfulness | seam score | cast score ↓ |" in text
    assert "| method | PSNR (dB) ↑ | SSIM ↑ | LPIPS ↓ | colourfulness |\n" in text  # inside boxes
    assert "- seam score: mean Lab ab step across the instance box borders" in text
    for row in ("(`grey`)", "(`full`)", "(`fusion`)", "(`compare`)", "(`ground_truth`)"):
        assert text.count(row) == 2, row  # whole image and instance tables
    assert "## Inside instance boxes (2 instances in 2 images; 1 boxes too small)" in text
    assert "## Paired differences" in text
    assert "| first - second | PSNR (dB) ↑, whole image | PSNR (dB) ↑, in boxes | SSIM ↑, whole image |" in text
    assert "| `fusion` - `full` | " in text and "| `fusion` - `compare` | " in text
    assert "- FID: unavailable: inception_v3_google" in text
    assert "> **Note:** LPIPS ran with backbone weights that are not torchvision's published release" in text
    assert "- **resize**: ground truth resized to 64x64" in text
    assert "skipped grey.png" in text and "failed broken.png" in text
    assert "[contact_sheet.png](contact_sheet.png)" in text


def test_contact_sheet_shows_every_method_and_the_boxes(report_folder, evaluated):
    sheet = Image.open(report_folder / "contact_sheet.png")
    height = evaluated.previews[0].images["ground_truth"].shape[0]
    assert sheet.size[1] == 18 + 3 * (16 + height + 4) + 4  # header + three rows
    columns = ["grey", "full", "fusion", "compare", "ground_truth"]
    widths = [max(p.images[c].shape[1] for p in evaluated.previews) for c in columns]
    assert sheet.size[0] == sum(widths) + 4 * (len(columns) + 1)
    chelsea = next(i for i, p in enumerate(evaluated.previews) if p.name == "chelsea.png")
    x1, y1, _, _ = evaluated.previews[chelsea].boxes[0]
    left = 4 + widths[0] + 4 + widths[1] + 4  # the fusion column
    top = 18 + chelsea * (16 + height + 4) + 16
    pixel = np.asarray(sheet.convert("RGB"))[top + int(y1), left + int(x1)]
    assert tuple(pixel) == (255, 40, 40)


def test_distributions_png_is_a_picture(report_folder):
    plot = Image.open(report_folder / "distributions.png")
    assert plot.format == "PNG" and plot.size[0] > 600 and plot.size[1] > 400
    colours = np.asarray(plot.convert("RGB")).reshape(-1, 3)
    assert len(np.unique(colours, axis=0)) > 20  # something was drawn


def test_report_without_lpips_drops_the_column_and_says_why(photo_set, tmp_path):
    paths = [photo_set["folder"] / "chelsea.png", photo_set["folder"] / "coffee.png"]
    config = EvaluationConfig(resolution=32, download=False, fid=False, bootstrap_resamples=50)
    result = evaluate(paths, Colorizer(tiny_model(0), size=64), config=config)
    text = render_markdown(result, {})
    assert "LPIPS ↓" not in text
    assert "- LPIPS: unavailable: alexnet-owt-7be5be79.pth is not in the torch hub cache" in text
    assert "No instance large enough to measure" in text
    write_report(result, tmp_path / "r")
    data = strict_json(tmp_path / "r" / "metrics.json")
    assert all("lpips" not in item["metrics"]["fusion"]["image"] for item in data["images"])
    assert contact_sheet(result).size[0] > 0
