"""A local web page for colorizing photos (gradio): upload, see the detected instances, download."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from instcolor.inference.pipeline import Colorizer, ColorizeResult


def draw_instances(image: Image.Image, result: ColorizeResult) -> Image.Image:
    """The colour result with each instance's box and label drawn on it."""
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    for box, label, score in zip(result.boxes.tolist(), result.labels, result.scores.tolist()):
        draw.rectangle(box, outline=(255, 210, 0), width=width)
        draw.text((box[0] + width + 1, box[1] + width + 1), f"{label or 'object'} {score:.2f}", fill=(255, 210, 0))
    return canvas


def colorize_for_page(colorizer: Colorizer, image: np.ndarray | None, mode: str, show_boxes: bool):
    """The page's action: ``(colour image, instances table rows, status line)``."""
    if image is None:
        return None, [], "upload a photo first"
    result = colorizer(image, mode=mode)
    shown = draw_instances(result.image, result) if show_boxes else result.image
    rows = [
        [label or "object", round(float(score), 3), [round(v) for v in box]]
        for box, label, score in zip(result.boxes.tolist(), result.labels, result.scores.tolist())
    ]
    status = f"{result.image.size[0]}x{result.image.size[1]}, {len(rows)} instance(s), network path: {result.mode}"
    if result.detector:
        status += f", detector: {result.detector}"
    return shown, rows, status


def build_app(colorizer: Colorizer, title: str = "instcolor"):
    """The gradio Blocks page around ``colorizer``."""
    try:
        import gradio as gr
    except ImportError as err:  # optional dependency
        raise RuntimeError("the web page needs gradio: pip install 'instcolor[web]'") from err

    source = colorizer.metadata.get("source", "unknown source")
    with gr.Blocks(title=title) as page:
        gr.Markdown(f"# {title}\nInstance-aware colorization. Weights: {source}")
        with gr.Row():
            upload = gr.Image(label="grey photo", type="numpy", image_mode="RGB")
            output = gr.Image(label="colour", type="pil", format="png")
        with gr.Row():
            mode = gr.Radio(["fusion", "full"], value="fusion", label="network path")
            show_boxes = gr.Checkbox(value=False, label="draw instances")
            run = gr.Button("Colorize", variant="primary")
        status = gr.Markdown()
        table = gr.Dataframe(headers=["label", "score", "box"], label="instances", interactive=False)
        run.click(
            lambda img, m, s: colorize_for_page(colorizer, img, m, s),
            inputs=[upload, mode, show_boxes],
            outputs=[output, table, status],
        )
    return page
