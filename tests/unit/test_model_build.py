"""Building a model into the shared cache from several processes at once (ucoder_common.models).

On a fresh machine the sampler and the trainer both build the default model at start-up; these
tests run the same lock-and-rename path with a cheap build in real concurrent processes, and kill
one builder with SIGKILL mid-build.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ucoder_common.models import _build_atomically, _is_complete

BUILD_SECONDS = 0.5


def slow_build(out: Path) -> None:
    """A stand-in checkpoint written slowly, recording each build in ``builds.log`` beside it."""
    with open(out.parent / "builds.log", "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()}\n")
    (out / "config.json").write_text("{}")
    time.sleep(BUILD_SECONDS)
    (out / "model.safetensors").write_bytes(b"weights")


def _build_in_child(target: str) -> None:
    _build_atomically(Path(target), slow_build)


def _builds(cache: Path) -> list[str]:
    log = cache / "builds.log"
    return log.read_text().split() if log.exists() else []


def _leftovers(target: Path) -> list[Path]:
    return list(target.parent.glob(f".{target.name}-*"))


def test_concurrent_builders_build_once_and_all_see_the_result(tmp_path: Path) -> None:
    target = tmp_path / "model"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_build_in_child, args=(str(target),)) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert len(_builds(tmp_path)) == 1
    assert _is_complete(target)
    assert (target / "model.safetensors").read_bytes() == b"weights"
    assert _leftovers(target) == []


def test_a_killed_builder_leaves_nothing_that_stops_the_next(tmp_path: Path) -> None:
    target = tmp_path / "model"
    code = (
        "import sys, time; from pathlib import Path\n"
        "from ucoder_common.models import _build_atomically\n"
        "def build(out):\n"
        "    (out / 'config.json').write_text('{}')\n"
        "    print('building', flush=True)\n"
        "    time.sleep(600)\n"
        "_build_atomically(Path(sys.argv[1]), build)\n"
    )
    builder = subprocess.Popen(
        [sys.executable, "-c", code, str(target)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert builder.stdout is not None
        assert builder.stdout.readline().strip() == "building"
        assert len(_leftovers(target)) == 1  # half a checkpoint, in its temp dir
        builder.send_signal(signal.SIGKILL)
        builder.wait(timeout=30)
    finally:
        builder.kill()
    _build_atomically(target, slow_build)  # the lock died with its holder: no wait
    assert _is_complete(target)
    assert _leftovers(target) == []
    assert len(_builds(tmp_path)) == 1


def test_an_incomplete_target_is_rebuilt_and_a_failed_build_cleans_up(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")  # no weights: not complete

    def failing(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        _build_atomically(target, failing)
    assert _leftovers(target) == []
    _build_atomically(target, slow_build)
    assert _is_complete(target)
    _build_atomically(target, slow_build)  # complete: not built again
    assert len(_builds(tmp_path)) == 1
