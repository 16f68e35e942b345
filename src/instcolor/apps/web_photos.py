"""The web page's work, without gradio: uploads checked, photos colorized, and the edits a person
makes on the page applied to the next rerun.

A :class:`PhotoResult` is one colorized photo as the page keeps it, with the edits made since its
last run: boxes drawn on it, colour hints (points in the photo's own pixels, each with a colour) and
a wanted colour per instance. :func:`rerun_photo` colorizes it again with the instances kept, the
hints (:func:`instcolor.color.hints.parse_hints`) and the instance colours
(:attr:`instcolor.instances.Instances.colours`). Every message meant for the person is one line,
raised as :class:`UploadError`; nothing here crashes on what a page can send.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, UnidentifiedImageError

from instcolor.color.hints import check_hint_items
from instcolor.inference.pipeline import Colorizer, ColorizeResult
from instcolor.instances import Colour, Instances, parse_colour
from instcolor.io import decode_image, open_image, save_image

BOX_COLOURS = [(255, 210, 0), (0, 200, 255), (255, 80, 160), (120, 255, 80), (255, 140, 0), (180, 120, 255)]

#: A colour hint as the page keeps it: ``(x, y, colour)``, the point in the photo's pixels, 8-bit sRGB.
Hint = tuple[float, float, Colour]


class UploadError(ValueError):
    """A photo or an edit the page refuses; the message is one line meant for the person using it."""


@dataclass(frozen=True)
class PageLimits:
    """Upload caps: bytes per file, megapixels per photo, photos per run."""

    max_bytes: int = 25 * 1024 * 1024
    max_megapixels: float = 40.0
    max_files: int = 32


def with_boxes(instances: Instances, boxes: Sequence[Sequence[float]], label: str) -> Instances:
    """``instances`` and more boxes (score 1, ``label``, no colour; a box-shaped mask when the others have masks)."""
    if not len(boxes):
        return instances
    added = np.asarray(boxes, np.float32).reshape(-1, 4)
    masks = None
    if instances.masks is not None:
        height, width = instances.masks.shape[1:]
        filled = np.zeros((len(added), height, width), bool)
        for mask, (x1, y1, x2, y2) in zip(filled, np.round(added).astype(int).tolist()):
            mask[max(y1, 0) : y2, max(x1, 0) : x2] = True
        masks = np.concatenate([instances.masks, filled])
    return Instances(
        boxes=np.concatenate([instances.boxes, added]),
        scores=np.concatenate([instances.scores, np.ones(len(added), np.float32)]),
        labels=list(instances.labels) + [label] * len(added),
        masks=masks,
        colours=None if instances.colours is None else list(instances.colours) + [None] * len(added),
    )


@dataclass
class PhotoResult:
    """One colorized photo as the page keeps it, with the edits made since its last run."""

    name: str
    source: str
    output: str
    result: ColorizeResult
    before: Image.Image = field(repr=False)
    drawn: tuple[tuple[float, float, float, float], ...] = ()  # boxes drawn since the last run
    hints: tuple[Hint, ...] = ()  # colour hints, kept from run to run
    colours: tuple[Colour | None, ...] | None = None  # wanted colour per instance; None: the last run's

    @property
    def instances(self) -> Instances:
        """The instances of the last run, then the boxes drawn since (label ``"drawn"``, score 1),
        with the colours chosen since."""
        instances = with_boxes(self.result.instances, self.drawn, "drawn")
        if self.colours is None:
            return instances
        colours = (list(self.colours) + [None] * len(instances))[: len(instances)]
        return dataclasses.replace(instances, colours=colours)


def hint_items(hints: Sequence[Hint]) -> list[dict]:
    """Hints as :class:`instcolor.inference.pipeline.Colorizer` takes them: ``[{"xy": [x, y], "colour": [r, g, b]}]``."""
    return [{"xy": [x, y], "colour": list(colour)} for x, y, colour in hints]


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


_RGB_FUNCTION = re.compile(r"rgba?\(\s*([\d.]+)\s*,\s*([\d.]+)\s*,\s*([\d.]+)\s*(?:,\s*[\d.]+\s*)?\)", re.IGNORECASE)


def page_colour(value: str | None) -> Colour:
    """A colour as the page's pickers give it: ``"#rrggbb"``, ``"#rgb"`` or ``"rgb(r, g, b)"`` / ``"rgba(...)"``."""
    text = (value or "").strip()
    match = _RGB_FUNCTION.fullmatch(text)
    if match:
        return tuple(min(max(round(float(v)), 0), 255) for v in match.groups())  # type: ignore[return-value]
    if re.fullmatch(r"#[0-9a-fA-F]{3}", text):
        text = "#" + "".join(c * 2 for c in text[1:])
    try:
        return parse_colour(text)
    except ValueError:
        raise UploadError(f"a colour is #rrggbb, got {value!r:.40}") from None


