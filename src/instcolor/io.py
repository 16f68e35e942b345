"""Image input/output: decoding any common photo into RGB + alpha, and atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: File name endings treated as images when walking folders.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}



@dataclass
class DecodedImage:
    """A decoded input image.

    Attributes:
        rgb: ``(H, W, 3)`` float32 sRGB in ``[0, 1]`` (grey inputs are replicated to 3 channels).
        alpha: ``(H, W)`` uint8 alpha channel, or None when the input has none.
        is_grey: True when the input had a single colour channel.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    is_grey: bool

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.rgb.shape[1], self.rgb.shape[0]


def open_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file with its EXIF orientation applied; raises ValueError when unreadable."""
    try:
        with Image.open(path) as img:
            img.load()
            return ImageOps.exif_transpose(img)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {err}") from err


def decode_image(image: str | os.PathLike | Image.Image | np.ndarray) -> DecodedImage:
    """Decode a path, PIL image or ``HxW`` / ``HxWx3`` / ``HxWx4`` array (uint8 or uint16)."""
    if isinstance(image, np.ndarray):
        return _decode_array(image)
    if isinstance(image, (str, os.PathLike)):
        image = open_image(image)
    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a path, PIL image or numpy array, got {type(image).__name__}")
    return _decode_pil(image)


def _decode_pil(img: Image.Image) -> DecodedImage:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        return _grey(np.clip(arr / scale, 0, 1), None)
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 1.0 if arr.max(initial=0) <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        return _grey(np.clip(arr / scale, 0, 1), None)
    if mode in ("1", "L"):
        return _grey(np.asarray(img.convert("L"), dtype=np.float64) / 255.0, None)
    if mode == "LA":
        arr = np.asarray(img)
        return _grey(arr[..., 0] / 255.0, arr[..., 1].copy())
    if mode in ("RGBA", "RGBa", "PA"):
        img = img.convert("RGBA")
        arr = np.asarray(img)
        return _colour(arr[..., :3] / 255.0, arr[..., 3].copy())
    return _colour(np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0, None)


def _decode_array(arr: np.ndarray) -> DecodedImage:
    if arr.dtype == np.uint8:
        scaled = arr.astype(np.float64) / 255.0
    elif arr.dtype == np.uint16:
        scaled = arr.astype(np.float64) / 65535.0
    elif arr.dtype == bool:
        scaled = arr.astype(np.float64)
    else:
        raise ValueError(f"arrays must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 2:
        return _grey(scaled, None)
    if arr.ndim == 3 and arr.shape[2] == 1:
        return _grey(scaled[..., 0], None)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = None
        if arr.shape[2] == 4:
            alpha = np.round(scaled[..., 3] * 255).astype(np.uint8)
        return _colour(scaled[..., :3], alpha)
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}")


def _grey(grey: np.ndarray, alpha: np.ndarray | None) -> DecodedImage:
    _check_size(grey.shape)
    rgb = np.repeat(grey[..., None], 3, axis=2).astype(np.float32)
    return DecodedImage(rgb=rgb, alpha=alpha, is_grey=True)


def _colour(rgb: np.ndarray, alpha: np.ndarray | None) -> DecodedImage:
    _check_size(rgb.shape)
    return DecodedImage(rgb=np.ascontiguousarray(rgb, dtype=np.float32), alpha=alpha, is_grey=False)


def _check_size(shape: tuple[int, ...]) -> None:
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"image has no pixels (shape {shape})")


def to_pil(rgb: np.ndarray, alpha: np.ndarray | None = None) -> Image.Image:
    """``(H, W, 3)`` float in ``[0, 1]`` (+ optional ``(H, W)`` uint8 alpha) -> PIL RGB/RGBA."""
    rgb8 = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    if alpha is None:
        return Image.fromarray(rgb8, "RGB")
    return Image.fromarray(np.dstack([rgb8, alpha]), "RGBA")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    A crash or exception leaves ``path`` untouched and removes the temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file + rename)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def save_image(image: Image.Image, path: str | os.PathLike, quality: int = 95) -> None:
    """Save a PIL image atomically; the format follows the file ending."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"unknown image file ending {path.suffix!r}")
    if fmt == "JPEG" and image.mode == "RGBA":
        image = image.convert("RGB")
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **options)


def walk_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders (recursive) and glob patterns into images.

    Returns:
        ``(images, problems)``: ``(path, relative name)`` pairs, where the name keeps a folder's inner
        structure and is the bare file name for files and globs; and one message per input that
        matched nothing.
    """
    import glob

    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not matches:
                problems.append(f"{item}: folder holds no images")
            found += [(p, p.relative_to(path)) for p in matches]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                problems.append(f"{item}: no such file, folder or pattern")
            found += [(p, Path(p.name)) for p in matches]
    return found, problems


def find_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Like :func:`walk_inputs`, but only the sorted unique resolved paths."""
    found, problems = walk_inputs(inputs)
    return list(dict.fromkeys(p.resolve() for p, _ in found)), problems
