"""``instcolor video``: the command itself, and a real kill mid-write."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from instcolor.cli import app
from tests.support.cli_process import kill_when
from tests.support.helpers import tiny_weights_file

av = pytest.importorskip("av")
from tests.apps.test_video import check_colour_clip, write_grey_clip  # noqa: E402  (needs av)


def test_video_command_colorizes_every_frame_with_detection_and_keeps_audio(tmp_path):
    source, target = tmp_path / "clip.mp4", tmp_path / "colour" / "clip.mp4"
    write_grey_clip(source)
    weights = tiny_weights_file(tmp_path / "tiny.safetensors")
    args = ["video", str(source), "-o", str(target), "--weights", str(weights), "--device", "cpu"]
    result = CliRunner().invoke(app, args)  # the default detector, run on every frame
    assert result.exit_code == 0, result.output
    assert "centernet" in result.output.lower(), result.output
    check_colour_clip(target, coloured_frame=3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["clip.mp4"]


def test_video_usage_errors_exit_2(tmp_path):
    assert CliRunner().invoke(app, ["video", str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "o.mp4")]).exit_code != 0
    write_grey_clip(tmp_path / "clip.mp4", frames=2, with_audio=False)
    bad = CliRunner().invoke(app, ["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "o.mp4"), "--smoothing", "1.5"])
    assert bad.exit_code == 2
    assert not (tmp_path / "o.mp4").exists()


def test_sigkill_mid_video_leaves_no_output_file(tmp_path):
    """The output video appears only when complete: killed while writing, what is left is only our
    hidden temporaries (``.NAME.*.part``) or the resume folder (``NAME.partial/``), never NAME."""
    source, target = tmp_path / "long.mp4", tmp_path / "out" / "long-colour.mp4"
    write_grey_clip(source, frames=100, with_audio=False)
    weights = tiny_weights_file(tmp_path / "tiny.safetensors")
    (tmp_path / "home").mkdir()
    args = ["video", str(source), "-o", str(target), "--weights", str(weights), "--detector", "none", "--device", "cpu"]

    def writing() -> bool:  # frames are being written (somewhere)
        files = list(target.parent.iterdir()) if target.parent.is_dir() else []
        return bool(files) and files[0].stat().st_size > 0

    kill_when(args, tmp_path / "home", writing, poll=0.01)
    assert not target.exists()
    left = sorted(p.name for p in target.parent.iterdir())
    assert all((n.startswith(".long-colour.mp4.") and n.endswith(".part")) or n == "long-colour.mp4.partial" for n in left), left


@pytest.mark.parametrize("command", ["video", "evaluate-video", "serve"])
def test_class_aware_option_reaches_the_colorizer(tmp_path, monkeypatch, command):
    from instcolor.inference.pipeline import Colorizer

    seen = {}

    def from_pretrained(name, **options):
        seen.update(options)
        raise ValueError("stop here")

    monkeypatch.setattr(Colorizer, "from_pretrained", staticmethod(from_pretrained))
    write_grey_clip(tmp_path / "clip.mp4", frames=2, with_audio=False)
    args = {
        "video": ["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "o.mp4")],
        "evaluate-video": ["evaluate-video", str(tmp_path / "clip.mp4")],
        "serve": ["serve"],
    }[command]
    result = CliRunner().invoke(app, [*args, "--class-aware", "off", "--detector", "none"])
    assert "stop here" in result.output, result.output
    assert seen["class_aware"] == "off"


@pytest.mark.parametrize("command", ["video", "evaluate-video"])
def test_window_option_reaches_the_run_and_defaults_to_the_library(tmp_path, monkeypatch, command):
    import inspect

    import instcolor.apps.video as video
    from instcolor.cli.video import WINDOW

    assert WINDOW == video.WINDOW == inspect.signature(video.colorize_video).parameters["window"].default
    seen = []

    def run(*args, **options):
        seen.append(options["window"])
        raise ValueError("stop here")

    monkeypatch.setattr(video, "colorize_video" if command == "video" else "evaluate_video", run)
    write_grey_clip(tmp_path / "clip.mp4", frames=2, with_audio=False)
    weights = tiny_weights_file(tmp_path / "tiny.safetensors")
    args = {"video": ["video", str(tmp_path / "clip.mp4"), "-o", str(tmp_path / "o.mp4")], "evaluate-video": ["evaluate-video", str(tmp_path / "clip.mp4")]}[command]
    common = ["--weights", str(weights), "--detector", "none", "--device", "cpu"]
    for extra, expected in (([], WINDOW), (["--window", "0"], 0), (["--window", "5"], 5)):
        result = CliRunner().invoke(app, [*args, *common, *extra])
        assert "stop here" in result.output, result.output
        assert seen[-1] == expected
    assert CliRunner().invoke(app, [*args, *common, "--window", "-1"]).exit_code == 2
