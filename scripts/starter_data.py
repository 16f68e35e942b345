#!/usr/bin/env python3
"""Build the "starter" colorization dataset from colour photographs that free-software packages ship.

The photographs come from packages reachable through ordinary package registries, so the dataset can be
rebuilt offline-from-the-internet but online-to-the-registries (Debian apt and PyPI):

* ``scikit-image`` (PyPI): the bundled sample photographs whose docstrings state CC0 / public domain.
* ``scikit-learn`` (PyPI wheel, read without installing): ``china.jpg`` and ``flower.jpg`` (CC-BY-2.0).
* Debian ``lomiri-wallpapers-16.04`` / ``-20.04``, ``mate-backgrounds``, ``plasma-workspace-wallpapers``:
  the wallpapers that are photographs (illustrations and renders are left out by a curated list).
* Debian ``plasma-workspace-data``: the photographs among Plasma's user-account pictures, each credited
  (CC0, author, photo page) by its REUSE ``.license`` file.
* Debian ``gcompris-qt-data``: photographs of animals, monuments, objects, musicians and sea life used by
  the GCompris activities; each one is credited (author, licence, Wikimedia source) in a README inside the
  package's Qt resource files, which this script reads directly.

Debian packages are fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x`` into a cache
folder; nothing is installed. Every photograph is converted to sRGB, downscaled so its long side is at
most ``--long-side`` pixels (Pillow LANCZOS, never upscaled), checked for colour with the reference's
rule (the ranges of Lab a and b summed must reach 5, else the image counts as greyscale), de-duplicated
(same original source URL, or a near-identical difference hash), split deterministically into ``train``
and ``val`` (about ``--val-fraction`` of each source package, spread over its sub-collections) and
written as JPEG. The output folder holds:

* ``train/*.jpg``, ``val/*.jpg``
* ``manifest.csv``: file, split, source_package, package_version, original_path, licence, copyright,
  sha256, then source_url, width, height, ab_range.
* ``excluded.csv``: every image looked at and left out, with the reason.
* ``LICENSES.md``: per-source licence summary and the attribution of every image.

Usage::

    python scripts/starter_data.py --out data/starter
    python scripts/starter_data.py --out data/starter --cache-dir ~/.cache/instcolor-starter \
        --exclude-licence 'GPL'

Requires ``apt-get`` and ``dpkg-deb`` for the Debian sources (any user may run ``apt-get download``;
run ``apt-get update`` first on a fresh system) and ``pip`` for the scikit-learn wheel. Sources that
cannot be fetched are reported and skipped; the exit status is then 1.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import importlib.metadata
import io
import json
import math
import posixpath
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from instcolor.color import rgb_to_lab
from instcolor.io import atomic_write_bytes

console = Console(stderr=True)

#: Longest image side written, in pixels.
LONG_SIDE = 512
#: Images whose long side is below this are too small to be useful and are left out.
MIN_LONG_SIDE = 256
#: The reference skips images whose Lab a range plus b range is below this (greyscale originals).
MIN_AB_RANGE = 5.0
#: Share of each source package held out for validation.
VAL_FRACTION = 0.1
#: Images with more than this share of (partly) transparent pixels are cut-outs, not photographs.
MAX_TRANSPARENT_FRACTION = 0.005
#: Two images whose 64-bit difference hashes differ in at most this many bits are duplicates.
DUPLICATE_HASH_BITS = 3
JPEG_QUALITY = 95

#: Licences accepted by default: public domain, CC0, CC-BY(-SA) and the GNU licences.
DEFAULT_ALLOWED_LICENCES = r"public-domain|CC0-1\.0|CC-BY(-SA)?-\d\.\d|L?GPL-\d\.\d(-only|-or-later)?"

MANIFEST_COLUMNS = (
    "file",
    "split",
    "source_package",
    "package_version",
    "original_path",
    "licence",
    "copyright",
    "sha256",
    "source_url",
    "width",
    "height",
    "ab_range",
)
EXCLUDED_COLUMNS = ("source_package", "package_version", "original_path", "reason")
IMAGE_NAME = re.compile(r".*\.(jpe?g|png|webp|tiff?|bmp|gif)$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One photograph found in a package, with its provenance; ``load`` returns the file's bytes."""

    source_package: str
    package_version: str
    original_path: str
    licence: str
    copyright: str
    source_url: str
    stratum: str
    slug: str
    load: Callable[[], bytes] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Exclusion:
    """An image that was looked at and left out, and why."""

    source_package: str
    package_version: str
    original_path: str
    reason: str


@dataclass
class SourceResult:
    """What one source contributed: candidates, exclusions and a paragraph on where licences come from."""

    name: str
    version: str
    candidates: list[Candidate] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)
    licence_origin: str = ""

    def exclude(self, original_path: str, reason: str) -> None:
        self.exclusions.append(Exclusion(self.name, self.version, original_path, reason))


@dataclass
class PreparedImage:
    """A candidate decoded, colour-managed to sRGB and resized; ``image`` is an RGB PIL image."""

    candidate: Candidate
    image: Image.Image
    ab_range: float
    difference_hash: int


# --------------------------------------------------------------------------------------------------
# Licence names and credit files
# --------------------------------------------------------------------------------------------------

_LICENCE_ALIASES = {
    "public domain": "public-domain",
    "public-domain": "public-domain",
    "gplv2+": "GPL-2.0-or-later",
    "gpl-2+": "GPL-2.0-or-later",
    "gplv3": "GPL-3.0-only",
    "gpl-3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later",
    "gpl-3+": "GPL-3.0-or-later",
    "lgplv3": "LGPL-3.0-only",
    "lgpl-3": "LGPL-3.0-only",
    "lgpl-3+": "LGPL-3.0-or-later",
}
_CC_NAME = re.compile(r"cc[- ]?(by-sa|by|0)[- ]?v?(\d\.\d)")
_CC_URL = re.compile(r"creativecommons\.org/(?:licenses/(by-sa|by)|publicdomain/(zero))/(\d\.\d)")


def normalize_licence(text: str) -> str:
    """Map the licence spellings found in credit files to SPDX-like ids; unknown text is returned trimmed.

    >>> normalize_licence("CC-BY-SA 4.0"), normalize_licence("Public Domain"), normalize_licence("GPLv3")
    ('CC-BY-SA-4.0', 'public-domain', 'GPL-3.0-only')
    """
    cleaned = " ".join(text.split())
    key = cleaned.lower()
    if key in _LICENCE_ALIASES:
        return _LICENCE_ALIASES[key]
    match = _CC_NAME.fullmatch(key)
    if match:
        kind, version = match.groups()
        return "CC0-1.0" if kind == "0" else f"CC-{kind.upper()}-{version}"
    return cleaned


