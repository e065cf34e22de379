"""`ucoder exec` against a real executor service (process backend) over real gRPC.

The executor runs as `python -m services.executor` on the session's nats-server; the CLI's
`main()` runs in-process with `--executor 127.0.0.1:PORT`, and the tests check its output,
exit status and one-line errors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NatsServer, free_port
from ucoder_cli.main import main
from ucoder_common.localstack import REPO_ROOT, health

ADD = """\
def helper(x):
    return x


def add(a, b):
    if a == -1:
        raise ValueError("negative")
    return a + b
"""
LOOP = "def spin(x):\n    while x:\n        pass\n    return x\n"


@pytest.fixture(scope="module")
def executor(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real executor service, SERVING."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UCODER_")}
    env.update(
        UCODER_NATS_URL=nats_server.url,
        UCODER_GRPC_PORT=str(port),
        UCODER_METRICS_PORT="-1",
        UCODER_LOG_FORMAT="text",
        UCODER_EXECUTOR_BACKEND="process",
        UCODER_EXECUTOR_ALLOW_UNSANDBOXED="1",
        UCODER_EXECUTOR_SANDBOXES="2",
    )
    log = tmp_path_factory.mktemp("executor") / "executor.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.executor"], cwd=REPO_ROOT, env=env, stdout=out, stderr=out
        )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while health(address, 1.0) != "SERVING":
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"executor did not become SERVING:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("UCODER_HOME", str(tmp_path / "home"))  # no local stack there
    monkeypatch.delenv("UCODER_EXECUTOR", raising=False)
    monkeypatch.delenv("UCODER_DEBUG", raising=False)


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ucoder: "), err
    assert "Traceback" not in err
    return lines[0]


def test_correct_function_passes_all(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "# a comment\n(1, 2)\n\n('a', 'b')\n([1], [2])\n")
    expected = write(tmp_path / "out.txt", "3\n'ab'\n# skipped too\n[1, 2]\n")
    code, out, err = run_cli(
        capsys, "exec", source, "--inputs", inputs, "--expected", expected, "--executor", executor
    )
    assert code == 0, err
    assert err == ""
    assert "entry point add" in out  # the last top-level def (the title may wrap with a long tmp path)
    assert "('a', 'b')" in out and "[1, 2]" in out
    assert out.count("│ returned ") == 3 and out.count("│ yes ") == 3 and "│ no " not in out
    assert "3 inputs: 3 returned; passed 3/3; backend process, entry point add" in out


def test_raised_and_one_argument_inputs(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(-1, 2)\n(2, 3)\n")
    code, out, err = run_cli(capsys, "exec", source, "--inputs", inputs, "--executor", executor)
    assert code == 0, err
    assert "raised" in out and "ValueError" in out and "negative" in out
    assert "passed" not in out  # no expected values, no passed column

    # A bare literal is one argument: 7 -> (7,).
    single = write(tmp_path / "single.txt", "7\n[1, 2]\n")
    code, out, err = run_cli(
        capsys, "exec", source, "--inputs", single, "--entry-point", "helper", "--executor", executor
    )
    assert code == 0, err
    assert "(7,)" in out and "([1, 2],)" in out and "2 inputs: 2 returned" in out


def test_infinite_loop_times_out(executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "spin.py", LOOP)
    inputs = write(tmp_path / "in.txt", "(0,)\n(1,)\n")
    started = time.monotonic()
    code, out, err = run_cli(
        capsys, "exec", source, "--inputs", inputs, "--timeout", "0.5", "--executor", executor
    )
    assert code == 0, err
    assert time.monotonic() - started < 10
    assert "timeout" in out and "1 returned, 1 timeout" in out


def test_syntax_error_is_a_compile_error_outcome(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "broken.py", "def f(x:\n    return x\n")
    inputs = write(tmp_path / "in.txt", "(1,)\n")
    code, out, err = run_cli(capsys, "exec", source, "--inputs", inputs, "--executor", executor)
    assert code == 0, err
    assert "compile_error" in out and "SyntaxError" in out and "entry point f" in out


def test_json_output(executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(1, 2)\n(-1, 0)\n(5, 5)\n")
    code, out, err = run_cli(capsys, "exec", source, "--inputs", inputs, "--executor", executor, "--json")
    assert code == 0, err
    reply = json.loads(out)
    assert reply["backend"] == "process"
    assert len(reply["results"]) == 1
    outcomes = reply["results"][0]["outcomes"]
    assert [o["kind"] for o in outcomes] == [
        "OUTCOME_KIND_RETURNED",
        "OUTCOME_KIND_RAISED",
        "OUTCOME_KIND_RETURNED",
    ]
    assert outcomes[0]["value_repr"] == "3" and outcomes[1]["exception_type"] == "ValueError"


def test_executor_from_the_environment(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCODER_EXECUTOR", executor)
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(1, 1)\n")
    code, out, err = run_cli(capsys, "exec", source, "--inputs", inputs)
    assert code == 0, err
    assert "1 inputs: 1 returned" in out


def test_server_side_validation_is_one_line(
    executor: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(1, 1)\n")
    code, _, err = run_cli(
        capsys, "exec", source, "--inputs", inputs, "--timeout", "100", "--executor", executor
    )
    assert code == 2
    assert one_line(err).startswith("ucoder: timeout_per_test_s: must be in [0, 60]")


# ------------------------------------------------------------------- usage errors (no executor needed)


def test_bad_inputs_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "# header\n(1, 2)\n\n(3, oops)\n")
    code, _, err = run_cli(capsys, "exec", source, "--inputs", inputs, "--executor", "127.0.0.1:1")
    assert code == 2
    assert one_line(err).startswith(f"ucoder: {inputs}:4: not a Python literal")


def test_expected_count_must_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(1, 2)\n(3, 4)\n")
    expected = write(tmp_path / "out.txt", "3\n")
    code, _, err = run_cli(
        capsys, "exec", source, "--inputs", inputs, "--expected", expected, "--executor", "127.0.0.1:1"
    )
    assert code == 2
    assert "1 expected values for 2 inputs" in one_line(err)


def test_missing_file_and_no_def(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inputs = write(tmp_path / "in.txt", "(1,)\n")
    missing = str(tmp_path / "missing.py")
    code, _, err = run_cli(capsys, "exec", missing, "--inputs", inputs, "--executor", "127.0.0.1:1")
    assert code != 0
    assert one_line(err) == f"ucoder: candidate file {missing}: no such file"

    code, _, err = run_cli(capsys, "exec", write(tmp_path / "nodef.py", "x = 1\n"), "--inputs", inputs)
    assert code == 2
    assert "--entry-point" in one_line(err)


def test_no_executor_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = write(tmp_path / "add.py", ADD)
    inputs = write(tmp_path / "in.txt", "(1, 2)\n")
    code, _, err = run_cli(capsys, "exec", source, "--inputs", inputs)
    assert code == 2
    line = one_line(err)
    assert "ucoder up" in line and "--executor" in line

    code, _, err = run_cli(
        capsys, "exec", source, "--inputs", inputs, "--executor", f"127.0.0.1:{free_port()}"
    )
    assert code == 2
    line = one_line(err)
    assert line.startswith("ucoder: executor at 127.0.0.1:") and "unavailable" in line
