import numpy as np
import pytest
import torch
from PIL import Image

from instcolor.color import join_lab, lightness
from instcolor.io import decode_image, to_pil
from instcolor.color import compose
from tests.support.helpers import gradient_image


@pytest.fixture()
def small_bands(monkeypatch):
    monkeypatch.setattr(compose, "BAND_PIXELS", 64 * 5)  # 5 rows per band: several bands and a ragged last


@pytest.mark.parametrize("channels", [1, 3])
def test_lightness_matches_the_whole_image_conversion(small_bands, channels):
    decoded = decode_image(gradient_image(height=47, width=64, channels=channels))
    expected = lightness(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None])
    got = compose.lightness_bands(decoded.rgb, decoded.is_grey)
    assert got.shape == (1, 1, 47, 64)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_lab_to_image_matches_join_and_to_pil(small_bands):
    rng = np.random.default_rng(0)
    l_full = torch.from_numpy(rng.uniform(0, 100, (1, 1, 47, 64)).astype(np.float32))
    ab = torch.from_numpy(rng.uniform(-90, 90, (1, 2, 47, 64)).astype(np.float32))  # much out of gamut
    expected = np.asarray(to_pil(join_lab(l_full, ab)[0].permute(1, 2, 0).numpy()))
    got = compose.lab_to_image(l_full, ab)
    assert got.mode == "RGB" and got.size == (64, 47)
    np.testing.assert_array_equal(np.asarray(got), expected)


def test_lab_to_image_carries_alpha(small_bands):
    l_full = torch.full((1, 1, 10, 64), 50.0)
    ab = torch.zeros((1, 2, 10, 64))
    alpha = np.arange(640, dtype=np.uint8).reshape(10, 64)
    image = compose.lab_to_image(l_full, ab, alpha)
    assert image.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(image)[..., 3], alpha)
    assert np.all(np.asarray(image)[..., 0] == np.asarray(image)[..., 1])  # neutral grey


@pytest.mark.parametrize(
    "pixels",
    [
        gradient_image(height=47, width=64, channels=1),
        gradient_image(height=47, width=64, channels=3),
        (np.arange(47 * 64, dtype=np.uint16).reshape(47, 64) * 21),
        np.random.default_rng(5).integers(0, 65536, (47, 64, 3), dtype=np.uint16),
    ],
    ids=["grey8", "rgb8", "grey16", "rgb16"],
)
def test_image_lightness_by_tables_matches_the_float_conversion(small_bands, pixels):
    decoded = decode_image(pixels)
    assert decoded.pixels.dtype == pixels.dtype  # no float copy was made to get here
    expected = lightness(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None])
    got = compose.image_lightness(decoded)
    assert got.shape == (1, 1, 47, 64) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_image_lightness_of_float_images(tmp_path):
    values = np.linspace(0, 1, 47 * 64, dtype=np.float32).reshape(47, 64)
    decoded = decode_image(Image.fromarray(values, mode="F"))
    assert decoded.pixels.dtype == np.float32
    expected = lightness(torch.from_numpy(decoded.rgb).permute(2, 0, 1)[None])
    torch.testing.assert_close(compose.image_lightness(decoded), expected, atol=1e-4, rtol=0)


def test_grey_levels_round_lightness_to_bytes():
    l_full = torch.tensor([[[[0.0, 0.1, 0.2, 50.0, 99.9, 100.0, 120.0, -3.0]]]])
    assert compose.grey_levels(l_full).tolist() == [[0, 0, 1, 128, 255, 255, 255, 0]]