def licence_from_url(url: str) -> str | None:
    """``https://creativecommons.org/licenses/by/2.0/`` -> ``CC-BY-2.0``; None for other URLs."""
    match = _CC_URL.search(url)
    if not match:
        return None
    kind, zero, version = match.groups()
    return f"CC0-{version}" if zero else f"CC-{kind.upper()}-{version}"


def strip_emails(text: str) -> str:
    """Drop ``<user@host>`` addresses (with stray accents left after them) and tidy whitespace.

    >>> strip_emails("2008, Lennart <l@example.org>; 2008, Charles Barbin <c@example.org>´")
    '2008, Lennart; 2008, Charles Barbin'
    """
    text = re.sub(r"<[^<>@\s]+@[^<>\s]+>[´`]?", "", text)
    return re.sub(r"\s+([;,])", r"\1", " ".join(text.split())).strip()


def first_url(*texts: str) -> str:
    """The first http(s) URL found in ``texts``, or ``""``."""
    for text in texts:
        match = re.search(r"https?://\S+", text)
        if match:
            return match.group(0).rstrip(".,;)")
    return ""


@dataclass(frozen=True)
class CopyrightStanza:
    """One ``Files:`` paragraph of a Debian machine-readable copyright file."""

    files: tuple[str, ...]
    copyright: str
    licence: str
    comment: str


def parse_dep5(text: str) -> list[CopyrightStanza]:
    """Parse the ``Files`` paragraphs of a DEP-5 copyright file (standalone licence texts are skipped)."""
    stanzas = []
    for paragraph in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, list[str]] = {}
        key = None
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if key is not None:
                    fields[key].append(line.strip())
                continue
            name, sep, value = line.partition(":")
            if not sep:
                continue
            key = name.strip().lower()
            fields[key] = [value.strip()]
        if "files" not in fields:
            continue
        licence_lines = fields.get("license", [""])
        stanzas.append(
            CopyrightStanza(
                files=tuple(" ".join(fields["files"]).split()),
                copyright="; ".join(part for part in fields.get("copyright", []) if part),
                licence=licence_lines[0],
                comment=" ".join(part for part in fields.get("comment", []) if part and part != "."),
            )
        )
    return stanzas


def _glob_matches(pattern: str, installed_path: str) -> bool:
    parts = installed_path.strip("/").split("/")
    for start in range(len(parts)):
        if fnmatch.fnmatchcase("/".join(parts[start:]), pattern):
            return True
    name = posixpath.basename(pattern)
    return "/" in pattern and not re.search(r"[*?\[]", name) and name == parts[-1]


def dep5_lookup(stanzas: Sequence[CopyrightStanza], installed_path: str) -> CopyrightStanza | None:
    """The stanza crediting ``installed_path`` specifically, or None.

    Debian copyright globs name paths in the upstream source, which differ from installed paths, so a
    glob matches when it matches a trailing part of the installed path, or when its file name (without
    wildcards) equals the installed file name. As in DEP-5 the last match wins. The catch-all ``*``
    never counts: it credits the packaging, not an individual photograph.
    """
    found = None
    for stanza in stanzas:
        if any(pattern != "*" and _glob_matches(pattern, installed_path) for pattern in stanza.files):
            found = stanza
    return found


@dataclass(frozen=True)
class Credit:
    """One entry of a GCompris resource README."""

    copyright: str
    licence: str
    source: str
    comment: str


_CREDIT_KEYS = {
    "copyright": "copyright",
    "author": "copyright",
    "license": "licence",
    "licence": "licence",
    "source": "source",
    "comment": "comment",
    "comments": "comment",
    "files": "files",
    "file": "files",
}
_FILE_TOKEN = re.compile(r"[\w.\-/]+\.(?:webp|jpe?g|png|svgz?|ogg|oga|wav|mp3|gif|qml|js)", re.IGNORECASE)


def parse_gcompris_credits(text: str) -> dict[str, Credit]:
    """Parse a GCompris ``resource/README`` into ``{file name: Credit}``.

    Entries are blank-line separated blocks of ``Copyright:``, ``License:``, ``Source:``, ``Comment(s):``
    and ``Files:`` lines; file names may follow ``Files:`` on the same or later lines, or stand alone.
    """
    credits: dict[str, Credit] = {}
    for block in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, list[str]] = defaultdict(list)
        files: list[str] = []
        key = None
        for raw_line in block.splitlines():
            line = raw_line.strip()
            if not line:
                continue
            match = re.match(r"([A-Za-z]+):\s*(.*)$", line)
            if match and match.group(1).lower() in _CREDIT_KEYS:
                key = _CREDIT_KEYS[match.group(1).lower()]
                line = match.group(2).strip()
                if not line:
                    continue
            tokens = line.split()
            if key == "files" or all(_FILE_TOKEN.fullmatch(token) for token in tokens):
                files.extend(tokens)
            elif key is not None:
                fields[key].append(line)
        if not files:
            continue
        credit = Credit(
            copyright=" ".join(fields["copyright"]),
            licence=" ".join(fields["licence"]),
            source=" ".join(fields["source"]),
            comment=" ".join(fields["comment"]),
        )
        for name in files:
            credits.setdefault(posixpath.normpath(name), credit)
    return credits


# --------------------------------------------------------------------------------------------------
# Qt resource (.rcc) files
# --------------------------------------------------------------------------------------------------

_RCC_DIRECTORY = 0x02
_RCC_ZLIB = 0x01
_RCC_ZSTD = 0x04


def read_rcc(blob: bytes) -> dict[str, bytes]:
    """Read every file of a binary Qt resource file (``rcc --binary``) into ``{"/path": bytes}``.

    Layout: a ``qres`` header (version, tree, data and names offsets), a tree of fixed-size nodes
    (directories list a run of children; files point into the data area, each blob prefixed by its
    32-bit size, zlib blobs again by the uncompressed size) and UTF-16BE names. zstd-compressed files
    (Qt 6 option) are not read.
    """
    if blob[:4] != b"qres":
        raise ValueError("not a Qt resource file (missing 'qres' magic)")
    version, tree, data, names = struct.unpack_from(">IIII", blob, 4)
    node_size = 22 if version >= 2 else 14

    def name_at(offset: int) -> str:
        (length,) = struct.unpack_from(">H", blob, names + offset)
        start = names + offset + 6  # length, then a 32-bit hash, then the characters
        return blob[start : start + 2 * length].decode("utf-16-be")

    files: dict[str, bytes] = {}
    pending = [(0, "")]
    while pending:
        index, prefix = pending.pop()
        base = tree + index * node_size
        name_offset, flags = struct.unpack_from(">IH", blob, base)
        path = f"{prefix}/{name_at(name_offset)}" if index else ""
        if flags & _RCC_DIRECTORY:
            count, first = struct.unpack_from(">II", blob, base + 6)
            pending.extend((child, path) for child in range(first, first + count))
            continue
        (data_offset,) = struct.unpack_from(">I", blob, base + 10)
        (size,) = struct.unpack_from(">I", blob, data + data_offset)
        payload = blob[data + data_offset + 4 : data + data_offset + 4 + size]
        if flags & _RCC_ZSTD:
            continue
        files[path] = zlib.decompress(payload[4:]) if flags & _RCC_ZLIB else payload
    return files


