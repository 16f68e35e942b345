"""Tests for scripts/starter_data.py: credit parsing, Qt resources, image checks, splitting, output."""

from __future__ import annotations

import csv
import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.support.scripts import load_script

sd = load_script("starter_data")


def _png_bytes(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _colourful(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)


def _candidate(data: bytes, slug: str = "img", source: str = "test:pkg", url: str = "", stratum: str = "s"):
    return sd.Candidate(
        source_package=source,
        package_version="1.0",
        original_path=f"{slug}.png",
        licence="CC0-1.0",
        copyright="Someone",
        source_url=url,
        stratum=stratum,
        slug=slug,
        load=lambda: data,
    )


# -- licences and credit files -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CC-BY-SA 4.0", "CC-BY-SA-4.0"),
        ("CC-BY-2.0", "CC-BY-2.0"),
        ("CC0-1.0", "CC0-1.0"),
        ("Public domain", "public-domain"),
        ("GPLv3", "GPL-3.0-only"),
        ("GPL-2+", "GPL-2.0-or-later"),
        ("LGPLv3", "LGPL-3.0-only"),
        ("CC-BY-NC 2.0", "CC-BY-NC 2.0"),
    ],
)
def test_normalize_licence(text, expected):
    assert sd.normalize_licence(text) == expected


def test_licence_from_url():
    assert sd.licence_from_url("https://creativecommons.org/licenses/by/2.0/") == "CC-BY-2.0"
    assert sd.licence_from_url("https://creativecommons.org/publicdomain/zero/1.0/") == "CC0-1.0"
    assert sd.licence_from_url("https://example.org/licence") is None


def test_default_licence_policy_rejects_non_commercial():
    allowed = __import__("re").compile(sd.DEFAULT_ALLOWED_LICENCES)
    assert allowed.fullmatch("CC-BY-SA-4.0") and allowed.fullmatch("GPL-2.0-or-later")
    assert not allowed.fullmatch("CC-BY-NC 2.0")
    assert not allowed.fullmatch("")


DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: wallpapers

Files: *
Copyright: 2020 Packager <pack@example.org>
License: GPL-3

Files: 16.04/river_by_Ann.jpg
Copyright: Ann Example, 2018
License: CC-BY-4.0