def hex_colour(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def parse_hint(text: str, width: int, height: int) -> Hint:
    """``"x, y, #rrggbb"`` (a point in the photo's pixels and its colour) -> a hint; :class:`UploadError`
    when malformed or outside the ``width x height`` photo."""
    parts = [p for p in re.split(r"[,;\s]+", (text or "").strip()) if p]
    form = f"a colour hint is x, y, #rrggbb (a point in pixels of the photo and its colour), got {text!r:.60}"
    if len(parts) != 3:
        raise UploadError(form)
    try:
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise UploadError(form) from None
    colour = page_colour(parts[2])
    try:
        check_hint_items(hint_items([(x, y, colour)]), (width, height))
    except ValueError as err:
        raise UploadError(f"colour hint {text!r:.60}: {str(err).removeprefix('hint 1: ')}") from None
    return x, y, colour


def add_hint(photo: PhotoResult, text: str) -> PhotoResult:
    """``photo`` with one more colour hint ``"x, y, #rrggbb"`` (clicked on the photo) for the next rerun."""
    width, height = photo.before.size
    return dataclasses.replace(photo, hints=(*photo.hints, parse_hint(text, width, height)))


def remove_hint(photo: PhotoResult, number: int | str) -> PhotoResult:
    """``photo`` without its hint ``number`` (1-based, as the hint list shows it)."""
    try:
        index = int(str(number).strip()) - 1
    except ValueError:
        index = -1
    if not 0 <= index < len(photo.hints):
        raise UploadError(f"there is no hint {str(number).strip()!r:.20} (the photo has {len(photo.hints)})")
    return dataclasses.replace(photo, hints=photo.hints[:index] + photo.hints[index + 1 :])


def set_instance_colour(photo: PhotoResult, index: int, colour: str | Colour | None) -> PhotoResult:
    """``photo`` with instance ``index`` (0-based) wanted in ``colour`` at the next rerun (None: no colour)."""
    instances = photo.instances
    if not 0 <= index < len(instances):
        raise UploadError(f"there is no instance {index + 1} (the photo has {len(instances)})")
    colours = list(instances.colours or [None] * len(instances))
    colours[index] = None if colour is None else page_colour(colour) if isinstance(colour, str) else parse_colour(colour)
    return dataclasses.replace(photo, colours=tuple(colours))


def instance_names(instances: Instances) -> list[str]:
    """One name per instance, as the page lists them: ``"1: person 0.93 [x1, y1, x2, y2]"``, then
    ``" colour #rrggbb"`` when one is wanted."""
    colours = instances.colours or [None] * len(instances)
    return [
        f"{i + 1}: {label or 'object'} {score:.2f} [{', '.join(str(round(v)) for v in box)}]"
        + (f" colour {hex_colour(colour)}" if colour is not None else "")
        for i, (box, label, score, colour) in enumerate(
            zip(instances.boxes.tolist(), instances.labels, instances.scores.tolist(), colours)
        )
    ]


def name_index(name: str) -> int | None:
    """The 0-based instance index of a name from :func:`instance_names` (None when it is not one)."""
    head = str(name).split(":", 1)[0]
    return int(head) - 1 if head.isdigit() else None


def draw_instances(
    image: Image.Image, instances: Instances | ColorizeResult, hints: Sequence[Hint] = ()
) -> Image.Image:
    """``image`` with each instance's box, number, label (and wanted colour) and each hint's marker drawn on it."""
    if isinstance(instances, ColorizeResult):
        instances = instances.instances
    canvas = image.convert("RGB").copy()
    draw = ImageDraw.Draw(canvas)
    width = max(2, round(max(canvas.size) / 300))
    colours = instances.colours or [None] * len(instances)
    rows = zip(instances.boxes.tolist(), instances.labels, instances.scores.tolist(), colours)
    for i, (box, label, score, wanted) in enumerate(rows):
        colour = BOX_COLOURS[i % len(BOX_COLOURS)]
        draw.rectangle(box, outline=colour, width=width)
        text = f"{i + 1} {label or 'object'} {score:.2f}"
        x, y = box[0] + width + 1, box[1] + width + 1
        x1, y1, x2, y2 = draw.textbbox((x, y), text)
        draw.rectangle((x1, y1, x2, y2), fill=(0, 0, 0))
        draw.text((x, y), text, fill=colour)
        if wanted is not None:  # a swatch of the wanted colour after the label
            side = y2 - y1 + 2
            draw.rectangle((x2 + 2, y1 - 1, x2 + 2 + side, y1 - 1 + side), fill=wanted, outline=(255, 255, 255))
    radius = max(5, round(max(canvas.size) / 90))
    for number, (x, y, colour) in enumerate(hints, start=1):
        draw.ellipse((x - radius - 2, y - radius - 2, x + radius + 2, y + radius + 2), fill=(0, 0, 0))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=(255, 255, 255), width=2)
        label_at = (x + radius + 3, y - radius)
        draw.rectangle(draw.textbbox(label_at, f"H{number}"), fill=(0, 0, 0))
        draw.text(label_at, f"H{number}", fill=(255, 255, 255))
    return canvas