# --------------------------------------------------------------------------------------------------
# Fetching packages
# --------------------------------------------------------------------------------------------------


class FetchError(RuntimeError):
    """A package could not be downloaded or unpacked."""


@dataclass(frozen=True)
class DebPackage:
    """An unpacked Debian binary package: ``root`` holds its file tree."""

    name: str
    version: str
    root: Path

    def copyright_text(self) -> str:
        path = self.root / "usr/share/doc" / self.name / "copyright"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""


@dataclass(frozen=True)
class PythonDistribution:
    """A PyPI distribution's files, read from the installed copy or from a downloaded wheel."""

    name: str
    version: str
    origin: str
    read: Callable[[str], bytes] = field(repr=False)
    files: tuple[str, ...] = field(repr=False)


def _run(command: Sequence[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise FetchError(f"{command[0]} is not available: {err}") from err
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise FetchError(f"{' '.join(command)} failed: {message[-1] if message else result.returncode}")
    return result


class Fetcher:
    """Downloads and unpacks packages into ``cache_dir`` and reuses what is already there."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def deb(self, package: str) -> DebPackage:
        """``apt-get download`` (unless cached) and ``dpkg-deb -x`` one binary package."""
        debs = self.cache_dir / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            _run(["apt-get", "download", package], cwd=debs)
            found = sorted(debs.glob(f"{package}_*.deb"))
            if not found:
                raise FetchError(f"apt-get download {package} produced no .deb file")
        deb = found[-1]
        version = _run(["dpkg-deb", "--field", str(deb), "Version"], cwd=debs).stdout.strip()
        root = self.cache_dir / "unpacked" / deb.stem
        if not (root / ".complete").is_file():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            _run(["dpkg-deb", "-x", str(deb), str(root)], cwd=debs)
            (root / ".complete").touch()
        return DebPackage(package, version, root)

    def python_distribution(self, name: str) -> PythonDistribution:
        """The installed distribution when there is one, else a wheel fetched with ``pip download``."""
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            return self._wheel(name)
        files = tuple(str(path) for path in dist.files or ())
        return PythonDistribution(
            name=name,
            version=dist.version,
            origin="installed",
            read=lambda path: Path(dist.locate_file(path)).read_bytes(),
            files=files,
        )

    def _wheel(self, name: str) -> PythonDistribution:
        wheels = self.cache_dir / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        pattern = f"{name.replace('-', '_')}-*.whl"
        found = sorted(wheels.glob(pattern))
        if not found:
            command = [sys.executable, "-m", "pip", "download", name, "--no-deps", "--only-binary=:all:"]
            _run([*command, "-d", str(wheels), "-q"], cwd=wheels)
            found = sorted(wheels.glob(pattern))
            if not found:
                raise FetchError(f"pip download {name} produced no wheel")
        wheel = found[-1]
        version = wheel.name.split("-")[1]
        with zipfile.ZipFile(wheel) as archive:
            files = tuple(archive.namelist())

        def read(path: str) -> bytes:
            with zipfile.ZipFile(wheel) as archive:
                return archive.read(path)

        return PythonDistribution(name=name, version=version, origin=f"wheel {wheel.name}", read=read, files=files)


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def _slug(*parts: str) -> str:
    text = "__".join(parts)
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


@dataclass(frozen=True)
class SkimagePhoto:
    """A curated scikit-image sample: the loader function whose docstring must state the licence."""

    function: str
    licence: str
    copyright: str
    source_url: str
    evidence: str


SKIMAGE_PHOTOS = {
    "astronaut.png": SkimagePhoto(
        "astronaut",
        "public-domain",
        "NASA (portrait of astronaut Eileen Collins)",
        "https://flic.kr/p/r9qvLn",
        "public domain",
    ),
    "coffee.png": SkimagePhoto(
        "coffee", "CC0-1.0", "Rachel Michetti, courtesy of Pikolo Espresso Bar", "", "CC0 by the photographer"
    ),
    "chelsea.png": SkimagePhoto("chelsea", "CC0-1.0", "Stefan van der Walt", "", "CC0 by the photographer"),
    "rocket.jpg": SkimagePhoto(
        "rocket",
        "public-domain",
        "SpaceX",
        "https://www.flickr.com/photos/spacexphotos/16511594820/",
        "released in the public domain",
    ),
}
SKIMAGE_NOT_PHOTOS = {
    "hubble_deep_field.jpg": "astronomical composite of filtered exposures, not a natural-colour scene",
    "retina.jpg": "medical fundus image, outside the target domain",
    "ihc.png": "microscopy stain (immunohistochemistry), not a scene photograph",
    "motorcycle_left.png": "no licence stated for the Middlebury 2014 stereo images",
    "motorcycle_right.png": "no licence stated for the Middlebury 2014 stereo images",
}


def _function_source(module_text: str, function: str) -> str:
    match = re.search(rf"^def {re.escape(function)}\(.*?(?=^def |\Z)", module_text, re.MULTILINE | re.DOTALL)
    return match.group(0) if match else ""


def skimage_source(fetcher: Fetcher) -> SourceResult:
    """scikit-image's bundled sample photographs with a CC0 / public-domain statement in their docstring."""
    dist = fetcher.python_distribution("scikit-image")
    result = SourceResult(
        "pypi:scikit-image",
        dist.version,
        licence_origin=(
            "Licence and author as stated in each loader's docstring in `skimage/data/_fetchers.py` "
            "(checked at build time; an image is skipped when the statement is missing)."
        ),
    )
    fetchers_path = "skimage/data/_fetchers.py"
    module_text = dist.read(fetchers_path).decode("utf-8") if fetchers_path in dist.files else ""
    for path in sorted(p for p in dist.files if p.startswith("skimage/data/") and IMAGE_NAME.match(p)):
        name = posixpath.basename(path)
        photo = SKIMAGE_PHOTOS.get(name)
        if photo is None:
            result.exclude(path, SKIMAGE_NOT_PHOTOS.get(name, "not a colour photograph (curated list)"))
            continue
        if photo.evidence.lower() not in _function_source(module_text, photo.function).lower():
            result.exclude(path, f"licence statement {photo.evidence!r} not found in skimage.data.{photo.function}")
            continue
        result.candidates.append(
            Candidate(
                source_package=result.name,
                package_version=dist.version,
                original_path=path,
                licence=photo.licence,
                copyright=photo.copyright,
                source_url=photo.source_url,
                stratum="skimage.data",
                slug=_slug("skimage", posixpath.splitext(name)[0]),
                load=lambda path=path: dist.read(path),
            )
        )
    return result


def parse_sklearn_readme(text: str) -> dict[str, tuple[str, str, str]]:
    """``sklearn/datasets/images/README.txt`` -> ``{image: (licence URL, author URL, source URL)}``.

    Each image block lists numbered references: ``[1]`` the licence, ``[2]`` the author's page and
    ``[3]`` the retrieved photo.
    """
    entries = {}
    for block in re.split(r"(?=^Image:)", text, flags=re.MULTILINE):
        match = re.match(r"Image:\s*(\S+)", block)
        if not match:
            continue
        refs = dict(re.findall(r"^\[(\d)\]\s*(\S+)", block, flags=re.MULTILINE))
        entries[match.group(1)] = (refs.get("1", ""), refs.get("2", ""), refs.get("3", ""))
    return entries


def sklearn_source(fetcher: Fetcher) -> SourceResult:
    """scikit-learn's two sample photographs, credited by ``sklearn/datasets/images/README.txt``."""
    dist = fetcher.python_distribution("scikit-learn")
    result = SourceResult(
        "pypi:scikit-learn",
        dist.version,
        licence_origin=(
            "`sklearn/datasets/images/README.txt` in the scikit-learn wheel: licence from reference [1], "
            "author from the Flickr account in reference [2], photo page from reference [3]. (The README's "
            "'Attribution' line names danielbuechele for both images; its reference [2] for flower.jpg is "
            "the account vultilion, which is the photo's actual page, so the author is taken from [2].)"
        ),
    )
    readme_path = "sklearn/datasets/images/README.txt"
    if readme_path not in dist.files:
        result.exclude(readme_path, "README.txt with the image licences is missing")
        return result
    entries = parse_sklearn_readme(dist.read(readme_path).decode("utf-8"))
    for path in sorted(p for p in dist.files if p.startswith("sklearn/datasets/images/") and IMAGE_NAME.match(p)):
        name = posixpath.basename(path)
        licence_url, author_url, source_url = entries.get(name, ("", "", ""))
        licence = licence_from_url(licence_url)
        if licence is None:
            result.exclude(path, "no recognisable licence in README.txt")
            continue
        author = author_url.rstrip("/").rsplit("/", 1)[-1]
        result.candidates.append(
            Candidate(
                source_package=result.name,
                package_version=dist.version,
                original_path=path,
                licence=licence,
                copyright=f"{author} (Flickr, {author_url})" if author else "",
                source_url=source_url,
                stratum="sklearn.datasets",
                slug=_slug("sklearn", posixpath.splitext(name)[0]),
                load=lambda path=path: dist.read(path),
            )
        )
    return result


@dataclass(frozen=True)
class WallpaperPackage:
    """A Debian wallpaper package: which of its images are photographs, and why the others are not.

    Globs are relative to the unpacked package root; images matching neither ``photos`` nor
    ``not_photos`` are left out as "not in the curated photo list".
    """

    package: str
    scan: str
    photos: tuple[str, ...]
    not_photos: dict[str, str]


WALLPAPER_PACKAGES = (
    WallpaperPackage(
        "lomiri-wallpapers-16.04",
        "usr/share/backgrounds/*",
        tuple(
            f"usr/share/backgrounds/{name}.jpg"
            for name in (
                "aitzgorri_by_Aitzol_Berasategi",
                "Bridge_by_Sander_Klootwijk",
                "Dragonfly_by_Bolly",
                "free_by_Peter_Nerlich",
                "friends_by_Aitzol_Berasategi",
                "greentock_by_Peter_Nerlich",
                "life_by_Aitzol_Berasategi",
                "picosdeeuropa_by_Aitzol_Berasategi",
                "Picture_0B_by_freespace",
                "Picture_1A_by_freespace",
                "seeding_by_Clements_Engelhardt",
                "sunset_by_Aitzol_Berasategi",
                "Wine_by_Jakkub_Mede",
            )
        ),
        {
            "*/analogpattern_by_Peter_Nerlich.jpg": "abstract texture, not a scene",
            "*/umang_by_Abhishek_Mudgal.jpg": "illustration (colour gradient)",
        },
    ),
    WallpaperPackage(
        "lomiri-wallpapers-20.04",
        "usr/share/backgrounds/*",
        ("usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",),
        {
            "*/Fossa_by_Jasper_Roks.jpg": "illustration",
            "*/Infinite-Sea_by_Aury88.jpg": "digital artwork",
            "*/Painting-Colors_by__herobrine7gamer.jpg": "illustration",
        },
    ),
    WallpaperPackage(
        "mate-backgrounds",
        "usr/share/backgrounds/mate/*/*",
        ("usr/share/backgrounds/mate/nature/*.jpg",),
        {
            "*/mate/abstract/*": "illustration",
            "*/mate/desktop/*": "illustration, logo or blurred abstract",
        },
    ),
)

#: plasma-workspace-wallpapers: wallpaper folders that hold photographs (the rest are illustrations).
PLASMA_PHOTOS = (
    "BytheWater",
    "ColdRipple",
    "ColorfulCups",
    "DarkestHour",
    "EveningGlow",
    "FallenLeaf",
    "Grey",
    "Kite",
    "OneStandsOut",
    "Path",
    "summer_1am",
)
PLASMA_NOT_PHOTOS = {
    "Autumn": "painterly illustration",
    "Volna": "render / illustration of a beach",
}


def packaged_photo(
    result: SourceResult, deb, path: Path, licence: str, copyright: str, source_url: str, slug: str
) -> Candidate:  # fmt: skip
    """A photograph stored as a plain file in an unpacked Debian package (``deb``: its name, version, root)."""
    return Candidate(
        source_package=result.name,
        package_version=deb.version,
        original_path=path.relative_to(deb.root).as_posix(),
        licence=normalize_licence(licence),
        copyright=copyright,
        source_url=source_url,
        stratum=deb.name,
        slug=slug,
        load=path.read_bytes,
    )


def wallpaper_source(fetcher: Fetcher, spec: WallpaperPackage) -> SourceResult:
    """Curated photographs of a Debian wallpaper package, credited by its DEP-5 copyright file."""
    deb = fetcher.deb(spec.package)
    result = SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            f"Per-file `Files:` paragraphs of `/usr/share/doc/{deb.name}/copyright` (DEP-5); images "
            "credited only by the catch-all `Files: *` paragraph are left out."
        ),
    )
    stanzas = parse_dep5(deb.copyright_text())
    for path in sorted(deb.root.glob(spec.scan)):
        relative = path.relative_to(deb.root).as_posix()
        if not path.is_file() or not IMAGE_NAME.match(relative):
            continue
        if not any(fnmatch.fnmatchcase(relative, pattern) for pattern in spec.photos):
            reason = next(
                (why for pattern, why in spec.not_photos.items() if fnmatch.fnmatchcase(relative, pattern)),
                "not in the curated photo list",
            )
            result.exclude(relative, reason)
            continue
        stanza = dep5_lookup(stanzas, relative)
        if stanza is None:
            result.exclude(relative, "no per-file entry in the copyright file")
            continue
        result.candidates.append(
            packaged_photo(
                result, deb, path, stanza.licence, strip_emails(stanza.copyright), first_url(stanza.comment),
                _slug(deb.name, path.stem),
            )
        )  # fmt: skip
    return result


