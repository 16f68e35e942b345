"""Registry of named weight sets, the default choice of weights, and verification of installed files.

A :class:`WeightSet` names one set of InstColorization weights the way timm names pretrained
models: where it comes from (:class:`RemoteFile` mirrors, tried in order, each with its checksum
and its on-disk layout) or that it ships inside the package (``bundled``), its licence, source,
architecture and training data. ``instcolor weights download NAME`` (:func:`instcolor.models.weights.download.install`)
turns a set into ``weights_home() / "NAME.safetensors"`` in our format.

Layouts (how a downloaded file is converted):

* ``reference-zip``: the authors' ``checkpoints.zip`` with ``latest_net_{G,GF,GComp}.pth`` in the
  folder named by :attr:`RemoteFile.member` (:func:`instcolor.models.weights.reference.read_reference_checkpoints`);
* ``mmagic``: OpenMMLab mmagic's single-file checkpoint (:mod:`instcolor.models.weights.mmagic`);
* ``reference-files``: the authors' ``latest_net_{G,GF,GComp}.pth`` as separate files
  (:attr:`RemoteFile.parts`, e.g. the Git LFS copies in the reference repository);
* ``checkpoint``: a file kept as downloaded, verified but not converted (the authors' full-image
  network ``siggraph_retrained``, a starting point for training rather than a colorizer);
* ``instcolor``: already our safetensors format;
* ``auto``: decided from the file's content (used for ``--url``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open

from instcolor.models.config import ModelConfig
from instcolor.models.weights.reference import REFERENCE_LICENCE
from instcolor.models.weights.store import WeightsError, load_weights, read_metadata, weights_home

LAYOUTS = ("reference-zip", "reference-files", "checkpoint", "mmagic", "instcolor", "auto")


#: Set to 1 / true / yes to never download anything (like ``HF_HUB_OFFLINE``).
OFFLINE_ENV = "INSTCOLOR_OFFLINE"


GOOGLE_DRIVE_DOWNLOAD = "https://drive.google.com/uc?export=download&id={file_id}"


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable file of a weight set.

    Attributes:
        url: where to get it.
        file_name: name of the downloaded file (before conversion).
        layout: one of :data:`LAYOUTS`.
        sha256: lower-case hex digest of the file; 64 digits when the full hash is known, or a
            prefix (at least 8 digits, e.g. from an OpenMMLab file name); None when unpublished.
        google_drive: the URL is a Google Drive download that may answer with a confirm page.
        member: for ``reference-zip``, the folder inside the zip holding the three networks.
        size: the file's size in bytes when known (said before a download starts).
        parts: for ``reference-files``, the files to fetch (each with its own checksum).
    """

    url: str
    file_name: str
    layout: str
    sha256: str | None = None
    google_drive: bool = False
    member: str | None = None
    size: int | None = None
    parts: tuple[RemoteFile, ...] = ()

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")
        if self.sha256 is not None:
            digest = self.sha256.lower()
            if len(digest) < 8 or len(digest) > 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"sha256 must be 8 to 64 hex digits, got {self.sha256!r}")
            object.__setattr__(self, "sha256", digest)

    @property
    def full_sha256(self) -> bool:
        """True when :attr:`sha256` is the whole digest rather than a prefix."""
        return self.sha256 is not None and len(self.sha256) == 64

    @property
    def total_size(self) -> int | None:
        """Bytes to download (all parts), or None when not known."""
        sizes = [part.size for part in self.parts] if self.parts else [self.size]
        return None if any(size is None for size in sizes) else sum(sizes)


@dataclass(frozen=True)
class KnownFile:
    """A file published by the authors, identified by its sha256 and size (from Git LFS)."""

    folder: str
    network: str
    sha256: str
    size: int

    @property
    def description(self) -> str:
        return f"the authors' {self.folder} {self.network}"


