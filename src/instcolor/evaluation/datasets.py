"""The paper's benchmark sets, found on disk by name: ``instcolor evaluate --dataset NAME --root DIR``.

The paper evaluates on three sets. None is downloaded by instcolor (each has its own licence and
terms); get them from their publishers and point ``--root`` at the folder described below.
Images are matched by name, so an extra folder level or a flat copy works too.

``imagenet-ctest10k`` (10,000 images)
    The ImageNet (ILSVRC 2012) validation subset of Larsson et al., "Learning Representations for
    Automatic Colorization" (ECCV 2016), used by Zhang et al. (2017) and the paper. ``ROOT`` holds
    the list ``ctest10k.txt`` (also accepted in ``ROOT/lists/``) and the validation images anywhere
    below it (``ROOT/val/``, ``ROOT/ILSVRC2012_img_val/``, per-class folders...). Each list line
    starts with an image path, of which only the file name is used, e.g.
    ``ILSVRC2012_val_00000293.JPEG`` or ``/data/imagenet/val/n01440764/ILSVRC2012_val_00000293.JPEG 0``.

``cocostuff-val`` (5,000 images)
    COCO-Stuff 2017 validation images (the same images as COCO ``val2017``). ``ROOT`` is the
    COCO-Stuff ``dataset/`` folder holding ``images/val2017/*.jpg``, or a COCO root holding
    ``val2017/*.jpg``, or a folder of the images themselves.

``places205-val`` (20,500 images)
    Places205 validation set (Zhou et al., NeurIPS 2014), 100 images for each of 205 scene
    categories. ``ROOT`` holds the split list ``trainvalsplit_places205/val_places205.csv`` (lines
    ``a/abbey/gsun_<id>.jpg <label>``; also accepted as ``ROOT/val_places205.csv``) and the
    images under ``ROOT/images256/`` (as unpacked from ``imagesPlaces205_resize.tar.gz``, also
    found under ``ROOT/data/vision/torralba/deeplearning/images256/``) or anywhere below ``ROOT``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from instcolor.io import IMAGE_SUFFIXES


@dataclass
class DatasetImages:
    """The images of a named set found under a root.

    Attributes:
        name: the layout's name.
        paths: image paths in list order (or sorted).
        problems: one message per listed image that was not found, and layout problems.
        expected: how many images the full set has.
    """

    name: str
    paths: list[Path]
    problems: list[str] = field(default_factory=list)
    expected: int | None = None


@dataclass(frozen=True)
class DatasetLayout:
    """A named benchmark layout.

    Attributes:
        name: the ``--dataset`` name.
        title: a human title with the image count.
        expected: images in the full set.
        find: ``root -> DatasetImages``.
    """

    name: str
    title: str
    expected: int
    find: Callable[[Path], DatasetImages]


def _images_below(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _first_existing(candidates: list[Path]) -> Path | None:
    return next((c for c in candidates if c.exists()), None)


def _read_list(path: Path) -> list[str]:
    """First whitespace- or comma-separated field of each non-empty, non-comment line."""
    names = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.append(line.replace(",", " ").split()[0])
    return names


def _match_listed(name: str, root: Path, listed: list[str], search_roots: list[Path], expected: int) -> DatasetImages:
    """Find each listed image by relative path under a search root, else by its file name anywhere."""
    by_name: dict[str, Path] | None = None
    paths, missing = [], []
    for entry in listed:
        relative = entry.lstrip("/")
        direct = _first_existing([r / relative for r in search_roots])
        if direct is None:
            if by_name is None:
                by_name = {}
                for image in _images_below(root):
                    by_name.setdefault(image.name, image)
            direct = by_name.get(Path(entry).name)
        if direct is None:
            missing.append(entry)
        else:
            paths.append(direct)
    problems = []
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        problems.append(f"{name}: {len(missing)} listed images not found under {root}: {shown}")
    return DatasetImages(name, paths, problems, expected)


def _find_ctest10k(root: Path) -> DatasetImages:
    listing = _first_existing([root / "ctest10k.txt", root / "lists" / "ctest10k.txt"])
    if listing is None:
        return DatasetImages("imagenet-ctest10k", [], [f"imagenet-ctest10k: no ctest10k.txt in {root} or {root / 'lists'}"], 10000)
    search = [root, root / "val", root / "ILSVRC2012_img_val"]
    return _match_listed("imagenet-ctest10k", root, _read_list(listing), search, 10000)


def _find_cocostuff_val(root: Path) -> DatasetImages:
    folder = _first_existing(
        [root / "images" / "val2017", root / "dataset" / "images" / "val2017", root / "val2017"]
    )
    folder = folder or root
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    problems = [] if paths else [f"cocostuff-val: no images in {folder} (expected images/val2017/*.jpg under {root})"]
    return DatasetImages("cocostuff-val", paths, problems, 5000)


def _find_places205_val(root: Path) -> DatasetImages:
    listing = _first_existing(
        [root / "trainvalsplit_places205" / "val_places205.csv", root / "val_places205.csv"]
    )
    if listing is None:
        return DatasetImages(
            "places205-val", [], [f"places205-val: no trainvalsplit_places205/val_places205.csv in {root}"], 20500
        )
    search = [root / "images256", root / "data" / "vision" / "torralba" / "deeplearning" / "images256", root]
    return _match_listed("places205-val", root, _read_list(listing), search, 20500)


DATASETS: dict[str, DatasetLayout] = {
    layout.name: layout
    for layout in (
        DatasetLayout("imagenet-ctest10k", "ImageNet ctest10k (10,000 validation images)", 10000, _find_ctest10k),
        DatasetLayout("cocostuff-val", "COCO-Stuff val2017 (5,000 images)", 5000, _find_cocostuff_val),
        DatasetLayout("places205-val", "Places205 validation (20,500 images)", 20500, _find_places205_val),
    )
}


def find_dataset(name: str, root: str | os.PathLike) -> DatasetImages:
    """The images of the named set under ``root``.

    Raises:
        KeyError: for an unknown name.
        FileNotFoundError: when ``root`` is not a folder.
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {root} is not a folder")
    return DATASETS[name].find(root)