def _plasma_metadata(folder: Path) -> tuple[str, str]:
    """(licence, authors) from a Plasma wallpaper's ``metadata.json`` or ``metadata.desktop``."""
    json_path = folder / "metadata.json"
    if json_path.is_file():
        plugin = json.loads(json_path.read_text(encoding="utf-8")).get("KPlugin", {})
        authors = ", ".join(author.get("Name", "") for author in plugin.get("Authors", []))
        return plugin.get("License", ""), authors
    desktop_path = folder / "metadata.desktop"
    if desktop_path.is_file():
        entries = dict(
            line.split("=", 1) for line in desktop_path.read_text(encoding="utf-8").splitlines() if "=" in line
        )
        return entries.get("X-KDE-PluginInfo-License", ""), entries.get("X-KDE-PluginInfo-Author", "")
    return "", ""


def _pixel_count(path: Path) -> int:
    match = re.fullmatch(r"(\d+)x(\d+)", path.stem)
    return int(match.group(1)) * int(match.group(2)) if match else 0


def plasma_source(fetcher: Fetcher) -> SourceResult:
    """The photographic wallpapers of ``plasma-workspace-wallpapers`` (largest size of each)."""
    deb = fetcher.deb("plasma-workspace-wallpapers")
    result = SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            "Licence and author from each wallpaper's `metadata.json` (KPlugin License / Authors). "
            f"Debian's `/usr/share/doc/{deb.name}/copyright` licenses the whole package as GPL-2+."
        ),
    )
    wallpapers = deb.root / "usr/share/wallpapers"
    for folder in sorted(path for path in wallpapers.iterdir() if path.is_dir()):
        images = sorted(
            (path for path in (folder / "contents/images").glob("*") if IMAGE_NAME.match(path.name)),
            key=_pixel_count,
        )
        if not images:
            continue
        largest = images[-1]
        relative = largest.relative_to(deb.root).as_posix()
        if folder.name not in PLASMA_PHOTOS:
            result.exclude(relative, PLASMA_NOT_PHOTOS.get(folder.name, "illustration or render (curated list)"))
            continue
        licence, authors = _plasma_metadata(folder)
        if not licence:
            result.exclude(relative, "no licence in the wallpaper's metadata")
            continue
        result.candidates.append(
            packaged_photo(result, deb, largest, licence, strip_emails(authors), "", _slug(deb.name, folder.name))
        )
    return result