#: The reference repository's commit that holds the authors' checkpoints in Git LFS.
REFERENCE_LFS_COMMIT = "13e6eec8aba37f893a2d2812834f6629707edf5a"
REFERENCE_LFS_URL = (
    "https://media.githubusercontent.com/media/ericsujw/InstColorization/" + REFERENCE_LFS_COMMIT + "/checkpoints/{path}"
)

#: Every checkpoint the authors published, as recorded by Git LFS at :data:`REFERENCE_LFS_COMMIT`.
KNOWN_FILES: tuple[KnownFile, ...] = (
    KnownFile("coco_finetuned_mask_256_ffs", "G", "91c2812f62095526612e85ed6eeafaab55f31bcec6b1e97e4d7299c442f490ab", 136789235),
    KnownFile("coco_finetuned_mask_256_ffs", "GComp", "8b5d727597138615b40408d69f49f6917d900ae0f1d39c692b885c16d47e2e69", 136789235),
    KnownFile("coco_finetuned_mask_256_ffs", "GF", "90011a980955ce3d26ebfe82a51a374f96d3908d1c5391f1ade0d99513d93c15", 141173736),
    KnownFile("coco_finetuned_mask_256", "G", "280f01187dbaa9199da89a40f08c68296d0995a77148f287378b54cc83f84933", 136789235),
    KnownFile("coco_finetuned_mask_256", "GComp", "38882fce5173aec899b0f2f2401ceb65eaeedd166808a89e268e09b79c2b038b", 136789235),
    KnownFile("coco_finetuned_mask_256", "GF", "963ccb44316f188638e4dd7f43342477e54f7d1ab0645c3ca36e667cc904ebd1", 141173736),
    KnownFile("siggraph_retrained", "G", "29fc246aea5c99e7e2aeed92382ceef239802b53857b87e2e5e167912f865db1", 136785828),
)  # fmt: skip


def known_file(sha256: str) -> KnownFile | None:
    """The authors' file with this sha256, or None."""
    return next((known for known in KNOWN_FILES if known.sha256 == sha256.lower()), None)


def describe_files(hashes: Mapping[str, str]) -> tuple[str, bool]:
    """``({file: sha256})`` -> one line saying which known file each is, and whether all are known.

    >>> describe_files({"latest_net_G.pth": KNOWN_FILES[0].sha256})[0]
    "latest_net_G.pth: the authors' coco_finetuned_mask_256_ffs G, verified"
    """
    parts, verified = [], True
    for name, digest in hashes.items():
        known = known_file(digest)
        if known is None:
            verified = False
            parts.append(f"{name}: matches no file the authors published (sha256 {digest[:16]}...), unverified")
        else:
            parts.append(f"{name}: {known.description}, verified")
    return "; ".join(parts), verified and bool(hashes)


def _lfs_remote(folder: str, network: str, layout: str = "checkpoint") -> RemoteFile:
    known = next(k for k in KNOWN_FILES if k.folder == folder and k.network == network)
    file_name = f"latest_net_{network}.pth"
    return RemoteFile(
        url=REFERENCE_LFS_URL.format(path=f"{folder}/{file_name}"),
        file_name=file_name,
        layout=layout,
        sha256=known.sha256,
        size=known.size,
    )


def _lfs_folder(folder: str) -> RemoteFile:
    parts = tuple(_lfs_remote(folder, network) for network in ("G", "GF", "GComp"))
    return RemoteFile(
        url=parts[0].url, file_name=f"{folder}-G.pth", layout="reference-files", sha256=parts[0].sha256,
        size=parts[0].size, member=folder, parts=parts,
    )  # fmt: skip


@dataclass(frozen=True)
class WeightSet:
    """A named set of weights.

    Attributes:
        name: registry name, also the installed file's stem.
        description: one line for people.
        architecture: the network family (``instcolorization``).
        trained_on: the data the weights were trained on.
        licence: licence of the weights.
        source: who made them and where they are published.
        downloads: mirrors, tried in order (may hold different files with different layouts).
        bundled: file name under ``instcolor/assets`` for weights shipped inside the package.
        config: the architecture the files must have (None: whatever the file says).
    """

    name: str
    description: str
    architecture: str
    trained_on: str
    licence: str
    source: str
    downloads: tuple[RemoteFile, ...] = ()
    bundled: str | None = None
    config: ModelConfig | None = None
    homepage: str = ""
    notes: tuple[str, ...] = field(default=())

    @property
    def is_bundled(self) -> bool:
        return self.bundled is not None


