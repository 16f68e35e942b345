from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from instcolor.temporal import ShotWindow, agreement, reference


@dataclass
class Frame:
    l_full: torch.Tensor
    ab_frame: torch.Tensor
    cut: bool = False
    motion: torch.Tensor | None = None
    tracks: dict = field(default_factory=dict)


def flat(a: float, lightness: torch.Tensor, cut: bool = False) -> Frame:
    ab = torch.zeros(1, 2, *lightness.shape[-2:])
    ab[:, 0] = a
    return Frame(lightness, ab, cut)


def texture(height=24, width=32, seed=0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).uniform(20, 80, (1, 1, height, width))).float()


def a_means(finished) -> list[float]:
    return [round(float(ab[0, 0].mean()), 4) for _, ab in finished]


def test_window_is_the_mean_over_radius_frames_each_side_within_the_shot():
    lightness = texture()
    window = ShotWindow(radius=2)
    values = [6.0, -6.0, 12.0, 0.0, 3.0]
    finished = []
    for i, value in enumerate(values):
        given = list(window.push(flat(value, lightness, cut=i == 0)))
        assert len(given) == (1 if i >= 2 else 0)  # each frame comes back 2 frames late
        finished += given
    finished += list(window.flush())
    expected = [np.mean(values[max(0, t - 2) : t + 3]) for t in range(5)]
    assert a_means(finished) == pytest.approx(expected, abs=1e-4)
    assert [frame.ab_frame[0, 0].mean().item() for frame, _ in finished] == values  # given back in order, untouched


def test_a_cut_ends_the_window_and_nothing_crosses_it():
    lightness, other = texture(seed=0), texture(seed=1)
    window = ShotWindow(radius=3)
    finished = []
    for i, value in enumerate([10.0, 10.0, 10.0]):
        finished += window.push(flat(value, lightness, cut=i == 0))
    assert finished == []
    finished += window.push(flat(-20.0, other, cut=True))  # the cut gives the first shot back at once
    assert a_means(finished) == [10.0, 10.0, 10.0]
    finished += window.push(flat(-10.0, other))
    finished += list(window.flush())
    assert a_means(finished)[3:] == [-15.0, -15.0]


def test_only_pixels_whose_lightness_matches_are_averaged():
    lightness = texture()
    changed = lightness.clone()
    changed[..., :, 16:] += 40.0  # something else in the right half of the second frame
    window = ShotWindow(radius=1)
    finished = [*window.push(flat(10.0, lightness, cut=True)), *window.push(flat(-10.0, changed)), *window.flush()]
    first = finished[0][1][0, 0]
    assert float(first[:, :8].mean()) == pytest.approx(0.0, abs=0.5)  # averaged where both frames agree
    assert float(first[:, 24:].mean()) == pytest.approx(10.0, abs=0.5)  # its own colour where they do not


def test_the_window_follows_the_camera():
    """A pan (each frame 2 px further right): the neighbours are warped by the composed motion."""
    rng = np.random.default_rng(2)
    world_l = torch.from_numpy(rng.uniform(0, 100, (1, 1, 24, 60))).float()
    world_a = (30.0 * torch.sign(torch.sin(torch.arange(60.0) / 2.0))).expand(1, 1, 24, 60)  # stripes
    shift = torch.tensor([[[1.0, 0.0, 2 * 2 / 32], [0.0, 1.0, 0.0]]])  # this frame's positions into the previous
    window = ShotWindow(radius=3)
    finished = []
    truths = []
    for i in range(7):
        crop = (..., slice(None), slice(2 * i, 2 * i + 32))
        ab = torch.cat([world_a[crop], torch.zeros(1, 1, 24, 32)], 1).clone()
        truths.append(ab.clone())
        ab[:, 0] += 8.0 if i % 2 == 0 else -8.0  # flicker
        finished += window.push(Frame(world_l[crop].clone(), ab, i == 0, None if i == 0 else shift))
    finished += list(window.flush())
    middle, truth = finished[3][1], truths[3]
    error = (middle - truth)[0, 0, 4:-4, 8:-8].abs().mean()
    assert float(error) < 1.5  # +-8 flicker averaged out, colours kept in place
    static = ShotWindow(radius=3)  # the camera ignored: the pan's lightness no longer matches
    kept = []
    for i, (frame, _) in enumerate(finished):
        kept += static.push(Frame(frame.l_full, frame.ab_frame, i == 0, None))
    kept += list(static.flush())
    assert float((kept[3][1] - truth)[0, 0, 4:-4, 8:-8].abs().mean()) > 3 * float(error)


