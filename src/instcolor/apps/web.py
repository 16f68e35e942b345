"""A local web page for colorizing photos (gradio).

Upload one or several photos, colorize them, compare before and after with a slider (full
resolution; the fullscreen button zooms), download each result at full resolution in its input's
format (and a zip of all), see the detected instances drawn on the photo, remove instances, add a
box by dragging the mouse over that photo (or by typing its coordinates), and rerun. Uploads are capped in bytes and megapixels; a bad file gives one
line, never a crash. The page loads nothing from the internet (system fonts, no analytics).

The work is done by plain functions (:func:`check_upload`, :func:`colorize_photo`,
:func:`colorize_batch`, :func:`add_drawn_box`, :func:`rerun_photo`) so it can be tested without a
browser; :func:`build_app` wires them into gradio and :func:`launch` serves the page. Drawing is
the page's only script of its own (:data:`DRAW_BOX_JS`, inline, no external file): a drag over the
instances photo shows a rubber band and, on release, sends ``"x1, y1, x2, y2"`` in the photo's
pixels to the server through a hidden text box and button; the box joins the instance list, ticked,
and the next rerun uses it.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from instcolor.inference.pipeline import Colorizer, ColorizeResult
from instcolor.instances import Instances
from instcolor.io import decode_image, open_image, save_image

#: Drawing a box with the mouse on the instances photo (``#overlay``): a rubber band while dragging,
#: then ``"x1, y1, x2, y2"`` in the photo's own pixels (the image may be shown scaled and letterboxed)
#: goes into the hidden ``#drawn-box`` text box and the hidden ``#draw-add`` button sends it.
DRAW_BOX_JS = r"""
() => {
  if (window.instcolorDrawBoxes) return;
  window.instcolorDrawBoxes = true;
  let drag = null;
  const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
  // where the picture's pixels are on screen, for any object-fit (gradio shows it scaled down)
  const placement = (img) => {
    const r = img.getBoundingClientRect(), nw = img.naturalWidth, nh = img.naturalHeight;
    const fit = getComputedStyle(img).objectFit;
    let sx = r.width / nw, sy = r.height / nh;
    if (fit === "contain" || fit === "scale-down") { sx = sy = Math.min(sx, sy, fit === "scale-down" ? 1 : Infinity); }
    else if (fit === "cover") { sx = sy = Math.max(sx, sy); }
    else if (fit === "none") { sx = sy = 1; }
    const w = nw * sx, h = nh * sy;
    return { left: r.left + (r.width - w) / 2, top: r.top + (r.height - h) / 2, w, h, sx, sy, nw, nh };
  };
  const corner = (p, event) => [clamp(event.clientX, p.left, p.left + p.w), clamp(event.clientY, p.top, p.top + p.h)];
  const place = (band, a, b) => Object.assign(band.style, {
    left: Math.min(a[0], b[0]) + "px", top: Math.min(a[1], b[1]) + "px",
    width: Math.abs(b[0] - a[0]) + "px", height: Math.abs(b[1] - a[1]) + "px",
  });
  document.addEventListener("mousedown", (event) => {
    const img = event.target;
    if (event.button !== 0 || !(img instanceof HTMLImageElement) || !img.closest("#overlay") || !img.naturalWidth) return;
    const p = placement(img);
    if (event.clientX < p.left || event.clientX > p.left + p.w || event.clientY < p.top || event.clientY > p.top + p.h) return;
    event.preventDefault();
    event.stopPropagation();
    const band = document.createElement("div");
    band.id = "draw-band";
    Object.assign(band.style, { position: "fixed", border: "2px dashed #ff3b30", background: "rgba(255, 59, 48, 0.15)",
                                pointerEvents: "none", zIndex: 10000 });
    document.body.appendChild(band);
    drag = { p, start: corner(p, event), band };
    place(band, drag.start, drag.start);
  }, true);
  document.addEventListener("mousemove", (event) => {
    if (drag) place(drag.band, drag.start, corner(drag.p, event));
  }, true);
  document.addEventListener("mouseup", (event) => {
    if (!drag) return;
    const { p, start, band } = drag;
    drag = null;
    band.remove();
    const end = corner(p, event);
    if (Math.abs(end[0] - start[0]) < 4 || Math.abs(end[1] - start[1]) < 4) return;  // a click, not a box
    const x = [start[0], end[0]].map((v) => clamp((v - p.left) / p.sx, 0, p.nw)).sort((a, b) => a - b);
    const y = [start[1], end[1]].map((v) => clamp((v - p.top) / p.sy, 0, p.nh)).sort((a, b) => a - b);
    const field = document.querySelector("#drawn-box textarea, #drawn-box input");
    field.value = [x[0], y[0], x[1], y[1]].map((v) => Math.round(v)).join(", ");
    field.dispatchEvent(new Event("input", { bubbles: true }));
    setTimeout(() => document.querySelector("#draw-add").click(), 50);
  }, true);
}
"""
DRAW_BOX_CSS = "#overlay img { cursor: crosshair; }"

BOX_COLOURS = [(255, 210, 0), (0, 200, 255), (255, 80, 160), (120, 255, 80), (255, 140, 0), (180, 120, 255)]


class UploadError(ValueError):
    """A photo the page refuses; the message is one line meant for the person uploading it."""


@dataclass(frozen=True)
class PageLimits:
    """Upload caps: bytes per file, megapixels per photo, photos per run."""

    max_bytes: int = 25 * 1024 * 1024
    max_megapixels: float = 40.0
    max_files: int = 32


@dataclass
class PhotoResult:
    """One colorized photo as the page keeps it."""

    name: str
    source: str
    output: str
    result: ColorizeResult
    before: Image.Image = field(repr=False)
    drawn: tuple[tuple[float, float, float, float], ...] = ()  # boxes drawn since the last run

    @property
    def instances(self) -> Instances:
        """The instances of the last run, then the boxes drawn since (label ``"drawn"``, score 1)."""
        if not self.drawn:
            return self.result.instances
        used = self.result.instances
        return Instances(
            boxes=np.concatenate([used.boxes.reshape(-1, 4), np.asarray(self.drawn, np.float32)]).astype(np.float32),
            scores=np.concatenate([used.scores, np.ones(len(self.drawn), np.float32)]).astype(np.float32),
            labels=list(used.labels) + ["drawn"] * len(self.drawn),
        )


def check_upload(path: str | os.PathLike, limits: PageLimits) -> tuple[int, int]:
    """Refuse a file over the caps or one that is not an image; return its ``(width, height)``.

    Reads only the file's header: a huge photo is refused before it is decoded.
    """
    path = Path(path)
    name = path.name
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise UploadError(f"{name} is {size / 2**20:.1f} MB; the limit is {limits.max_bytes / 2**20:.0f} MB")
    if size == 0:
        raise UploadError(f"{name} is empty")
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError, ValueError):
        raise UploadError(f"{name} is not an image this page can read (JPEG, PNG, TIFF, WebP, BMP, ...)") from None
    megapixels = width * height / 1e6
    if megapixels > limits.max_megapixels:
        raise UploadError(
            f"{name} is {width}x{height} ({megapixels:.1f} megapixels); the limit is {limits.max_megapixels:g} megapixels"
        )
    return width, height


def parse_box(text: str, width: int, height: int) -> list[float]:
    """``"x1, y1, x2, y2"`` in pixels -> a box clipped to the photo; :class:`UploadError` when malformed."""
    parts = text.replace(";", ",").replace(" ", ",").split(",")
    try:
        values = [float(p) for p in parts if p.strip()]
    except ValueError:
        values = []
    if len(values) != 4:
        raise UploadError(f"a box is four numbers x1, y1, x2, y2 in pixels, got {text!r}")
    x1, y1, x2, y2 = values
    x1, x2 = sorted((min(max(x1, 0), width), min(max(x2, 0), width)))
    y1, y2 = sorted((min(max(y1, 0), height), min(max(y2, 0), height)))
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise UploadError(f"the box {text!r} is empty inside the {width}x{height} photo")
    return [x1, y1, x2, y2]


def instance_names(instances: Instances) -> list[str]:
    """One name per instance, as the page lists them: ``"1: person 0.93 [x1, y1, x2, y2]"``."""
    return [
        f"{i + 1}: {label or 'object'} {score:.2f} [{', '.join(str(round(v)) for v in box)}]"
        for i, (box, label, score) in enumerate(zip(instances.boxes.tolist(), instances.labels, instances.scores.tolist()))
    ]


def draw_instances(image: Image.Image, instances: Instances | ColorizeResult) -> Image.Image:
    """``image`` with each instance's box, number and label drawn on it."""
    if isinstance(instances, ColorizeResult):
        instances = instances.instances
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    for i, (box, label, score) in enumerate(zip(instances.boxes.tolist(), instances.labels, instances.scores.tolist())):
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        draw.rectangle(box, outline=colour, width=width)
        text = f"{i + 1} {label or 'object'} {score:.2f}"
        x, y = box[0] + width + 1, box[1] + width + 1
        draw.rectangle(draw.textbbox((x, y), text), fill=(0, 0, 0))
        draw.text((x, y), text, fill=colour)
    return canvas