def parse_reuse_sidecar(text: str) -> tuple[str, str, str]:
    """``(licence, copyright, source URL)`` from a REUSE ``<file>.license`` sidecar (SPDX tags); several
    copyright lines are joined with ``; ``, and the source is the first URL on a line without a tag.

    >>> parse_reuse_sidecar("# SPDX-FileCopyrightText: 2016 Ann <a@b.c>\\n# SPDX-FileCopyrightText: 2017 Bo\\n"
    ...                     "# SPDX-License-Identifier: CC0-1.0\\n#\\n# https://example.org/photo-1/\\n")
    ('CC0-1.0', '2016 Ann; 2017 Bo', 'https://example.org/photo-1/')
    """
    licences, holders, untagged = [], [], []
    for line in text.splitlines():
        tag = re.search(r"SPDX-(License-Identifier|FileCopyrightText):[ \t]*(.*)", line)
        if tag is None:
            untagged.append(line)
        elif tag.group(2).strip():
            (licences if tag.group(1) == "License-Identifier" else holders).append(tag.group(2).strip())
    return " AND ".join(licences), strip_emails("; ".join(holders)), first_url(*untagged)


def plasma_avatars_source(fetcher: Fetcher) -> SourceResult:
    """The photographs among Plasma's user-account pictures, each credited by its REUSE sidecar."""
    deb = fetcher.deb("plasma-workspace-data")
    result = SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            "Each photo's REUSE sidecar `usr/share/plasma/avatars/photos/<name>.png.license` "
            "(SPDX-License-Identifier, SPDX-FileCopyrightText and the photo's page); Debian's copyright file "
            "lists the same files under CC0-1.0. Photos without a sidecar are left out."
        ),
    )
    for path in sorted((deb.root / "usr/share/plasma/avatars/photos").glob("*")):
        relative = path.relative_to(deb.root).as_posix()
        if not path.is_file() or not IMAGE_NAME.match(path.name):
            continue
        sidecar = path.with_name(path.name + ".license")
        if not sidecar.is_file():
            result.exclude(relative, "no REUSE licence file beside it")
            continue
        licence, copyright, url = parse_reuse_sidecar(sidecar.read_text(encoding="utf-8", errors="replace"))
        result.candidates.append(packaged_photo(result, deb, path, licence, copyright, url, _slug("plasma-avatars", path.stem)))
    return result


