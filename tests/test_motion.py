import numpy as np
import pytest
import torch
import torch.nn.functional as F

from instcolor.motion import IDENTITY, estimate_motion, move_boxes, phase_correlation, warp


def textured(height=96, width=128, seed=0) -> torch.Tensor:
    """A smooth random texture ``(1, 1, H, W)`` in [0, 100], like the lightness of a photo."""
    rng = np.random.default_rng(seed)
    noise = torch.from_numpy(rng.uniform(0, 100, (1, 1, height // 4, width // 4))).float()
    return F.interpolate(noise, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 100)


def window(image: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The ``size`` view of ``image`` through the affine window ``theta`` (normalised coordinates)."""
    grid = F.affine_grid(theta, [1, 1, *size], align_corners=False)
    return F.grid_sample(image, grid, mode="bilinear", align_corners=False)


def test_phase_correlation_finds_a_whole_pixel_shift():
    image = textured()
    shifted = torch.roll(image, shifts=(3, -7), dims=(2, 3))  # current(x) = previous(x - d), d = (-7, 3)
    assert phase_correlation(image, shifted) == (-7.0, 3.0)


def test_estimate_motion_recovers_a_pan_with_zoom():
    big = textured(192, 256)
    previous = big[..., 48:144, 64:192]
    truth = torch.tensor([[[0.97, 0.0, 0.06], [0.0, 0.97, -0.04]]])  # zoom in 3 %, pan right and up
    current = window(big, truth * 0.5, (96, 128))  # previous(u) = big(u / 2): current(u) = big(truth u / 2)
    theta = estimate_motion(previous, current)
    assert torch.allclose(theta, truth, atol=0.01), theta
    aligned, inside = warp(previous, theta)
    keep = inside > 0.999
    assert float((aligned - current).abs()[keep].mean()) < 0.5 < float((previous - current).abs().mean())


def test_a_moving_object_on_a_still_background_is_no_camera_motion():
    background = textured()
    frames = []
    for x in (10, 16):
        frame = background.clone()
        frame[..., 30:80, x : x + 50] = 95.0  # a big bright square moving right
        frames.append(frame)
    assert torch.equal(estimate_motion(*frames), IDENTITY)
    assert torch.equal(estimate_motion(background, background), IDENTITY)


def test_flat_frames_give_the_identity():
    flat = torch.full((1, 1, 40, 60), 50.0)
    assert torch.equal(estimate_motion(flat, flat + 0.5), IDENTITY)


def test_warp_marks_content_that_came_into_view():
    image = textured()
    pan = torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]]])  # current = previous seen 1/8 width further right
    warped, inside = warp(image, pan)
    assert inside[..., :, -10:].max() == 0 and inside[..., :, :100].min() == 1
    assert torch.allclose(warped[..., :, :100], image[..., :, 16:116], atol=1e-3)


def test_move_boxes_carries_boxes_along_the_camera():
    pan = torch.tensor([[[1.0, 0.0, 0.25], [0.0, 1.0, 0.0]]])  # content moves 16 px left in a 128 px frame
    assert move_boxes(np.array([[40, 10, 80, 50]]), pan, (96, 128))[0].tolist() == pytest.approx([24, 10, 64, 50])
    zoom = torch.tensor([[[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]])  # 2x zoom about the centre
    assert move_boxes(np.array([[48, 36, 80, 60]]), zoom, (96, 128))[0].tolist() == pytest.approx([32, 24, 96, 72])
    assert move_boxes(np.zeros((0, 4)), pan, (96, 128)).shape == (0, 4)