Files: nature/*.jpg
       nature/extra.png
Copyright: 2008, Bob <bob@example.org>
           2009, Carol
License: GPL-2+
Comment: Copyright holders are found in AUTHORS file.

License: GPL-2+
 This package is free software.
"""


def test_parse_dep5_reads_files_paragraphs_only():
    stanzas = sd.parse_dep5(DEP5)
    assert [stanza.licence for stanza in stanzas] == ["GPL-3", "CC-BY-4.0", "GPL-2+"]
    assert stanzas[2].files == ("nature/*.jpg", "nature/extra.png")
    assert stanzas[2].copyright == "2008, Bob <bob@example.org>; 2009, Carol"


def test_dep5_lookup_matches_installed_paths_but_not_the_catch_all():
    stanzas = sd.parse_dep5(DEP5)
    by_name = sd.dep5_lookup(stanzas, "usr/share/backgrounds/river_by_Ann.jpg")
    by_suffix = sd.dep5_lookup(stanzas, "usr/share/backgrounds/mate/nature/Aqua.jpg")
    assert by_name is not None and by_name.licence == "CC-BY-4.0"
    assert by_suffix is not None and by_suffix.licence == "GPL-2+"
    assert sd.dep5_lookup(stanzas, "usr/share/backgrounds/other.jpg") is None


def test_strip_emails():
    assert sd.strip_emails("2008, Bob <bob@example.org>; 2009, Carol") == "2008, Bob; 2009, Carol"


GCOMPRIS_README = """\
Copyright: Timothée Giet, 2022
License: CC-BY-SA 4.0
Files:
square.svg

Copyright: Alice
Source: https://commons.wikimedia.org/wiki/File:Alpaca.jpg
License: CC-BY-SA-4.0
Comments: cropping, sharpening
Files: alpaca.webp

Copyright: 2000, 2008 Bruno Coudoin and others
License: Public domain
Church_0.webp
Church_background.webp
Comment: based on an original painting by Van Gogh, Public domain image.

Copyright: Bob
License: CC0-1.0
Files:
  india/fort.webp
"""


def test_parse_gcompris_credits_handles_the_three_layouts():
    credits = sd.parse_gcompris_credits(GCOMPRIS_README)
    assert set(credits) == {"square.svg", "alpaca.webp", "Church_0.webp", "Church_background.webp", "india/fort.webp"}
    alpaca = credits["alpaca.webp"]
    assert (alpaca.copyright, alpaca.licence, alpaca.comment) == ("Alice", "CC-BY-SA-4.0", "cropping, sharpening")
    assert alpaca.source == "https://commons.wikimedia.org/wiki/File:Alpaca.jpg"
    assert "painting" in credits["Church_background.webp"].comment
    assert credits["Church_background.webp"].licence == "Public domain"
    assert credits["india/fort.webp"].copyright == "Bob"


def test_parse_sklearn_readme():
    text = (
        "Image: china.jpg\nReleased under a creative commons license. [1]\n\n"
        "[1] https://creativecommons.org/licenses/by/2.0/\n[2] https://www.flickr.com/photos/someone/\n"
        "[3] https://www.flickr.com/photos/someone/1/\n\n\nImage: flower.jpg\n"
        "[1] https://creativecommons.org/licenses/by/2.0/\n[2] https://www.flickr.com/photos/other/\n"
        "[3] https://www.flickr.com/photos/other/2/\n"
    )
    entries = sd.parse_sklearn_readme(text)
    assert entries["flower.jpg"] == (
        "https://creativecommons.org/licenses/by/2.0/",
        "https://www.flickr.com/photos/other/",
        "https://www.flickr.com/photos/other/2/",
    )
    assert entries["china.jpg"][1].endswith("/someone/")


# -- Qt resource files --------------------------------------------------------------------------------


def _build_rcc(files: dict[str, tuple[bytes, bool]]) -> bytes:
    """A version-3 binary rcc with one directory ``dir`` holding ``files`` ({name: (data, zlib?)})."""
    names = b""
    name_offsets = {}
    for name in ["dir", *files]:
        name_offsets[name] = len(names)
        names += struct.pack(">HI", len(name), 0) + name.encode("utf-16-be")
    data = b""
    nodes = [
        struct.pack(">IHIIQ", 0, 0x02, 1, 1, 0),
        struct.pack(">IHIIQ", name_offsets["dir"], 0x02, len(files), 2, 0),
    ]
    for name, (payload, compressed) in files.items():
        blob = struct.pack(">I", len(payload)) + zlib.compress(payload) if compressed else payload
        nodes.append(struct.pack(">IHHHIQ", name_offsets[name], 0x01 if compressed else 0, 0, 0, len(data), 0))
        data += struct.pack(">I", len(blob)) + blob
    header_size = 24
    tree = b"".join(nodes)
    tree_offset = header_size
    data_offset = tree_offset + len(tree)
    names_offset = data_offset + len(data)
    header = b"qres" + struct.pack(">IIIII", 3, tree_offset, data_offset, names_offset, 0)
    return header + tree + data + names


def test_read_rcc_reads_plain_and_zlib_files():
    blob = _build_rcc({"README": (b"Copyright: Alice\n", True), "a.webp": (b"\x00raw-bytes", False)})
    assert sd.read_rcc(blob) == {"/dir/README": b"Copyright: Alice\n", "/dir/a.webp": b"\x00raw-bytes"}


def test_read_rcc_rejects_other_files():
    with pytest.raises(ValueError, match="qres"):
        sd.read_rcc(b"PK\x03\x04" + bytes(40))


# -- image preparation --------------------------------------------------------------------------------


def test_prepare_image_downscales_and_measures_colour():
    prepared = sd.prepare_image(_candidate(_png_bytes(_colourful(800, 600))))
    assert prepared.image.size == (512, 384)
    assert prepared.image.mode == "RGB"
    assert prepared.ab_range > sd.MIN_AB_RANGE


def test_prepare_image_never_upscales():
    prepared = sd.prepare_image(_candidate(_png_bytes(_colourful(300, 280))))
    assert prepared.image.size == (300, 280)


def test_prepare_image_rejects_grey_rgb():
    ramp = np.tile(np.linspace(0, 255, 400, dtype=np.uint8), (300, 1))
    grey_rgb = Image.fromarray(np.stack([ramp] * 3, axis=-1))
    with pytest.raises(sd.Rejected, match="greyscale"):
        sd.prepare_image(_candidate(_png_bytes(grey_rgb)))


def test_prepare_image_rejects_cutouts_and_small_images():
    rgba = _colourful(400, 300).convert("RGBA")
    alpha = np.full((300, 400), 255, dtype=np.uint8)
    alpha[:, :100] = 0
    rgba.putalpha(Image.fromarray(alpha))
    with pytest.raises(sd.Rejected, match="cut-out"):
        sd.prepare_image(_candidate(_png_bytes(rgba)))
    with pytest.raises(sd.Rejected, match="too small"):
        sd.prepare_image(_candidate(_png_bytes(_colourful(200, 100))))
    with pytest.raises(sd.Rejected, match="unreadable"):
        sd.prepare_image(_candidate(b"not an image"))


def test_prepare_image_applies_exif_orientation():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    data = _png_bytes(_colourful(600, 300), "JPEG", exif=exif.tobytes())
    prepared = sd.prepare_image(_candidate(data))
    assert prepared.image.size == (256, 512)


def test_encode_jpeg_keeps_full_resolution_chroma():
    data = sd.encode_jpeg(_colourful(64, 48))
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert image.layer[0][1:3] == image.layer[1][1:3]  # luma and chroma share the sampling factors


# -- de-duplication and splitting ---------------------------------------------------------------------


def test_deduplicate_by_source_url_and_by_hash():
    first = sd.prepare_image(_candidate(_png_bytes(_colourful(400, 300, seed=1)), "a", url="https://x.org/File:A.jpg"))
    same_url = sd.prepare_image(
        _candidate(_png_bytes(_colourful(400, 300, seed=2)), "b", url="HTTPS://x.org/File:A.jpg/")
    )
    resized_copy = sd.prepare_image(_candidate(_png_bytes(_colourful(400, 300, seed=1).resize((380, 285))), "c"))
    other = sd.prepare_image(_candidate(_png_bytes(_colourful(400, 300, seed=3)), "d"))
    kept, dropped = sd.deduplicate([first, same_url, resized_copy, other])
    assert [item.candidate.slug for item in kept] == ["a", "d"]
    assert all("duplicate of test:pkg:a.png" in why for _, why in dropped)


def test_assign_splits_is_stratified_deterministic_and_order_free():
    items = [(f"a{i}", "A", "big") for i in range(30)] + [(f"b{i}", "A", "small") for i in range(10)]
    items += [(f"c{i}", "C", "only") for i in range(4)]
    splits = sd.assign_splits(items, val_fraction=0.1)
    val = {item for item, split in splits.items() if split == "val"}
    assert len([item for item in val if item[0] in "ab"]) == 4
    assert any(item.startswith("b") for item in val), "every sub-collection is represented"
    assert not any(item.startswith("c") for item in val), "4 * 0.1 rounds to no held-out image"
    assert sd.assign_splits(list(reversed(items)), val_fraction=0.1) == splits


# -- end to end ---------------------------------------------------------------------------------------


@pytest.fixture()
def fake_source(monkeypatch):
    def collect(fetcher):
        result = sd.SourceResult("test:pkg", "1.0", licence_origin="made up for the test")
        for index in range(12):
            result.candidates.append(_candidate(_png_bytes(_colourful(640, 480, seed=10 + index)), f"photo{index}"))
        grey = Image.fromarray(np.full((300, 400, 3), 128, dtype=np.uint8))
        result.candidates.append(_candidate(_png_bytes(grey), "grey"))
        nc = _candidate(_png_bytes(_colourful(640, 480, seed=99)), "nc")
        result.candidates.append(sd.Candidate(**{**nc.__dict__, "licence": "CC-BY-NC-2.0"}))
        result.exclude("logo.png", "illustration")
        return result

    monkeypatch.setattr(sd, "SOURCES", {"fake": collect})


def test_main_writes_dataset_manifest_and_licences(tmp_path, fake_source):
    out = tmp_path / "starter"
    assert sd.main(["--out", str(out), "--sources", "fake", "--cache-dir", str(tmp_path / "cache")]) == 0
    with open(out / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == sd.MANIFEST_COLUMNS
    assert len(rows) == 12
    assert sorted(row["split"] for row in rows).count("val") == 1
    for row in rows:
        data = (out / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        assert row["file"].startswith(f"{row['split']}/")
        with Image.open(io.BytesIO(data)) as image:
            assert max(image.size) == 512
    with open(out / "excluded.csv", newline="") as handle:
        reasons = {row["original_path"]: row["reason"] for row in csv.DictReader(handle)}
    assert "greyscale" in reasons["grey.png"]
    assert "not in the allowed set" in reasons["nc.png"]
    assert reasons["logo.png"] == "illustration"
    licences = (out / "LICENSES.md").read_text()
    assert "| test:pkg | 1.0 | 11 | 1 | CC0-1.0 (12) |" in licences
    assert "made up for the test" in licences


def test_main_replaces_its_own_output_and_refuses_foreign_folders(tmp_path, fake_source):
    out = tmp_path / "starter"
    args = ["--out", str(out), "--sources", "fake", "--exclude-licence", "CC0"]
    (out / "train").mkdir(parents=True)
    (out / "manifest.csv").write_text("file\n")
    (out / "train" / "stale.jpg").write_bytes(b"old")
    assert sd.main(args) == 0
    assert not (out / "train" / "stale.jpg").exists()
    assert len((out / "manifest.csv").read_text().splitlines()) == 1, "every image excluded by --exclude-licence"

    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"keep me")
    assert sd.main(["--out", str(foreign), "--sources", "fake"]) == 2
    assert (foreign / "holiday.jpg").read_bytes() == b"keep me"


def test_plasma_avatars_take_their_reuse_sidecars(tmp_path):
    from types import SimpleNamespace

    folder = tmp_path / "usr/share/plasma/avatars/photos"
    folder.mkdir(parents=True)
    (folder / "Owl.png").write_bytes(b"png")
    (folder / "Owl.png.license").write_text(
        "# SPDX-FileCopyrightText: 2015 Pixabay <info@pixabay.com>\n#\n# SPDX-License-Identifier: CC0-1.0\n#\n"
        "# https://www.pexels.com/photo/bird-animal-owl-3890/\n"
    )
    (folder / "Unknown.png").write_bytes(b"png")  # no sidecar: left out
    deb = SimpleNamespace(name="plasma-workspace-data", version="4:5.27.5-2", root=tmp_path)
    result = sd.plasma_avatars_source(SimpleNamespace(deb=lambda name: deb))
    (owl,) = result.candidates
    assert (owl.licence, owl.copyright) == ("CC0-1.0", "2015 Pixabay")
    assert owl.source_url == "https://www.pexels.com/photo/bird-animal-owl-3890/" and owl.load() == b"png"
    assert [e.reason for e in result.exclusions] == ["no REUSE licence file beside it"]
    assert sd.SOURCES["plasma-workspace-data"] is sd.plasma_avatars_source