REGISTRY: dict[str, WeightSet] = {
    "paper-coco": WeightSet(
        name="paper-coco",
        description="the paper's weights, fine-tuned on COCO-Stuff (coco_finetuned_mask_256_ffs)",
        architecture="instcolorization",
        trained_on=(
            "full-image net from Zhang et al. SIGGRAPH17 (ImageNet), then full-image, instance and "
            "fusion nets fine-tuned on COCO-Stuff train with Mask R-CNN boxes, at 256x256"
        ),
        licence=REFERENCE_LICENCE,
        source="Su, Chu, Huang: Instance-aware Image Colorization (CVPR 2020), authors' checkpoints.zip",
        homepage="https://github.com/ericsujw/InstColorization",
        downloads=(
            RemoteFile(
                url=GOOGLE_DRIVE_DOWNLOAD.format(file_id="1Xb-DKAA9ibCVLqm8teKd1MWk6imjwTBh"),
                file_name="checkpoints.zip",
                layout="reference-zip",
                google_drive=True,
                member="coco_finetuned_mask_256_ffs",
            ),
            RemoteFile(
                url=(
                    "https://download.openmmlab.com/mmediting/inst_colorization/"
                    "inst-colorizatioon_full_official_cocostuff-256x256-5b9d4eee.pth"
                ),
                file_name="inst-colorizatioon_full_official_cocostuff-256x256-5b9d4eee.pth",
                layout="mmagic",
                sha256="5b9d4eee",
            ),
            _lfs_folder("coco_finetuned_mask_256_ffs"),
        ),
        config=ModelConfig(),
        notes=(
            "mirror: OpenMMLab mmagic's conversion of the same weights (Apache-2.0 code, MIT weights)",
            "mirror: the Git LFS copies of the three files in the reference repository, checked by their sha256",
            "no checksum is published for checkpoints.zip; each file in it is compared with the Git LFS "
            "sha256s and the result recorded (source_files, provenance)",
        ),
    ),
    "starter": WeightSet(
        name="starter",
        description="small starter weights bundled with instcolor (lower quality than paper-coco)",
        architecture="instcolorization",
        trained_on="trained by the instcolor project; the file's metadata records data and schedule",
        licence="MIT (instcolor)",
        source="instcolor project, shipped inside the package",
        bundled="starter.safetensors",
    ),
    "siggraph_retrained": WeightSet(
        name="siggraph_retrained",
        description="the authors' full-image network (siggraph_retrained/latest_net_G.pth), kept as published",
        architecture="instcolorization full-image network (Zhang et al. SIGGRAPH17 backbone)",
        trained_on="ImageNet (Zhang et al. SIGGRAPH17), retrained by the authors",
        licence=REFERENCE_LICENCE,
        source="Su, Chu, Huang: Instance-aware Image Colorization (CVPR 2020), Git LFS copy in the reference repository",
        homepage="https://github.com/ericsujw/InstColorization",
        downloads=(_lfs_remote("siggraph_retrained", "G"),),
        notes=("one network, not a colorizer: kept as the verified .pth (a starting point for training)",),
    ),
}


#: The set :func:`default_weights` prefers, and the one used when nothing better is available.
PREFERRED = "paper-coco"


FALLBACK = "starter"


INSTALL_HINT = (
    "instcolor weights download paper-coco "
    "(or, with the authors' zip at hand: instcolor weights import PATH/TO/checkpoints.zip)"
)


def get_weight_set(name: str) -> WeightSet:
    """The registry entry called ``name``.

    Raises:
        WeightsError: naming the known sets when there is none.
    """
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"no weight set called {name!r}; known: {', '.join(sorted(REGISTRY))}") from None