def test_a_colour_drift_along_a_shot_does_not_make_the_window_worse_than_each_frame():
    """The per-frame colour drifts from +12 to -12 along a still shot whose truth is 0: the window's
    mean error is below the per-frame one, as the running blend's (which lags behind) is not."""
    lightness = texture()
    drift = np.linspace(12, -12, 25)
    window = ShotWindow(radius=6)
    finished = []
    for i, value in enumerate(drift):
        finished += window.push(flat(float(value), lightness, cut=i == 0))
    finished += list(window.flush())
    ours = np.array(a_means(finished))
    running, previous = [], None
    for value in drift:
        previous = value if previous is None else 0.05 * value + 0.95 * previous
        running.append(previous)
    per_frame_error = np.mean(drift**2)
    assert np.mean(ours**2) < per_frame_error < np.mean(np.square(running))


def test_a_tracked_instance_that_moved_on_its_own_is_taken_from_its_own_box():
    lightness = texture(seed=3)
    patch = texture(8, 8, seed=4) + 10
    before, after = lightness.clone(), lightness.clone()
    before[..., 4:12, 4:12] = patch
    after[..., 4:12, 16:24] = patch  # the patch moved 12 px right; the camera did not move
    ab_before = torch.zeros(1, 2, 24, 32)
    ab_before[:, 0, 4:12, 4:12] = 20.0
    identity = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    old, new = np.array([4.0, 4, 12, 12]), np.array([16.0, 4, 24, 12])
    ref_l, ref_ab, inside = reference(after, before, ab_before, identity, [(old, new)])
    assert torch.equal(ref_l[..., 4:12, 16:24], patch) and float(ref_ab[0, 0, 4:12, 16:24].mean()) == 20.0
    assert float(agreement(after, ref_l, inside, 8.0)[..., 6:10, 18:22].min()) > 0.99
    ref_l, ref_ab, _ = reference(after, before, ab_before, identity)  # not tracked: the camera's warp alone
    assert float(ref_ab[0, 0, 4:12, 16:24].mean()) == 0.0


def test_state_carries_the_finished_frames_to_a_resumed_window():
    lightness = texture()
    values = [4.0, -4.0, 8.0, 0.0, 2.0, 6.0]
    whole = ShotWindow(radius=2)
    expected = []
    for i, value in enumerate(values):
        expected += whole.push(flat(value, lightness, cut=i == 0))
    expected += list(whole.flush())

    first = ShotWindow(radius=2)
    for i, value in enumerate(values[:4]):
        given = list(first.push(flat(value, lightness, cut=i == 0)))
    assert a_means(given) == a_means(expected)[1:2]  # frame 1 finished: a run killed here resumes at frame 2
    resumed = ShotWindow(radius=2)
    resumed.load_state(first.state())
    finished = []
    for value in values[2:]:
        finished += resumed.push(flat(value, lightness))
    finished += list(resumed.flush())
    assert a_means(finished) == a_means(expected)[2:]


def test_radius_must_be_positive():
    with pytest.raises(ValueError, match="at least 1 frame"):
        ShotWindow(radius=0)


def test_the_window_chains_zooms_and_turns_in_the_right_order():
    """A camera that zooms in, turns and pans at once (maps that do not commute): each neighbour,
    before and after, is lined up by the motions between it and the frame, composed in order."""
    from instcolor.motion import warp

    rng = np.random.default_rng(6)
    world = torch.from_numpy(rng.uniform(0, 100, (1, 1, 12, 16))).float()
    world = torch.nn.functional.interpolate(world, size=(96, 128), mode="bilinear", align_corners=False)
    world_a = torch.sign(torch.sin(torch.arange(128.0) / 3.0)).expand(1, 1, 96, 128) * 30.0

    def step(t: int) -> torch.Tensor:  # frame t's positions into frame t-1's: a different move each frame
        angle, scale = 0.15 * (-1) ** t, (0.92, 1.0, 1.06)[t % 3]
        c, s = np.cos(angle) * scale, np.sin(angle) * scale
        return torch.tensor([[c, -s, 0.08 * (-1) ** (t // 2)], [s, c, 0.05 * (t % 3 - 1)], [0.0, 0.0, 1.0]], dtype=torch.float64)

    cameras = [torch.diag(torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64))]  # frame t's positions into the world's
    for t in range(1, 7):
        cameras.append(cameras[-1] @ step(t))

    def camera(t: int) -> torch.Tensor:
        return cameras[t]

    window = ShotWindow(radius=3)
    finished, truths = [], []
    for t in range(7):
        theta = camera(t)[:2].float()[None]
        lightness, _ = warp(world, theta)
        truth, _ = warp(torch.cat([world_a, torch.zeros_like(world_a)], 1), theta)
        truths.append(truth)
        ab = truth.clone()
        ab[:, 0] += 8.0 if t % 2 == 0 else -8.0
        motion = None if t == 0 else (torch.linalg.inv(camera(t - 1)) @ camera(t))[:2].float()[None]
        finished += window.push(Frame(lightness, ab, t == 0, motion))
    finished += list(window.flush())
    error = float((finished[3][1] - truths[3])[0, 0, 16:-16, 16:-16].abs().mean())
    assert error < 1.6  # the +-8 flicker averaged out without smearing the stripes (1.3; 2.0 with the maps in the wrong order)
