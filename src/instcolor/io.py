"""Image input/output: decoding any common photo (samples kept as decoded, float RGB on demand), and atomic writes."""

from __future__ import annotations

import contextlib
import errno
import os
import re
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


def walk_inputs(
    inputs: list[str], exclude: str | os.PathLike | None = None, skipped: list[str] | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Expand files, folders (recursive) and glob patterns into images.

    Args:
        inputs: files, folders and glob patterns.
        exclude: a folder never read from (the output folder, when it lies inside an input folder).
        skipped: when given, gets one line per thing left out on purpose: what lies in ``exclude``,
            broken symlinks and symlink loops.

    Returns:
        ``(images, problems)``: ``(path, relative name)`` pairs, where the name keeps a folder's inner
        structure and is the bare file name for files and globs; and one message per input that
        matched nothing.
    """
    import glob

    excluded = Path(exclude).resolve() if exclude is not None else None
    in_output = 0
    notes = skipped if skipped is not None else []

    def usable(p: Path) -> bool:
        nonlocal in_output
        if p.is_symlink() and not p.exists():
            try:
                p.stat()
            except OSError as err:
                kind = "symlink loop" if err.errno == errno.ELOOP else "broken symlink"
                notes.append(f"{p}: skipped, {kind} (-> {os.readlink(p)})")
            return False
        if not (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            return False
        if excluded is not None and p.resolve().is_relative_to(excluded):
            in_output += 1
            return False
        return True

    found: list[tuple[Path, Path]] = []
    problems: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            if excluded is not None and path.resolve().is_relative_to(excluded):
                problems.append(f"{item}: is the output folder (or inside it); not read")
                continue
            matches = sorted(p for p in path.rglob("*") if usable(p))
            if not matches:
                problems.append(f"{item}: folder holds no images")
            found += [(p, p.relative_to(path)) for p in matches]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if usable(Path(p)))
            if not matches and not (path.is_symlink() and usable(path)):
                problems.append(f"{item}: no such file, folder or pattern")
            found += [(p, Path(p.name)) for p in matches]
    if in_output:
        notes.append(f"skipped {in_output} file(s) inside the output folder {exclude} (outputs are never read back)")
    return found, problems


#: Our temporary files: ``.NAME.XXXXXXXX.part`` (:func:`atomic_path`, made by :func:`tempfile.mkstemp`).
_TEMPORARY = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.part")


def is_our_temporary(path: Path) -> bool:
    """Whether ``path``'s name is one of :func:`atomic_path`'s temporary files."""
    return bool(_TEMPORARY.fullmatch(path.name))


def remove_stale_temporaries(folder: str | os.PathLike, older_than: float) -> list[Path]:
    """Delete our own temporary files left in ``folder`` (recursively) by a killed run.

    Only files named like :func:`atomic_path`'s temporaries and last changed before ``older_than``
    (a ``time.time()`` value: the start of this run) are removed, so a run writing there right now
    keeps its files. Returns what was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.rglob(".*.part"):
        try:
            if is_our_temporary(path) and path.is_file() and not path.is_symlink() and path.stat().st_mtime < older_than:
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def check_output_folder(folder: str | os.PathLike) -> None:
    """Make sure results can be written into ``folder``, before any work is done (nothing is created).

    Raises:
        ValueError: it (or a folder above it) is a file, or it cannot be written, naming it.
    """
    folder = Path(folder)
    existing = folder
    while not existing.exists() and not existing.is_symlink() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        what = "is a file" if existing.exists() else "does not exist"
        raise ValueError(f"output {folder} cannot be made: {existing} {what}, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".instcolor-write-check.", suffix=".part", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(f"output folder {existing} cannot be written: {err.strerror or err}") from None


def check_output_file(path: str | os.PathLike) -> None:
    """Make sure a single output file can be written at ``path`` (not a folder; its folder writable)."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"output {path} is a folder, not a file")
    check_output_folder(path.parent)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(width, height)`` after EXIF orientation, from the file's header only (nothing decoded)."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise ValueError(f"cannot read image {os.fspath(path)!r}: {err}") from err
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def frame_count(path: str | os.PathLike) -> int:
    """Frames (animated GIF, WebP, PNG) or pages (TIFF) in an image file; 1 when unreadable."""
    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1) or 1)
    except Exception:
        return 1


def find_images(inputs: list[str]) -> tuple[list[Path], list[str]]:
    """Like :func:`walk_inputs`, but only the sorted unique resolved paths."""
    found, problems = walk_inputs(inputs)
    return list(dict.fromkeys(p.resolve() for p, _ in found)), problems