def bundled_path(weight_set: WeightSet) -> Path | None:
    """Path of a bundled set's file inside the installed package, or None when it is absent."""
    if weight_set.bundled is None:
        return None
    resource = importlib.resources.files("instcolor") / "assets" / weight_set.bundled
    path = Path(os.fspath(resource)) if isinstance(resource, os.PathLike) else None
    return path if path is not None and path.is_file() else None


def installed_path(name: str, home: Path | None = None) -> Path | None:
    """Where the weights called ``name`` are installed: the cache file, or the bundled file."""
    cached = (home or weights_home()) / f"{name}.safetensors"
    if cached.is_file():
        return cached
    weight_set = REGISTRY.get(name)
    return bundled_path(weight_set) if weight_set is not None else None


def offline() -> bool:
    """True when ``$INSTCOLOR_OFFLINE`` forbids downloads."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes, in sorted name order.

    Recorded as ``tensors_sha256`` when weights are installed, and recomputed by
    :func:`verify_weights` to catch a file whose tensors changed afterwards.
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(tensor.dtype), list(tensor.shape)]).encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass
class Verification:
    """The outcome of :func:`verify_weights` for one file."""

    path: Path
    name: str
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_weights(path: str | os.PathLike) -> Verification:
    """Re-check one installed weights file.

    Checks that it is a readable instcolor safetensors file whose tensors fit the architecture its
    metadata declares; that its tensors still hash to the recorded ``tensors_sha256``; and, for a
    downloaded set, that the recorded ``source_sha256`` matches the registry's checksum of that URL.
    """
    path = Path(path)
    result = Verification(path=path, name=path.stem)
    try:
        meta = read_metadata(path)
        load_weights(path)
    except WeightsError as err:
        result.problems.append(str(err))
        return result
    result.name = meta.get("name", path.stem)
    result.checks.append(f"readable, fits the architecture ({meta.get('config', '')})")
    recorded = meta.get("tensors_sha256")
    if recorded:
        with safe_open(os.fspath(path), framework="pt", device="cpu") as f:
            actual = tensors_sha256({k: f.get_tensor(k) for k in f.keys()})
        if actual == recorded:
            result.checks.append("tensors unchanged since install (tensors_sha256)")
        else:
            result.problems.append(
                f"tensors changed since install: sha256 {actual[:16]}..., recorded {recorded[:16]}..."
            )
    source_url, source_sha = meta.get("source_url"), meta.get("source_sha256")
    if source_url:
        known = _registered_checksum(source_url)
        if not source_sha:
            result.problems.append(f"downloaded from {source_url} but no source_sha256 was recorded")
        elif known is None:
            result.checks.append(f"source {source_url} has no published checksum; recorded sha256 {source_sha[:16]}...")
        elif source_sha.startswith(known):
            kind = "sha256" if len(known) == 64 else f"sha256 prefix {known}"
            result.checks.append(f"source file matched its published {kind}")
        else:
            result.problems.append(f"recorded source sha256 {source_sha[:16]}... does not match the published {known}")
    elif meta.get("input_sha256"):
        result.checks.append("imported from local checkpoints (input sha256 recorded)")
    return result


def _registered_checksum(url: str) -> str | None:
    for weight_set in REGISTRY.values():
        for remote in weight_set.downloads:
            if remote.url == url:
                return remote.sha256
    return None


def resolve_weights_path(name_or_path: str | os.PathLike) -> Path:
    """A file path as given, or the weights called ``name``: installed in the cache, or bundled."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    if re.fullmatch(r"[A-Za-z0-9_.-]+", str(name_or_path)):
        installed = installed_path(str(name_or_path))
        if installed is not None:
            return installed
    raise WeightsError(
        f"weights {os.fspath(name_or_path)!r} not found (neither a file nor installed in {weights_home()}); "
        "install the paper's weights with: instcolor weights import PATH/TO/checkpoints.zip"
    )
