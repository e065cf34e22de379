"""`ucoder` as a user runs it: a subprocess, its exit status, stdout and stderr.

Real processes throughout: the local-stack tests start nats-server and
`tests.fixtures.dummy_service`; the orchestrator-facing tests start nats-server and the real
orchestrator (no model, so an iteration stays RUNNING at the problems stage until cancelled)
and check validation, listing, `get --json`, one-at-a-time, watch + cancel and NOT_FOUND
through the CLI's exit codes and one-line errors. A complete iteration (progress bars,
result table) is covered by the end-to-end test with a model.
"""

from __future__ import annotations

import json
import os
import queue
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ucoder_common.localstack import REPO_ROOT, StackPaths, read_stack, start_stack, stop_stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "home"
    yield path
    stop_stack(StackPaths(path), grace_s=5)


def ucoder(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UCODER_ORCHESTRATOR", "UCODER_DEBUG")}
    env.update(UCODER_HOME=str(home), COLUMNS="160")
    return subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("ucoder: ")
    return lines[0]


# ---------------------------------------------------------------------------- no stack


def test_status_without_stack(home: Path) -> None:
    result = ucoder(home, "status")
    assert result.returncode == 0
    assert "no stack running" in result.stdout


def test_down_without_stack(home: Path) -> None:
    result = ucoder(home, "down")
    assert result.returncode == 0
    assert "no stack running" in result.stdout


def test_iterate_without_stack(home: Path) -> None:
    result = ucoder(home, "iterate", "--problems", "2")
    assert result.returncode == 2
    assert "ucoder up" in one_line_error(result)


def test_get_against_closed_port(home: Path) -> None:
    result = ucoder(home, "get", "it-1", "--orchestrator", f"127.0.0.1:{free_port()}")
    assert result.returncode == 2
    line = one_line_error(result)
    assert "unavailable" in line and "ucoder up" in line


def test_bad_flag_value_is_an_argparse_error(home: Path) -> None:
    result = ucoder(home, "iterate", "--problems", "abc")
    assert result.returncode == 2
    assert "invalid int value: 'abc'" in result.stderr
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------------------- local stack


def test_status_and_down_with_a_stack(home: Path) -> None:
    paths = StackPaths(home)
    info = start_stack(
        paths, services=("alpha",), modules={"alpha": "tests.fixtures.dummy_service"}, timeout_s=60
    )
    result = ucoder(home, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "alpha" in result.stdout and "nats" in result.stdout and "SERVING" in result.stdout
    assert str(info.services["alpha"].pid) in result.stdout

    # No orchestrator in this stack: commands that need one say so.
    result = ucoder(home, "list")
    assert result.returncode != 0
    one_line_error(result)

    result = ucoder(home, "down")
    assert result.returncode == 0 and "stopped" in result.stdout
    assert read_stack(paths) is None
    assert not info.alive("alpha") and not info.alive("nats")


def test_up_with_a_service_that_cannot_start(home: Path) -> None:
    result = ucoder(home, "up", "--services", "nosuchservice", "--timeout", "60")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr.split("--- last lines")[0]
    assert result.stderr.startswith("ucoder: nosuchservice exited during start-up")
    assert read_stack(StackPaths(home)) is None  # nothing left running


@pytest.mark.skipif(
    not (REPO_ROOT / "services" / "clusterer" / "__main__.py").exists(), reason="no clusterer service yet"
)
def test_up_status_down_with_a_real_service(home: Path) -> None:
    result = ucoder(home, "up", "--services", "clusterer", "--timeout", "120", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "clusterer: serving" in result.stdout and "stack up" in result.stdout
    again = ucoder(home, "up", "--services", "clusterer")
    assert again.returncode == 1 and "already running" in one_line_error(again)
    status = ucoder(home, "status")
    assert status.returncode == 0 and "clusterer" in status.stdout and "SERVING" in status.stdout
    assert ucoder(home, "down").returncode == 0
    assert read_stack(StackPaths(home)) is None


# ---------------------------------------------------------------------------- orchestrator API


@pytest.fixture(scope="module")
def orchestrator_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A UCODER_HOME with nats-server and the real orchestrator running (no model needed).

    Nothing generates problems in this stack, so a started iteration stays RUNNING at the
    problems stage until it is cancelled.
    """
    path = tmp_path_factory.mktemp("orchestrator-home")
    paths = StackPaths(path)
    try:
        start_stack(paths, services=("orchestrator",), timeout_s=60)
        yield path
    finally:
        stop_stack(paths, grace_s=5)


def orchestrator_address(home: Path) -> str:
    info = read_stack(StackPaths(home))
    assert info is not None and info.orchestrator_address
    return info.orchestrator_address


def test_status_shows_the_orchestrator(orchestrator_home: Path) -> None:
    result = ucoder(orchestrator_home, "status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "orchestrator" in result.stdout and "SERVING" in result.stdout
    assert f"orchestrator: {orchestrator_address(orchestrator_home)}" in result.stdout


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (("--problems", "0", "--tests", "4", "--samples", "4"), "spec.num_problems"),
        (("--problems", "2", "--tests", "4", "--samples", "4", "--rho", "1.5"), "spec.rho"),
        (("--samples", "-1"), "spec.samples_per_problem"),  # the other sizes keep their defaults
    ],
)
def test_invalid_spec_is_one_line_naming_the_field(
    orchestrator_home: Path, flags: tuple[str, ...], field: str
) -> None:
    result = ucoder(orchestrator_home, "iterate", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_line_error(result).startswith(f"ucoder: {field}: must be")
    assert "started" not in result.stdout


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--samples", "-1"), "ucoder: spec.samples: must be in [0, 1024], got -1"),
        (("--problems", "200"), "ucoder: spec.problems: must be in [0, 164], got 200"),
        (("--samples", "3", "--temperature", "0.5", "--k", "5"), "ucoder: spec.ks: every k must be"),
        (("--version", "42"), "ucoder: model_version: version 42 is not registered"),
    ],
)
def test_invalid_eval_is_one_line_naming_the_field(
    orchestrator_home: Path, flags: tuple[str, ...], message: str
) -> None:
    result = ucoder(orchestrator_home, "eval", *flags)
    assert result.returncode == 2, result.stdout + result.stderr
    assert one_line_error(result).startswith(message)


def test_eval_without_a_sampler_is_unavailable(orchestrator_home: Path) -> None:
    # Only nats-server and the orchestrator run: no sampler answers the generation requests.
    result = ucoder(orchestrator_home, "eval", "--problems", "2")
    assert result.returncode != 0, result.stdout + result.stderr
    error = one_line_error(result)
    assert "evaluation of v0" in error and "sampler" in error.lower(), error


def test_unknown_iteration_is_not_found(orchestrator_home: Path) -> None:
    address = orchestrator_address(orchestrator_home)
    # NOT_FOUND (like INVALID_ARGUMENT) is shown as the server's message alone.
    for args in (
        ("get", "20990101-000000-ffffff"),
        ("cancel", "20990101-000000-ffffff"),
        ("watch", "20990101-000000-ffffff", "--orchestrator", address),
    ):
        result = ucoder(orchestrator_home, *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert one_line_error(result) == "ucoder: iteration_id: no iteration '20990101-000000-ffffff'"


def _ucoder_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("UCODER_ORCHESTRATOR", "UCODER_DEBUG")}
    env.update(UCODER_HOME=str(home), COLUMNS="160", PYTHONUNBUFFERED="1", **extra)
    return env


def test_iterate_list_get_watch_cancel(orchestrator_home: Path) -> None:
    home = orchestrator_home
    started = ucoder(
        home,
        "iterate",
        "--no-watch",
        "--problems",
        "2",
        "--tests",
        "4",
        "--samples",
        "4",
        "--rho",
        "0.7",
        "--signature-mode",
        "pass",
        "--epochs",
        "2",
    )
    assert started.returncode == 0, started.stdout + started.stderr
    assert started.stderr == ""
    match = re.search(r"iteration (\S+) started", started.stdout)
    assert match, started.stdout
    iteration_id = match.group(1)
    assert f"ucoder watch {iteration_id}" in started.stdout

    listed = ucoder(home, "list")
    assert listed.returncode == 0, listed.stderr
    assert iteration_id in listed.stdout and "running" in listed.stdout.lower()

    # Found through $UCODER_ORCHESTRATOR rather than stack.json.
    got = subprocess.run(
        [sys.executable, "-m", "ucoder_cli.main", "get", iteration_id, "--json"],
        cwd=REPO_ROOT,
        env=_ucoder_env(home, UCODER_ORCHESTRATOR=orchestrator_address(home)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert got.returncode == 0, got.stderr
    it = json.loads(got.stdout)
    assert it["iteration_id"] == iteration_id
    assert it["phase"] == "ITERATION_PHASE_RUNNING"
    spec = it["spec"]
    assert (spec["num_problems"], spec["tests_per_problem"], spec["samples_per_problem"]) == (2, 4, 4)
    assert spec["rho"] == pytest.approx(0.7) and spec["train_epochs"] == 2
    assert spec["signature_mode"] == "SIGNATURE_MODE_PASS" and spec["tau"] == 2  # default filled in

    # One iteration at a time.
    second = ucoder(home, "iterate", "--no-watch", "--problems", "1", "--tests", "1", "--samples", "1")
    assert second.returncode == 2, second.stdout + second.stderr
    line = one_line_error(second)
    assert line.startswith("ucoder: failed_precondition: ") and iteration_id in line, line

    # `watch` in the background, then `cancel`: the watch ends with the cancellation.
    watch = subprocess.Popen(
        [sys.executable, "-m", "ucoder_cli.main", "watch", iteration_id],
        cwd=REPO_ROOT,
        env=_ucoder_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        out: list[str] = []

        def read_stdout() -> None:
            assert watch.stdout is not None
            for text in watch.stdout:
                out.append(text)
                lines.put(text)

        reader = threading.Thread(target=read_stdout, daemon=True)
        reader.start()
        first = lines.get(timeout=30)  # the watch is connected and showing progress
        assert first.startswith("[running] problems: 0/"), first

        cancelled = ucoder(home, "cancel", iteration_id)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert f"iteration {iteration_id}: cancelled" in cancelled.stdout

        t0 = time.monotonic()
        watch.wait(timeout=15)
        assert time.monotonic() - t0 < 10
        reader.join(timeout=5)
        assert watch.stderr is not None
        stderr = watch.stderr.read()
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()
    assert watch.returncode == 1, "".join(out) + stderr
    watch_out = "".join(out)
    assert "[cancelled]" in watch_out and iteration_id in watch_out  # last progress line + result table
    err = one_line_error(subprocess.CompletedProcess(watch.args, 1, watch_out, stderr))
    assert err.startswith(f"ucoder: iteration {iteration_id} cancelled"), err

    got = ucoder(home, "get", iteration_id, "--json", "--orchestrator", orchestrator_address(home))
    assert got.returncode == 0 and json.loads(got.stdout)["phase"] == "ITERATION_PHASE_CANCELLED"
    again = ucoder(home, "cancel", iteration_id)
    assert again.returncode == 2 and "already ended" in one_line_error(again)

    # --replace cancels the iteration still running (what `make run` does after a stack was
    # stopped mid-iteration) and starts the new one; without it the start is refused (above).
    left = ucoder(home, "iterate", "--no-watch", "--problems", "1", "--tests", "1", "--samples", "1")
    assert left.returncode == 0, left.stdout + left.stderr
    left_match = re.search(r"iteration (\S+) started", left.stdout)
    assert left_match, left.stdout
    left_id = left_match.group(1)
    replaced = ucoder(
        home, "iterate", "--no-watch", "--replace", "--problems", "1", "--tests", "1", "--samples", "1"
    )
    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    assert f"cancelled iteration {left_id}, which was still running" in replaced.stdout
    new_match = re.search(r"iteration (\S+) started", replaced.stdout)
    assert new_match and new_match.group(1) != left_id, replaced.stdout
    phases = {
        i: json.loads(ucoder(home, "get", i, "--json").stdout)["phase"] for i in (left_id, new_match.group(1))
    }
    assert phases == {left_id: "ITERATION_PHASE_CANCELLED", new_match.group(1): "ITERATION_PHASE_RUNNING"}
    assert ucoder(home, "cancel", new_match.group(1)).returncode == 0