def _output_path(folder: Path, source: Path) -> Path:
    suffix = source.suffix.lower()
    if Image.registered_extensions().get(suffix) is None:
        suffix = ".png"
    return folder / f"{source.stem}-colour{suffix}"


def colorize_photo(
    colorizer: Colorizer,
    source: str | os.PathLike,
    folder: str | os.PathLike,
    limits: PageLimits = PageLimits(),
    instances: Instances | None = None,
    mode: str = "fusion",
) -> PhotoResult:
    """Check, colorize and save one uploaded photo (full resolution, the input's format) into ``folder``."""
    source = Path(source)
    check_upload(source, limits)
    try:
        before = open_image(source)
        decoded = decode_image(before)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UploadError(f"{source.name} cannot be decoded: {err}") from None
    result = colorizer(decoded, instances, mode=mode)
    output = _output_path(Path(folder), source)
    save_image(result.image, output)
    return PhotoResult(name=source.name, source=str(source), output=str(output), result=result, before=before.convert("RGB"))


def add_drawn_box(photo: PhotoResult, text: str) -> PhotoResult:
    """``photo`` with one more box, ``"x1, y1, x2, y2"`` in its pixels (drawn with the mouse), for the next rerun."""
    width, height = photo.before.size
    return dataclasses.replace(photo, drawn=(*photo.drawn, tuple(parse_box(text, width, height))))