#: GCompris resources that are photographs, relative to ``/gcompris/src/activities/``.
GCOMPRIS_PHOTOS = (
    "erase/resource/*.webp",
    "explore_world_animals/resource/animals/*.webp",
    "explore_farm_animals/resource/animals/*.webp",
    "explore_monuments/resource/*/*.webp",
    "categorization/resource/images/fishes/*",
    "categorization/resource/images/monuments/*",
    "categorization/resource/images/renewable/*",
    "categorization/resource/images/tools/*",
    "categorization/resource/images/others/*",
    "categorization/resource/images/alphabets/*",
    "categorization/resource/images/numbers/*",
    "explore_world_music/resource/music/*.webp",
    "clickgame/resource/sea*.webp",
    "details/resource/image/*_background.webp",
)
GCOMPRIS_ROOT = "/gcompris/src/activities/"
#: Resource folder names that say nothing about the image (left out of output file names).
GCOMPRIS_PLAIN_FOLDERS = {"resource", "animals", "image", "music"}


def _find_credit(path: str, credits_by_dir: dict[str, dict[str, Credit]]) -> Credit | None:
    directory = posixpath.dirname(path)
    while directory not in ("", "/"):
        credits = credits_by_dir.get(directory)
        if credits:
            relative = posixpath.relpath(path, directory)
            credit = credits.get(relative) or credits.get(posixpath.basename(path))
            if credit is not None:
                return credit
        directory = posixpath.dirname(directory)
    return None


def gcompris_source(fetcher: Fetcher) -> SourceResult:
    """Photographs in GCompris activities, credited by the README files inside the ``.rcc`` resources."""
    deb = fetcher.deb("gcompris-qt-data")
    result = SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            "Each activity's `resource/README` inside `/usr/share/gcompris-qt/rcc/*.rcc` (Qt resource "
            "files) gives copyright, licence and Wikimedia source per image; images without such an entry "
            "and images whose credit says they are paintings are left out. Original photographers and "
            "licences of the `details` backgrounds are named in their Comment."
        ),
    )
    resources: dict[str, bytes] = {}
    container: dict[str, str] = {}
    for rcc in sorted((deb.root / "usr/share/gcompris-qt/rcc").glob("*.rcc")):
        files = read_rcc(rcc.read_bytes())
        resources.update(files)
        container.update(dict.fromkeys(files, rcc.relative_to(deb.root).as_posix()))
    credits_by_dir = {
        posixpath.dirname(path): parse_gcompris_credits(data.decode("utf-8", errors="replace"))
        for path, data in resources.items()
        if posixpath.basename(path) == "README"
    }
    for path in sorted(resources):
        if not path.startswith(GCOMPRIS_ROOT) or not IMAGE_NAME.match(path):
            continue
        relative = path[len(GCOMPRIS_ROOT) :]
        if not any(fnmatch.fnmatchcase(relative, pattern) for pattern in GCOMPRIS_PHOTOS):
            continue
        credit = _find_credit(path, credits_by_dir)
        if credit is None:
            result.exclude(path, "no per-file credit in the activity README")
            continue
        if "painting" in f"{credit.comment} {credit.copyright}".lower():
            result.exclude(path, "painting, not a photograph")
            continue
        copyright = strip_emails(credit.copyright)
        if credit.comment:
            copyright = f"{copyright} ({credit.comment})" if copyright else credit.comment
        activity = relative.split("/", 1)[0]
        folder = posixpath.basename(posixpath.dirname(relative))
        stem = posixpath.splitext(posixpath.basename(relative))[0].removesuffix("_background")
        name_parts = (activity, stem) if folder in GCOMPRIS_PLAIN_FOLDERS else (activity, folder, stem)
        result.candidates.append(
            Candidate(
                source_package=result.name,
                package_version=deb.version,
                original_path=f"{container[path]}:{path}",
                licence=normalize_licence(credit.licence),
                copyright=copyright,
                source_url=first_url(credit.source, credit.comment),
                stratum=posixpath.dirname(relative),
                slug=_slug("gcompris", *name_parts),
                load=lambda path=path: resources[path],
            )
        )
    return result


SOURCES: dict[str, Callable[[Fetcher], SourceResult]] = {
    "scikit-image": skimage_source,
    "scikit-learn": sklearn_source,
    **{spec.package: (lambda fetcher, spec=spec: wallpaper_source(fetcher, spec)) for spec in WALLPAPER_PACKAGES},
    "plasma-workspace-wallpapers": plasma_source,
    "plasma-workspace-data": plasma_avatars_source,
    "gcompris-qt-data": gcompris_source,
}

#: Looked at and not used; written into LICENSES.md so the choice is on record.
REJECTED_SOURCES = {
    "deb:lomiri-wallpapers": "only `warty-final-ubuntu.png`, an illustration",
    "deb:ukui-wallpapers": "all twelve wallpapers are illustrations or renders",
    "deb:gnome-backgrounds": "illustrations/renders; the copyright file has no per-image licence",
    "deb:desktop-base, deb:sway-backgrounds, deb:debian-edu-artwork-*": "theme artwork and logos",
    "deb:wordpress-theme-twentytwentyone / -twentytwentytwo": "public-domain paintings and bird illustrations",
    "deb:tuxpaint-stamps-default": "transparent cut-out stamps mixed with drawings, not scene photographs",
    "deb:stellarium-data": "360-degree landscape panoramas (projection unlike ordinary photographs)",
    "pypi:matplotlib (grace_hopper.jpg)": "the package states no licence for its sample photograph",
    "gcompris lang/words_sample, babyshapes, paintings, solar_system": "illustrations, paintings or space imagery",
    "gcompris leftright, louis-braille": "hand cut-outs with garbage in transparent areas / vague provenance",
}


# --------------------------------------------------------------------------------------------------
# Image preparation
# --------------------------------------------------------------------------------------------------

_SRGB = ImageCms.createProfile("sRGB")


class Rejected(ValueError):
    """The image is not usable as a colour training photograph; the message says why."""


def reference_ab_range(image: Image.Image) -> float:
    """The reference's greyscale test statistic: range of Lab a plus range of Lab b over the image."""
    rgb = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
    ab = rgb_to_lab(rgb)[0, 1:].flatten(1)
    return float((ab.amax(dim=1) - ab.amin(dim=1)).sum())


def difference_hash(image: Image.Image) -> int:
    """64-bit difference hash of the image's luminance (robust to resizing and re-encoding)."""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    return int("".join("1" if bit else "0" for bit in bits), 2)