def hint_list_html(hints: Sequence[Hint]) -> str:
    """The hint list as the page shows it: number, point, a swatch and the hex of each, a remove button."""
    if not hints:
        return '<p class="hint-empty">no colour hints: choose "add a colour hint" and click on the photo</p>'
    rows = "".join(
        f'<tr data-hint="{n}"><td>H{n}</td><td>{round(x)}, {round(y)}</td>'
        f'<td><span class="hint-swatch" style="background:{hex_colour(c)}"></span> <code>{hex_colour(c)}</code></td>'
        f'<td><button type="button" data-remove-hint="{n}" aria-label="remove hint {n}">remove</button></td></tr>'
        for n, (x, y, c) in enumerate(hints, start=1)
    )
    return f'<table class="hint-table"><tr><th>hint</th><th>x, y</th><th>colour</th><th></th></tr>{rows}</table>'


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
    hints: Sequence[Hint] = (),
) -> PhotoResult:
    """Check, colorize (with ``hints``) and save one uploaded photo (full resolution, the input's format) into ``folder``."""
    source = Path(source)
    check_upload(source, limits)
    try:
        before = open_image(source)
        decoded = decode_image(before)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise UploadError(f"{source.name} cannot be decoded: {err}") from None
    items = hint_items(hints)
    try:
        check_hint_items(items, decoded.size)
    except ValueError as err:
        raise UploadError(f"{source.name}: {err}") from None
    result = colorizer(decoded, instances, mode=mode, hints=items or None)
    output = _output_path(Path(folder), source)
    save_image(result.image, output)
    return PhotoResult(
        name=source.name, source=str(source), output=str(output), result=result, before=before.convert("RGB"),
        hints=tuple(hints),
    )  # fmt: skip


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
    """Colorize ``photo`` again with only the instances in ``keep`` (0-based) plus an optional new box,
    its colour hints and its instances' colours."""
    old = photo.instances
    keep = [i for i in keep if 0 <= i < len(old)]
    instances = old.select(np.asarray(keep, np.int64))
    if add_box.strip():
        width, height = photo.before.size
        instances = with_boxes(instances, [parse_box(add_box, width, height)], "added")
    folder = Path(photo.output).parent
    return colorize_photo(colorizer, photo.source, folder, PageLimits(2**62, 1e9, 1), instances, mode, photo.hints)


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
    """One line about the photo's last run: size, instances, hints, network path, detector, notes."""
    width, height = photo.result.image.size
    line = f"{photo.name}: {width}x{height}, {len(photo.instances)} instance(s)"
    coloured = sum(c is not None for c in photo.result.instances.colours or [])
    if coloured:
        line += f", {coloured} with a colour"
    if photo.hints:
        line += f", {len(photo.hints)} colour hint(s)"
    line += f", network path: {photo.result.mode}"
    if photo.result.detector:
        line += f", detector: {photo.result.detector}"
    return "; ".join([line, *photo.result.notes])


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