def rerun_photo(
    colorizer: Colorizer,
    photo: PhotoResult,
    keep: list[int],
    add_box: str = "",
    mode: str = "fusion",
) -> PhotoResult:
    """Colorize ``photo`` again with only the instances in ``keep`` (0-based) plus an optional new box."""
    old = photo.instances
    keep = [i for i in keep if 0 <= i < len(old)]
    boxes = [old.boxes[i].tolist() for i in keep]
    scores = [float(old.scores[i]) for i in keep]
    labels = [old.labels[i] for i in keep]
    if add_box.strip():
        width, height = photo.before.size
        boxes.append(parse_box(add_box, width, height))
        scores.append(1.0)
        labels.append("added")
    instances = Instances(
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4), scores=np.asarray(scores, np.float32), labels=labels
    )
    return colorize_photo(colorizer, photo.source, Path(photo.output).parent, PageLimits(2**62, 1e9, 1), instances, mode)


def colorize_batch(
    colorizer: Colorizer,
    sources: list[str | os.PathLike],
    limits: PageLimits = PageLimits(),
    mode: str = "fusion",
    on_photo: Callable[[int, int, str], None] | None = None,
) -> tuple[list[PhotoResult], list[str], str | None]:
    """Colorize several uploads; ``(results, one message per refused file, zip of the results or None)``.

    A bad file is reported and skipped; the others are still colorized.
    """
    folder = Path(tempfile.mkdtemp(prefix="instcolor-web-"))
    results: list[PhotoResult] = []
    problems: list[str] = []
    sources = list(sources)
    if len(sources) > limits.max_files:
        problems.append(f"{len(sources)} photos uploaded; the limit is {limits.max_files} per run (the rest were skipped)")
        sources = sources[: limits.max_files]
    for i, source in enumerate(sources):
        if on_photo is not None:
            on_photo(i, len(sources), Path(source).name)
        try:
            results.append(colorize_photo(colorizer, source, folder, limits, mode=mode))
        except UploadError as err:
            problems.append(str(err))
    archive = None
    if len(results) > 1:
        archive = str(folder / "instcolor-results.zip")
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            names: set[str] = set()
            for photo in results:
                name = Path(photo.output).name
                while name in names:  # two uploads with the same name
                    name = "_" + name
                names.add(name)
                zf.write(photo.output, name)
    return results, problems, archive


