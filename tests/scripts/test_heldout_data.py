"""Tests for scripts/heldout_data.py: credit parsing, JPEG extraction, training-overlap checks (offline)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.scripts import load_script

hd = load_script("heldout_data")
sd = hd.sd


def _jpeg(width: int, height: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((width, height), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def test_parse_desktop_entry_skips_translations_and_groups():
    text = (
        "[Desktop Entry]\nName=Bee\nName[de]=Biene\n# comment\nX-KDE-PluginInfo-Author=John Severns\n"
        "X-KDE-PluginInfo-License=Public Domain\n\n[Job]\nImage=bee.jpg\n"
    )
    entry = hd.parse_desktop_entry(text)
    assert entry == {
        "Name": "Bee",
        "X-KDE-PluginInfo-Author": "John Severns",
        "X-KDE-PluginInfo-License": "Public Domain",
        "Image": "bee.jpg",
    }


def test_normalize_licence_extra_spellings():
    assert hd.normalize_licence("FDL") == "GFDL"
    assert hd.normalize_licence("GNU-FDL") == "GFDL"
    assert hd.normalize_licence("Public Domain") == "public-domain"
    assert hd.normalize_licence("BSD-2-clause") == "BSD-2-Clause"
    assert hd.normalize_licence("CC-BY-SA 3.0") == "CC-BY-SA-3.0"


def test_allowed_licences_accept_permissive_and_reject_gfdl():
    import re

    allowed = re.compile(hd.ALLOWED_LICENCES)
    for ok in (
        "public-domain",
        "CC0-1.0",
        "CC-BY-2.0",
        "CC-BY-SA-4.0",
        "BSD-2-Clause",
        "GPL-3.0-or-later",
        "LPPL-1.3c",
        hd.normalize_licence("LPPL-1.3-or-later"),
    ):
        assert allowed.fullmatch(ok), ok
    for bad in ("GFDL", "CC-BY-NC-2.0", "", "Pexels"):
        assert not allowed.fullmatch(bad), bad


def test_pexels_url_matches_the_photo_id():
    urls = [
        "https://www.pexels.com/photo/animal-pet-fur-head-33537/",
        "https://www.pexels.com/photo/angry-animal-big-carnivore-302304/",
    ]
    assert hd.pexels_url("pexels-photo-302304.jpeg", urls) == urls[1]
    assert hd.pexels_url("cat-portrait.jpg", urls) == ""
    assert hd.all_urls("see https://a.example/x/, and http://b.example/y.") == [
        "https://a.example/x/",
        "http://b.example/y",
    ]


def test_largest_embedded_jpeg_picks_the_biggest_stream():
    small, large = _jpeg(64, 48, 1), _jpeg(320, 200, 2)
    blob = b"EET\x00header" + small + b"\x00junk\xff\xd8\xffnot-a-jpeg" + large + b"\x00trailer"
    data = hd.largest_embedded_jpeg(blob)
    with Image.open(io.BytesIO(data)) as image:
        assert image.size == (320, 200)
    assert hd.largest_embedded_jpeg(b"no images here") is None


def test_catch_all_stanza():
    stanzas = sd.parse_dep5(
        "Files: *\nCopyright: 2000 Someone\nLicense: BSD-2-clause\n\nFiles: po/*\nCopyright: x\nLicense: GPL-2+\n"
    )
    assert hd.catch_all_stanza(stanzas).licence == "BSD-2-clause"
    assert hd.catch_all_stanza(stanzas[1:]) is None


def test_read_training_manifest_and_overlap(tmp_path):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(
        ",".join(sd.MANIFEST_COLUMNS)
        + "\ntrain/a.jpg,train,deb:x,1,p,CC0-1.0,A,0,http://commons.wikimedia.org/wiki/File:A.jpg,1,1,9\n",
        encoding="utf-8",
    )
    packages, urls = hd.read_training_manifest(manifest)
    assert packages == {"deb:x"}
    assert hd.read_training_manifest(tmp_path / "missing.csv") == (set(), set())

    def prepared(url: str, seed: int):
        data = _jpeg(320, 240, seed)
        candidate = sd.Candidate("deb:y", "1", "p.jpg", "CC0-1.0", "B", url, "s", f"img{seed}", lambda: data)
        return sd.prepare_image(candidate)

    same_url = prepared("https://commons.wikimedia.org/wiki/File:A.jpg/", 3)
    assert "same source URL" in hd.training_overlap(same_url, urls, {})
    other = prepared("", 4)
    assert hd.training_overlap(other, urls, {}) is None
    train_dir = tmp_path / "starter" / "train"
    train_dir.mkdir(parents=True)
    Image.open(io.BytesIO(_jpeg(320, 240, 4))).save(train_dir / "b.jpg")
    hashes = hd.training_hashes(tmp_path / "starter")
    assert "near-duplicate of training image train/b.jpg" == hd.training_overlap(other, set(), hashes)


def test_build_writes_flat_heldout_set_and_refuses_training_packages(tmp_path, monkeypatch):
    images = {f"p{i}": _jpeg(400, 300, 10 + i) for i in range(3)}

    def fake(fetcher):
        result = sd.SourceResult("deb:fake", "1.0", licence_origin="test")
        for name, data in images.items():
            licence = "GFDL" if name == "p2" else "CC0-1.0"
            result.candidates.append(
                sd.Candidate(
                    "deb:fake",
                    "1.0",
                    f"{name}.jpg",
                    licence,
                    "A",
                    "",
                    "s",
                    f"fake__{name}",
                    lambda d=data: d,
                )
            )
        return result

    monkeypatch.setattr(hd, "SOURCES", {"fake": fake})
    out = tmp_path / "heldout"
    assert hd.main(["--out", str(out), "--training-manifest", str(tmp_path / "none.csv")]) == 0
    assert sorted(p.name for p in out.glob("*.jpg")) == ["fake__p0.jpg", "fake__p1.jpg"]
    manifest = (out / "manifest.csv").read_text(encoding="utf-8").splitlines()
    assert manifest[0] == ",".join(sd.MANIFEST_COLUMNS)
    assert all(",heldout,deb:fake," in line for line in manifest[1:])
    assert "GFDL" in (out / "excluded.csv").read_text(encoding="utf-8")
    assert "EVALUATION ONLY" in (out / "LICENSES.md").read_text(encoding="utf-8")

    def training(fetcher):
        return sd.SourceResult("deb:gcompris-qt-data", "1")

    monkeypatch.setattr(hd, "SOURCES", {"bad": training})
    try:
        hd.main(
            [
                "--out",
                str(tmp_path / "other"),
                "--training-manifest",
                str(tmp_path / "none.csv"),
            ]
        )
    except RuntimeError as err:
        assert "training package" in str(err)
    else:
        raise AssertionError("a training package was accepted as a held-out source")


def test_failed_source_exits_1(tmp_path, monkeypatch):
    def broken(fetcher):
        raise sd.FetchError("apt-get download nothing failed")

    monkeypatch.setattr(hd, "SOURCES", {"broken": broken})
    assert (
        hd.main(
            [
                "--out",
                str(tmp_path / "h"),
                "--training-manifest",
                str(tmp_path / "none.csv"),
            ]
        )
        == 1
    )


class _FakeFetcher:
    """Serves one unpacked Debian package and one wheel-like distribution; npm packs come from cache_dir."""

    def __init__(self, cache_dir, deb_root, copyright_text, wheel_files):
        self.cache_dir = cache_dir
        (deb_root / "usr/share/doc/fake-doc").mkdir(parents=True, exist_ok=True)
        (deb_root / "usr/share/doc/fake-doc/copyright").write_text(copyright_text)
        self._deb = sd.DebPackage("fake-doc", "1.0-1", deb_root)
        self._wheel = wheel_files

    def deb(self, name):
        assert name == "fake-doc"
        return self._deb

    def python_distribution(self, name):
        return sd.PythonDistribution(name, "2.0", "wheel", self._wheel.__getitem__, tuple(self._wheel))


def test_people_sources_take_the_covering_paragraph_or_the_stated_licence(tmp_path):
    import tarfile

    deb_root = tmp_path / "deb"
    (deb_root / "usr/share/fake/photos").mkdir(parents=True)
    (deb_root / "usr/share/fake/photos/team.jpg").write_bytes(_jpeg(400, 300, 1))
    (deb_root / "usr/share/fake/photos/own.jpg").write_bytes(_jpeg(400, 300, 2))
    copyright_text = (
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2001 The Team <team@example.org>\nLicense: BSD-2-clause\n\n"
        "Files: photos/own.jpg\nCopyright: 2002 A. Photographer\nLicense: CC-BY-4.0\n"
    )
    packed = tmp_path / "package" / "demo"
    packed.mkdir(parents=True)
    (packed / "a.jpg").write_bytes(_jpeg(400, 300, 3))
    (tmp_path / "cache" / "npm").mkdir(parents=True)
    with tarfile.open(tmp_path / "cache" / "npm" / "scope-pkg-1.2.3.tgz", "w:gz") as archive:
        archive.add(tmp_path / "package", arcname="package")  # a cached `npm pack`: nothing is downloaded
    fetcher = _FakeFetcher(tmp_path / "cache", deb_root, copyright_text, {"pkg/data/me.jpg": _jpeg(400, 300, 4)})

    deb = hd.people_source(fetcher, hd.PeoplePhotos(
        "deb:fake-doc",
        {"usr/share/fake/photos/team.jpg": "the team", "usr/share/fake/photos/own.jpg": "a person",
         "usr/share/fake/photos/gone.jpg": "missing"},
        "test",
    ))  # fmt: skip
    found = {Path(c.original_path).name: c for c in deb.candidates}
    assert found["team.jpg"].licence == "BSD-2-Clause" and "package-wide" in found["team.jpg"].copyright
    assert found["own.jpg"].licence == "CC-BY-4.0" and found["own.jpg"].copyright.startswith("2002 A. Photographer")
    assert "pictured: the team" in found["team.jpg"].copyright
    assert [e.reason for e in deb.exclusions] == ["not in the package"]

    npm = hd.people_source(fetcher, hd.PeoplePhotos("npm:@scope/pkg@1.2.3", {"package/demo/a.jpg": "x"}, "t", "MIT", "Me"))
    assert npm.name == "npm:@scope/pkg" and npm.version == "1.2.3"
    assert npm.candidates[0].load() == (packed / "a.jpg").read_bytes() and npm.candidates[0].slug == "scope-pkg__a"
    pypi = hd.people_source(fetcher, hd.PeoplePhotos("pypi:pkg", {"pkg/data/me.jpg": "y"}, "t", "MIT", "Me"))
    assert pypi.candidates[0].licence == "MIT" and pypi.version == "2.0"
    assert {"@scope/pkg", "pkg"}.isdisjoint(hd.SOURCES)  # the real sources are named by package
    assert all(spec.name in hd.SOURCES for spec in hd.PEOPLE_PHOTOS)


def test_sdist_people_photos_are_read_below_the_archive_top_folder_and_turned_upright(tmp_path):
    import io
    import tarfile

    from PIL import Image

    wide = Image.new("RGB", (400, 300), (200, 30, 30))
    wide.paste((30, 30, 200), (0, 0, 100, 300))  # a blue band on the left
    buffer = io.BytesIO()
    wide.save(buffer, format="PNG")
    (tmp_path / "cache" / "sdists").mkdir(parents=True)
    with tarfile.open(tmp_path / "cache" / "sdists" / "pkg-1.0.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("pkg-1.0/tests/images/me.png")
        info.size = len(buffer.getvalue())
        archive.addfile(info, io.BytesIO(buffer.getvalue()))  # a cached `pip download`: nothing is fetched
    fetcher = _FakeFetcher(tmp_path / "cache", tmp_path, "", {})
    spec = hd.PeoplePhotos(
        "pypi-sdist:pkg==1.0", {"tests/images/me.png": "me", "tests/images/gone.png": "?"}, "t", "public domain",
        "A Government", source_url="https://example.org/me", turn={"tests/images/me.png": 90},
    )  # fmt: skip
    assert spec.name == "pkg"
    result = hd.people_source(fetcher, spec)
    assert (result.name, result.version) == ("pypi:pkg", "1.0")
    (found,) = result.candidates
    assert found.licence == "public-domain" and found.source_url == "https://example.org/me"
    upright = Image.open(io.BytesIO(found.load())).convert("RGB")
    assert upright.size == (300, 400)  # turned 90 degrees clockwise: the left band is now on top
    assert upright.getpixel((150, 10)) == (30, 30, 200) and upright.getpixel((150, 390)) == (200, 30, 30)
    assert [e.reason for e in result.exclusions] == ["not in the package"]
