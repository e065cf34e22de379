"""bench.adaptive end to end at a tiny size: real execution (process backend), replayed policies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.adaptive import main


def test_bench_adaptive_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "adaptive.json"
    argv = ["--problems", "6", "--seeds", "3", "--risks", "0.02,0.3", "--json", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for label in ("fixed n=128", "default (risk 0.1)", "risk 0.02", "risk 0.3", "default policy by profile"):
        assert label in printed
    assert "target samples <= 40% and identical >= 95%" in printed

    report = json.loads(out.read_text())
    assert report["problems"] == 6 and report["seeds"] == 3
    assert sum(report["profiles"].values()) == 6
    assert report["default_policy"]["risk"] == 0.1 and report["default_policy"]["mode"] == "adaptive"
    rows = {p["name"]: p for p in report["policies"]}
    assert list(rows) == ["fixed n=128", "risk 0.3", "default (risk 0.1)", "risk 0.02"]
    fixed = rows["fixed n=128"]
    assert fixed["drawn_mean"] == 128 and fixed["samples_share"] == 1.0 and fixed["identical"] == 1.0
    assert fixed["reasons"] == {"budget": 18}
    for row in rows.values():
        assert row["runs"] == 18
        assert 16 <= row["drawn_mean"] <= 128 and 16 <= row["drawn_median"] <= 128
        assert 0 < row["samples_share"] <= 1.0
        assert 0.0 <= row["identical"] <= 1.0
        assert 0.0 <= row["selected"] <= 1.0 and row["selected_fixed"] == fixed["selected"]
        assert row["precision"] is None or 0.0 <= row["precision"] <= 1.0
        assert sum(row["reasons"].values()) == 18
        assert set(row["reasons"]) <= {"budget", "certain", "confident", "unreachable", "hopeless"}
    # A looser risk never draws more than a stricter one on the same runs.
    assert rows["risk 0.3"]["drawn_mean"] <= rows["default (risk 0.1)"]["drawn_mean"]
    assert rows["default (risk 0.1)"]["drawn_mean"] <= rows["risk 0.02"]["drawn_mean"]
    assert {p["name"] for p in report["by_profile"]} == set(report["profiles"])
    assert sum(p["runs"] for p in report["by_profile"]) == 18
    assert isinstance(report["target"]["met"], bool)


def test_bench_adaptive_rejects_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--risks", "1.5"])
    assert "--risks: risk:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--set", "round_size=0"])
    assert "--set: round_size:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--set", "colour=red"])
    assert "--set:" in capsys.readouterr().err
