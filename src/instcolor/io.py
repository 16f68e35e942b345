"""Image input/output: decoding any common photo (samples kept as decoded, float RGB on demand), and atomic writes."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

#: File name endings treated as images when walking folders.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm", ".pgm"}



@dataclass(eq=False)
class DecodedImage:
    """A decoded input image, kept in its own sample type until float values are asked for.

    Attributes:
        pixels: the samples as decoded: ``(H, W)`` grey or ``(H, W, 3)`` RGB, uint8 or uint16 for
            integer images, float32 in ``[0, 1]`` otherwise (32-bit and float images).
        alpha: ``(H, W)`` uint8 alpha channel, or None when the input has none.
    """

    pixels: np.ndarray
    alpha: np.ndarray | None = None

    @property
    def is_grey(self) -> bool:
        """True when the input had a single colour channel."""
        return self.pixels.ndim == 2

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``."""
        return self.pixels.shape[1], self.pixels.shape[0]

    @cached_property
    def rgb(self) -> np.ndarray:
        """``(H, W, 3)`` float32 sRGB in ``[0, 1]`` (grey replicated), made on first use."""
        values = unit_values(self.pixels)
        return np.repeat(values[..., None], 3, axis=2) if self.is_grey else values


def unit_values(pixels: np.ndarray) -> np.ndarray:
    """Samples as float32 in ``[0, 1]``: uint8 / 255, uint16 / 65535 (by table, same values as float64 division)."""
    if pixels.dtype in (np.uint8, np.uint16):
        return np.take(_unit_table(pixels.dtype), pixels)
    return np.asarray(pixels, dtype=np.float32)


def _unit_table(dtype: np.dtype) -> np.ndarray:
    top = np.iinfo(dtype).max
    return (np.arange(top + 1, dtype=np.float64) / top).astype(np.float32)


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
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return _decoded(np.asarray(img).astype(np.uint16))
    if mode == "I":
        arr = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return _decoded(np.clip(arr / scale, 0, 1).astype(np.float32))
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 1.0 if arr.max(initial=0) <= 1.0 else (255.0 if arr.max() <= 255 else 65535.0)
        return _decoded(np.clip(arr / scale, 0, 1).astype(np.float32))
    if mode in ("1", "L"):
        return _decoded(np.asarray(img.convert("L")))
    if mode == "LA":
        arr = np.asarray(img)
        return _decoded(arr[..., 0].copy(), arr[..., 1].copy())
    if mode in ("RGBA", "RGBa", "PA"):
        arr = np.asarray(img.convert("RGBA"))
        return _decoded(arr[..., :3].copy(), arr[..., 3].copy())
    return _decoded(np.asarray(img.convert("RGB")))


def _decode_array(arr: np.ndarray) -> DecodedImage:
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * np.uint8(255)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"arrays must be uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 2:
        return _decoded(arr.copy())
    if arr.ndim == 3 and arr.shape[2] == 1:
        return _decoded(arr[..., 0].copy())
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        alpha = None
        if arr.shape[2] == 4:
            alpha = np.round(arr[..., 3] / float(np.iinfo(arr.dtype).max) * 255).astype(np.uint8)
        return _decoded(np.array(arr[..., :3]), alpha)
    raise ValueError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}")


def _decoded(pixels: np.ndarray, alpha: np.ndarray | None = None) -> DecodedImage:
    if pixels.shape[0] < 1 or pixels.shape[1] < 1:
        raise ValueError(f"image has no pixels (shape {pixels.shape})")
    return DecodedImage(pixels=pixels, alpha=alpha)


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
        # mkstemp makes the file private (0600): give it the mode a plain write would have had.
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else _new_file_mode()
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def _new_file_mode() -> int:
    """``0o666`` less the process umask: the mode ``open(path, "w")`` gives a new file."""
    try:  # Linux: read it without changing it (setting it, even briefly, would race other threads)
        with open("/proc/self/status") as status:
            umask = next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0)
        os.umask(umask)
    return 0o666 & ~umask


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
