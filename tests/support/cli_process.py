"""Run ``instcolor`` in a subprocess, as a user would, importing this checkout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

#: The repository root (README.md, samples/).
REPO = Path(__file__).resolve().parents[2]


def instcolor_command(*args: str) -> list[str]:
    """``instcolor ARGS`` as a subprocess, importing this checkout (not another installed copy)."""
    return [sys.executable, "-c", "import sys; from instcolor.cli import main; sys.exit(main())", *args]


def subprocess_env(home: Path) -> dict[str, str]:
    """The environment for it: an own, empty ``INSTCOLOR_HOME`` and torch hub cache, offline."""
    env = dict(os.environ)
    env.update(INSTCOLOR_HOME=str(home), INSTCOLOR_OFFLINE="1", TORCH_HOME=str(home / "torch"))
    env.pop("INSTCOLOR_MASKRCNN_WEIGHTS", None)
    env["PYTHONPATH"] = os.pathsep.join(os.path.abspath(p) for p in sys.path if p)
    return env


def kill_when(args: list[str], home: Path, ready: Callable[[], bool], poll: float = 0.005) -> None:
    """Start ``instcolor ARGS``, SIGKILL it as soon as ``ready()`` holds, and check it died of that."""
    process = subprocess.Popen(instcolor_command(*args), env=subprocess_env(home),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            if ready():
                break
            time.sleep(poll)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == -signal.SIGKILL
