import numpy as np
import pytest
from PIL import Image

from instcolor.io import atomic_path, decode_image, find_images, save_image, to_pil
from tests.support.helpers import gradient_image


def test_grey_uint8_array():
    decoded = decode_image(gradient_image(channels=1))
    assert decoded.is_grey and decoded.rgb.shape == (48, 64, 3) and decoded.alpha is None
    assert np.all(decoded.rgb[..., 0] == decoded.rgb[..., 2])


def test_rgba_array_keeps_alpha():
    rgba = np.dstack([gradient_image(), np.full((48, 64), 77, np.uint8)])
    decoded = decode_image(rgba)
    assert not decoded.is_grey and np.all(decoded.alpha == 77)


def test_16bit_grey_png(tmp_path):
    values = (np.arange(48 * 64, dtype=np.uint16).reshape(48, 64) * 21)
    Image.fromarray(values).save(tmp_path / "deep.png")
    decoded = decode_image(tmp_path / "deep.png")
    assert decoded.is_grey
    np.testing.assert_allclose(decoded.rgb[..., 0], values / 65535.0, atol=1e-6)


def test_palette_with_transparency(tmp_path):
    img = Image.fromarray(gradient_image()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    img.info["transparency"] = 0
    img.save(tmp_path / "pal.png", transparency=0)
    decoded = decode_image(tmp_path / "pal.png")
    assert decoded.alpha is not None and decoded.rgb.shape == (48, 64, 3)


def test_cmyk_jpeg(tmp_path):
    Image.fromarray(gradient_image()).convert("CMYK").save(tmp_path / "print.jpg")
    decoded = decode_image(tmp_path / "print.jpg")
    assert decoded.rgb.shape == (48, 64, 3) and not decoded.is_grey


def test_exif_orientation_is_applied(tmp_path):
    img = Image.fromarray(gradient_image(height=20, width=60))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    img.save(tmp_path / "rotated.jpg", exif=exif)
    assert decode_image(tmp_path / "rotated.jpg").size == (20, 60)


@pytest.mark.parametrize(
    "orientation, top_left, bottom_left",
    [
        # The stored picture is 20 x 60: its left half red, its right half blue.
        (1, "red", "red"),  # as stored: red on the left, top and bottom
        (6, "red", "blue"),  # 90 degrees clockwise: the stored left edge becomes the top
        (8, "blue", "red"),  # 90 degrees anticlockwise: the stored left edge becomes the bottom
        (3, "blue", "blue"),  # 180 degrees: red moves to the right
    ],
)
def test_exif_orientation_turns_the_right_way(tmp_path, orientation, top_left, bottom_left):
    stored = np.zeros((20, 60, 3), np.uint8)
    stored[:, :30] = (255, 0, 0)
    stored[:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "photo.jpg", exif=exif, quality=95)
    rgb = decode_image(tmp_path / "photo.jpg").rgb
    assert rgb.shape == ((20, 60, 3) if orientation in (1, 3) else (60, 20, 3))
    colour = {"red": (1.0, 0.0, 0.0), "blue": (0.0, 0.0, 1.0)}  # decoded samples are in [0, 1]
    np.testing.assert_allclose(rgb[2, 2], colour[top_left], atol=0.05)
    np.testing.assert_allclose(rgb[-3, 2], colour[bottom_left], atol=0.05)


def test_unreadable_file_raises_value_error(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read image"):
        decode_image(tmp_path / "broken.jpg")


def test_bad_array_shape():
    with pytest.raises(ValueError):
        decode_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        decode_image(np.zeros((4, 4), np.float32))


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.png"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash")
    assert list(tmp_path.iterdir()) == []


def test_save_image_roundtrip_and_jpeg_drops_alpha(tmp_path):
    image = to_pil(gradient_image() / 255.0, np.full((48, 64), 200, np.uint8))
    save_image(image, tmp_path / "a.png")
    save_image(image, tmp_path / "a.jpg")
    assert Image.open(tmp_path / "a.png").mode == "RGBA"
    assert Image.open(tmp_path / "a.jpg").mode == "RGB"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jpg", "a.png"]


def test_find_images(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.png", "sub/b.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found, problems = find_images([str(tmp_path), str(tmp_path / "missing.png")])
    assert [p.name for p in found] == ["a.png", "b.jpg"]
    assert len(problems) == 1 and "missing.png" in problems[0]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_samples_are_kept_and_float_rgb_is_made_on_demand(dtype, channels):
    top = np.iinfo(dtype).max
    shape = (6, 7) if channels == 1 else (6, 7, 3)
    pixels = np.random.default_rng(0).integers(0, top + 1, shape, dtype=dtype)
    decoded = decode_image(pixels)
    assert decoded.pixels.dtype == dtype and decoded.is_grey == (channels == 1)
    assert "rgb" not in vars(decoded)  # nothing converted yet
    expected = (pixels / top).astype(np.float32)  # float64 division, then float32: the old values
    expected = np.repeat(expected[..., None], 3, axis=2) if channels == 1 else expected
    np.testing.assert_array_equal(decoded.rgb, expected)
    pixels[...] = 0
    assert decoded.pixels.any()  # a copy: later changes to the caller's array do not leak in


def test_atomic_writes_get_the_mode_of_a_plain_write(tmp_path):
    import os
    import stat

    from instcolor.io import atomic_write_bytes

    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "new.bin", b"x")
        assert stat.S_IMODE((tmp_path / "new.bin").stat().st_mode) == 0o644  # not mkstemp's 0600
        (tmp_path / "kept.bin").write_bytes(b"old")
        os.chmod(tmp_path / "kept.bin", 0o640)
        atomic_write_bytes(tmp_path / "kept.bin", b"new")
        assert stat.S_IMODE((tmp_path / "kept.bin").stat().st_mode) == 0o640  # an existing file keeps its mode
    finally:
        os.umask(previous)