def photo_status(photo: PhotoResult) -> str:
    width, height = photo.result.image.size
    line = f"{photo.name}: {width}x{height}, {len(photo.instances)} instance(s), network path: {photo.result.mode}"
    if photo.result.detector:
        line += f", detector: {photo.result.detector}"
    return line


def colorize_for_page(colorizer: Colorizer, image: np.ndarray | None, mode: str, show_boxes: bool):
    """Colorize an in-memory image: ``(colour image, instances table rows, status line)`` (API use)."""
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


def _gradio():
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio as gr
    except ImportError as err:  # optional dependency
        raise RuntimeError("the web page needs gradio: pip install 'instcolor[web]'") from err
    return gr


def offline_theme():
    """The default gradio look with system fonts only: nothing is fetched from the internet."""
    gr = _gradio()
    sans = ("ui-sans-serif", "system-ui", "sans-serif")
    mono = ("ui-monospace", "Consolas", "monospace")
    return gr.themes.Default(font=sans, font_mono=mono)


def build_app(colorizer: Colorizer, title: str = "instcolor", limits: PageLimits = PageLimits()):
    """The gradio Blocks page around ``colorizer`` (serve it with :func:`launch`)."""
    gr = _gradio()
    source = colorizer.metadata.get("source", "unknown source")

    def views(photo: PhotoResult | None):
        if photo is None:
            return None, None, gr.update(choices=[], value=[])
        names = instance_names(photo.instances)
        overlay = draw_instances(photo.before, photo.instances)
        return (photo.before, photo.result.image), overlay, gr.update(choices=names, value=names)

    def run_batch(files, mode, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in (files or [])]
        if not paths:
            return ([], None, None, None, gr.update(choices=[], value=[]), gr.update(choices=[], value=None),
                    "upload one or more photos first")

        def step(i, n, name):
            progress((i, n), desc=f"colorizing {name}")

        try:
            results, problems, archive = colorize_batch(colorizer, paths, limits, mode, on_photo=step)
        except Exception as err:  # never a crash: one line on the page
            results, problems, archive = [], [f"colorizing failed: {type(err).__name__}: {err}"], None
        lines = [photo_status(p) for p in results] + [f"refused: {p}" for p in problems]
        downloads = [p.output for p in results] + ([archive] if archive else [])
        compare, overlay, keep = views(results[0] if results else None)
        choices = [p.name for p in results]
        picker = gr.update(choices=choices, value=choices[0] if choices else None)
        return results, compare, overlay, downloads or None, keep, picker, "\n\n".join(lines) or "nothing colorized"

    def pick(results, name):
        photo = next((p for p in results or [] if p.name == name), None)
        return views(photo)

    def rerun(results, name, kept, add_box, mode):
        photo = next((p for p in results or [] if p.name == name), None)
        if photo is None:
            return results, gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), "colorize a photo first"
        names = instance_names(photo.instances)
        keep = [names.index(k) for k in kept or [] if k in names]
        try:
            new = rerun_photo(colorizer, photo, keep, add_box or "", mode)
        except UploadError as err:
            return results, gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), str(err)
        except Exception as err:
            return results, gr.update(), gr.update(), gr.update(), gr.update(), gr.update(), f"rerun failed: {type(err).__name__}: {err}"
        results = [new if p.name == name else p for p in results]
        compare, overlay, keep_update = views(new)
        downloads = [p.output for p in results]
        return results, compare, overlay, downloads, keep_update, "", "rerun " + photo_status(new)

    def draw(results, name, kept, text):
        photo = next((p for p in results or [] if p.name == name), None)
        if photo is None:
            return results, gr.update(), gr.update(), "", "colorize a photo first"
        try:
            new = add_drawn_box(photo, text or "")
        except UploadError as err:
            return results, gr.update(), gr.update(), "", str(err)
        results = [new if p.name == name else p for p in results]
        names = instance_names(new.instances)
        ticked = [k for k in kept or [] if k in names] + [names[-1]]
        return (results, draw_instances(new.before, new.instances), gr.update(choices=names, value=ticked), "",
                f"box {names[-1]} added: rerun to use it")

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(
            f"# {title}\nInstance-aware colorization of grey photos. Weights: {source}. "
            f"Up to {limits.max_files} photos per run, {limits.max_bytes / 2**20:.0f} MB and "
            f"{limits.max_megapixels:g} megapixels each. Colour hints are not offered on this page yet (use `instcolor colorize --hints` or the Python API)."
        )
        results_state = gr.State([])
        with gr.Row():
            with gr.Column(scale=1):
                files = gr.File(label="grey photos", file_count="multiple", file_types=["image"], elem_id="uploads")
                mode = gr.Radio(["fusion", "full"], value="fusion", label="network path", elem_id="mode")
                run = gr.Button("Colorize", variant="primary", elem_id="colorize")
                status = gr.Markdown(elem_id="status")
                downloads = gr.File(label="download (full resolution, the input's format; zip of all)",
                                    file_count="multiple", interactive=False, elem_id="downloads")
            with gr.Column(scale=2):
                picker = gr.Dropdown(label="photo", choices=[], elem_id="picker")
                compare = gr.ImageSlider(label="before / after (drag; fullscreen to zoom)", type="pil", format="png",
                                         buttons=["download", "fullscreen"], elem_id="compare", max_height=700)
        with gr.Row():
            with gr.Column(scale=2):
                overlay = gr.Image(label="instances (drag on the photo to draw a box)", type="pil", format="png",
                                   interactive=False, elem_id="overlay")
            with gr.Column(scale=1):
                keep = gr.CheckboxGroup(label="instances (untick to remove)", choices=[], elem_id="keep")
                add_box = gr.Textbox(label="add a box: x1, y1, x2, y2 in pixels of the photo",
                                     placeholder="e.g. 40, 10, 300, 420", elem_id="add-box")
                rerun_button = gr.Button("Rerun with these instances", elem_id="rerun")
                drawn_box = gr.Textbox(visible="hidden", elem_id="drawn-box")  # filled by DRAW_BOX_JS
                draw_button = gr.Button(visible="hidden", elem_id="draw-add")
        run.click(run_batch, inputs=[files, mode],
                  outputs=[results_state, compare, overlay, downloads, keep, picker, status])
        picker.input(pick, inputs=[results_state, picker], outputs=[compare, overlay, keep])
        rerun_button.click(rerun, inputs=[results_state, picker, keep, add_box, mode],
                           outputs=[results_state, compare, overlay, downloads, keep, add_box, status])
        draw_button.click(draw, inputs=[results_state, picker, keep, drawn_box],
                          outputs=[results_state, overlay, keep, drawn_box, status])
    page.instcolor_limits = limits
    return page


def launch(page, host: str = "127.0.0.1", port: int | None = 7860, **kwargs):
    """Serve ``page`` offline on ``host:port`` (loopback unless told otherwise), with box drawing
    (:data:`DRAW_BOX_JS`); gradio's own upload cap is twice the page's so that only absurd uploads are
    cut off before the page's message."""
    limits = getattr(page, "instcolor_limits", PageLimits())
    return page.launch(
        server_name=host,
        server_port=port,
        share=False,
        theme=offline_theme(),
        max_file_size=2 * limits.max_bytes,
        footer_links=[],
        js=DRAW_BOX_JS,
        css=DRAW_BOX_CSS,
        **kwargs,
    )