def to_srgb(image: Image.Image) -> Image.Image:
    """Apply EXIF orientation, reject greyscale and cut-outs, and convert to sRGB ``RGB``."""
    image = ImageOps.exif_transpose(image)
    icc = image.info.get("icc_profile")
    if image.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        raise Rejected("single-channel greyscale image")
    if image.mode in ("RGBA", "LA", "PA", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        transparent = float((np.asarray(rgba.getchannel("A")) < 250).mean())
        if transparent > MAX_TRANSPARENT_FRACTION:
            raise Rejected(f"transparent cut-out ({transparent:.1%} of pixels transparent)")
        image = rgba.convert("RGB")
    if icc:
        try:
            source_profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            if image.mode not in ("RGB", "CMYK"):
                image = image.convert("RGB")
            return ImageCms.profileToProfile(image, source_profile, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            pass
    return image.convert("RGB")


def prepare_image(
    candidate: Candidate, long_side: int = LONG_SIDE, min_ab_range: float = MIN_AB_RANGE
) -> PreparedImage:
    """Decode, convert to sRGB and downscale (never upscale) so the long side is at most ``long_side``.

    Raises:
        Rejected: unreadable, too small, greyscale (reference ab-range rule) or a transparent cut-out.
    """
    try:
        with Image.open(io.BytesIO(candidate.load())) as opened:
            opened.load()
            image = to_srgb(opened)
    except (OSError, SyntaxError, Image.DecompressionBombError) as err:
        raise Rejected(f"unreadable image: {err}") from err
    width, height = image.size
    if max(width, height) < MIN_LONG_SIDE:
        raise Rejected(f"too small ({width}x{height})")
    if max(width, height) > long_side:
        scale = long_side / max(width, height)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    ab_range = reference_ab_range(image)
    if ab_range < min_ab_range:
        raise Rejected(f"greyscale (Lab ab range {ab_range:.2f} < {min_ab_range:g})")
    return PreparedImage(candidate, image, ab_range, difference_hash(image))


def encode_jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    """Baseline-compatible JPEG with full-resolution chroma (4:4:4), no metadata."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, subsampling=0, optimize=True)
    return buffer.getvalue()


# --------------------------------------------------------------------------------------------------
# De-duplication and splitting
# --------------------------------------------------------------------------------------------------


def _normalized_url(url: str) -> str:
    return unquote(url).strip().lower().rstrip("/").replace("http://", "https://")


def deduplicate(prepared: Iterable[PreparedImage]) -> tuple[list[PreparedImage], list[tuple[PreparedImage, str]]]:
    """Keep the first of images sharing an original source URL or a near-identical difference hash."""
    kept: list[PreparedImage] = []
    dropped: list[tuple[PreparedImage, str]] = []
    seen_urls: dict[str, PreparedImage] = {}
    for item in prepared:
        url = _normalized_url(item.candidate.source_url)
        twin = seen_urls.get(url) if url else None
        if twin is None:
            twin = next(
                (
                    other
                    for other in kept
                    if bin(other.difference_hash ^ item.difference_hash).count("1") <= DUPLICATE_HASH_BITS
                ),
                None,
            )
        if twin is not None:
            dropped.append((item, f"duplicate of {twin.candidate.source_package}:{twin.candidate.original_path}"))
            continue
        kept.append(item)
        if url:
            seen_urls[url] = item
    return kept, dropped


def _stable_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def assign_splits(
    items: Sequence[tuple[str, str, str]], val_fraction: float = VAL_FRACTION
) -> dict[str, str]:
    """Deterministic train/val split of ``(item id, source, stratum)`` triples -> ``{item id: split}``.

    Each source holds out ``floor(n * val_fraction + 0.5)`` items. Inside a source, items are ordered by
    a hash of their id within each stratum and chosen at evenly spread positions across strata
    (systematic sampling), so validation covers the sub-collections in proportion. The result depends
    only on the ids, not on their order.
    """
    by_source: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for item_id, source, stratum in items:
        by_source[source].append((item_id, stratum))
    splits = {}
    for members in by_source.values():
        by_stratum: dict[str, list[str]] = defaultdict(list)
        for item_id, stratum in members:
            by_stratum[stratum].append(item_id)
        positions = []
        for ids in by_stratum.values():
            ordered = sorted(ids, key=_stable_hash)
            positions.extend(
                ((rank + 0.5) / len(ordered), _stable_hash(item_id), item_id) for rank, item_id in enumerate(ordered)
            )
        held_out = math.floor(len(members) * val_fraction + 0.5)
        chosen = {item_id for _, _, item_id in sorted(positions)[:held_out]}
        splits.update({item_id: "val" if item_id in chosen else "train" for item_id, _ in members})
    return splits


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8"))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def licenses_markdown(results: Sequence[SourceResult], rows: Sequence[dict]) -> str:
    """The ``LICENSES.md`` text: summary, where licences come from, attribution of every image."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        by_source[row["source_package"]].append(row)
    lines = [
        "# Starter dataset: sources and licences",
        "",
        "Built by `scripts/starter_data.py`. Every image is a colour photograph shipped by the package named "
        "below, converted to sRGB and downscaled (long side at most 512 px). `manifest.csv` has one row per "
        "image (licence, copyright/author, source URL, sha256); `excluded.csv` lists what was left out and why.",
        "",
        "Copyleft note: CC-BY-SA, GPL and LGPL images may be used and redistributed; whether trained weights "
        "are adapted material of their training images is legally unsettled. To build a set without them, "
        "rerun with `--exclude-licence 'SA|GPL'`.",
        "",
        "## Summary",
        "",
        "| source package | version | train | val | licences |",
        "| --- | --- | ---: | ---: | --- |",
    ]
    for result in results:
        members = by_source.get(result.name, [])
        splits = Counter(row["split"] for row in members)
        licences = Counter(row["licence"] for row in members)
        licence_text = ", ".join(f"{name} ({count})" for name, count in sorted(licences.items()))
        lines.append(f"| {result.name} | {result.version} | {splits['train']} | {splits['val']} | {licence_text} |")
    total = Counter(row["split"] for row in rows)
    lines += [f"| **total** | | {total['train']} | {total['val']} | |", ""]
    lines += ["## Sources looked at and not used", ""]
    lines += [f"- {name}: {why}" for name, why in REJECTED_SOURCES.items()]
    for result in results:
        members = sorted(by_source.get(result.name, []), key=lambda row: row["file"])
        lines += ["", f"## {result.name} {result.version}", "", result.licence_origin, ""]
        if not members:
            lines += ["No images used.", ""]
            continue
        lines += ["| file | licence | copyright / author | source |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {row['file']} | {row['licence']} | {_md_cell(row['copyright'])} | {_md_cell(row['source_url'])} |"
            for row in members
        ]
    return "\n".join(lines) + "\n"


def is_replaceable_output(out: Path) -> bool:
    """True when ``out`` is absent, an empty folder, or a dataset this script wrote (has manifest.csv)."""
    if not out.exists():
        return True
    return out.is_dir() and (not any(out.iterdir()) or (out / "manifest.csv").is_file())


def build(
    out: Path,
    fetcher: Fetcher,
    source_names: Sequence[str],
    long_side: int,
    val_fraction: float,
    allowed_licences: re.Pattern,
    excluded_licences: Sequence[re.Pattern],
) -> tuple[list[dict], list[str]]:
    """Collect, prepare, split and write the dataset into ``out``; returns the manifest rows and failures."""
    results: list[SourceResult] = []
    failures: list[str] = []
    for name in source_names:
        console.print(f"[bold]{name}[/]: collecting")
        try:
            results.append(SOURCES[name](fetcher))
        except (FetchError, OSError, ValueError) as err:
            failures.append(f"{name}: {err}")
            console.print(f"[red]{name}: skipped: {err}[/]")

    exclusions: list[Exclusion] = [exclusion for result in results for exclusion in result.exclusions]
    prepared: list[PreparedImage] = []
    candidates = [candidate for result in results for candidate in result.candidates]
    progress_columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*progress_columns, console=console) as progress:
        task = progress.add_task("preparing images", total=len(candidates))
        for candidate in candidates:
            progress.advance(task)
            reason = None
            if not allowed_licences.fullmatch(candidate.licence):
                reason = f"licence {candidate.licence!r} not in the allowed set"
            elif any(pattern.search(candidate.licence) for pattern in excluded_licences):
                reason = f"licence {candidate.licence!r} excluded by --exclude-licence"
            if reason is None:
                try:
                    prepared.append(prepare_image(candidate, long_side=long_side))
                    continue
                except Rejected as err:
                    reason = str(err)
            exclusions.append(
                Exclusion(candidate.source_package, candidate.package_version, candidate.original_path, reason)
            )

    kept, duplicates = deduplicate(prepared)
    exclusions += [
        Exclusion(item.candidate.source_package, item.candidate.package_version, item.candidate.original_path, why)
        for item, why in duplicates
    ]
    slugs = Counter(item.candidate.slug for item in kept)
    if any(count > 1 for count in slugs.values()):
        raise RuntimeError(f"output names collide: {[slug for slug, count in slugs.items() if count > 1]}")
    splits = assign_splits(
        [(item.candidate.slug, item.candidate.source_package, item.candidate.stratum) for item in kept],
        val_fraction=val_fraction,
    )

    rows = []
    for item in kept:
        candidate = item.candidate
        split = splits[candidate.slug]
        relative = f"{split}/{candidate.slug}.jpg"
        data = encode_jpeg(item.image)
        atomic_write_bytes(out / relative, data)
        rows.append(
            {
                "file": relative,
                "split": split,
                "source_package": candidate.source_package,
                "package_version": candidate.package_version,
                "original_path": candidate.original_path,
                "licence": candidate.licence,
                "copyright": candidate.copyright,
                "sha256": hashlib.sha256(data).hexdigest(),
                "source_url": candidate.source_url,
                "width": item.image.width,
                "height": item.image.height,
                "ab_range": f"{item.ab_range:.1f}",
            }
        )
    rows.sort(key=lambda row: (row["split"] != "train", row["file"]))
    _write_csv(out / "manifest.csv", MANIFEST_COLUMNS, rows)
    exclusion_rows = sorted(
        (vars(exclusion) for exclusion in exclusions), key=lambda row: (row["source_package"], row["original_path"])
    )
    _write_csv(out / "excluded.csv", EXCLUDED_COLUMNS, exclusion_rows)
    atomic_write_bytes(out / "LICENSES.md", licenses_markdown(results, rows).encode("utf-8"))
    return rows, failures


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build the starter colorization dataset from photographs bundled in packages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced when it exists)")
    parser.add_argument(
        "--cache-dir", type=Path, default=None, help="keep downloaded packages here (default: a temporary folder)"
    )
    parser.add_argument(
        "--sources", default=",".join(SOURCES), help=f"comma-separated subset of: {', '.join(SOURCES)}"
    )
    parser.add_argument("--long-side", type=int, default=LONG_SIDE, help="longest side of written images")
    parser.add_argument("--val-fraction", type=float, default=VAL_FRACTION, help="share held out per source")
    parser.add_argument(
        "--allowed-licences", default=DEFAULT_ALLOWED_LICENCES, help="regular expression of accepted licence ids"
    )
    parser.add_argument(
        "--exclude-licence",
        action="append",
        default=[],
        metavar="REGEX",
        help="leave out images whose licence id matches (repeatable), e.g. 'SA|GPL'",
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = [name for name in names if name not in SOURCES]
    if unknown or not names:
        parser.error(f"unknown --sources {unknown}; choose from {', '.join(SOURCES)}")
    args.sources = names
    if not 0.0 <= args.val_fraction < 1.0:
        parser.error("--val-fraction must be in [0, 1)")
    if args.long_side < MIN_LONG_SIDE:
        parser.error(f"--long-side must be at least {MIN_LONG_SIDE}")
    try:
        args.allowed_licences = re.compile(args.allowed_licences)
        args.exclude_licence = [re.compile(pattern) for pattern in args.exclude_licence]
    except re.error as err:
        parser.error(f"bad licence pattern: {err}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    if not is_replaceable_output(out):
        console.print(f"error: {out} exists and is not a dataset written by this script; choose another --out")
        return 2
    torch.set_num_threads(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    with tempfile.TemporaryDirectory(prefix="starter-data-") as temporary:
        fetcher = Fetcher(args.cache_dir.resolve() if args.cache_dir else Path(temporary))
        try:
            rows, failures = build(
                staging,
                fetcher,
                args.sources,
                args.long_side,
                args.val_fraction,
                args.allowed_licences,
                args.exclude_licence,
            )
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    previous = None
    if out.exists():
        previous = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        out.rename(previous / out.name)
    staging.rename(out)
    if previous is not None:
        shutil.rmtree(previous)

    counts = Counter((row["source_package"], row["split"]) for row in rows)
    for source in sorted({source for source, _ in counts}):
        console.print(f"{source}: train {counts[(source, 'train')]}, val {counts[(source, 'val')]}")
    splits = Counter(row["split"] for row in rows)
    console.print(f"[bold]wrote {len(rows)} images[/] (train {splits['train']}, val {splits['val']}) to {out}")
    for failure in failures:
        console.print(f"[red]failed source[/] {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
