"""bench.sampler end to end at a tiny size: the service, vLLM offline and transformers on the tiny model."""

# Fixtures imported from tests.model_fixtures are shadowed by test parameters on purpose.
# ruff: noqa: F811
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from services.sampler.engine import cpu_flags, engine_dtype
from tests.model_fixtures import tiny_model  # noqa: F401
from ucoder_common.localstack import REPO_ROOT

pytestmark = pytest.mark.slow

PROMPTS, N, MAX_TOKENS, ROUNDS = 2, 2, 8, 2


def test_bench_smoke(tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    args = ["--model", str(tiny_model), "--prompts", str(PROMPTS), "--n", str(N)]
    args += ["--max-tokens", str(MAX_TOKENS), "--rounds", str(ROUNDS), "--hf-rounds", "1", "--json", str(out)]
    # A process of its own, as it is run: vLLM spawns engine processes and sets its environment.
    run = subprocess.run(
        [sys.executable, "-m", "bench.sampler", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    printed = run.stdout
    for label in ("(a) service (NATS)", "(b) vLLM offline", "(c) transformers", "tokens/s", "(a)/(b) = "):
        assert label in printed, printed
    assert "target service >= 90% of offline: " in printed
    assert "INFO" not in printed  # vLLM's log lines go to stderr, the table alone to stdout

    report = json.loads(out.read_text())
    assert report["settings"] | {"model": ""} == {
        "model": "",
        "prompts": PROMPTS,
        "n": N,
        "max_tokens": MAX_TOKENS,
        "temperature": 0.8,
        "rounds": ROUNDS,
        "hf_rounds": 1,
        "modes": "abc",
    }
    env = report["environment"]
    assert env["prefix_caching"] is True
    # The tiny model is stored in bfloat16; a CPU without native bfloat16 serves it in float32.
    served = engine_dtype("auto", on_gpu=torch.cuda.is_available(), flags=cpu_flags())
    assert env["dtype"] == ("torch.float32" if served == "float32" else "torch.bfloat16")
    rows = {r["mode"]: r for r in report["rows"]}
    assert set(rows) == {"a", "b", "c"}
    for mode, row in rows.items():
        assert row["rounds"] == (1 if mode == "c" else ROUNDS)
        assert row["samples_per_round"] == PROMPTS * N
        # Every sample ends at EOS or the limit: at least one token, at most the limit.
        assert PROMPTS * N <= row["tokens_per_round"] <= PROMPTS * N * MAX_TOKENS
        assert 1 <= row["tokens_per_sample"] <= MAX_TOKENS
        assert all(len(row[k]) == row["rounds"] for k in ("round_tokens", "round_tokens_per_s"))
        assert row["wall_s"] > 0 and row["tokens_per_s"] > 0
        assert min(row["round_tokens_per_s"]) <= row["tokens_per_s"] <= max(row["round_tokens_per_s"])
    assert rows["b"]["vs_offline"] == 1.0
    ratios = report["ratios"]
    # Sane, not tight: the shared machine is noisy and a tiny workload is dominated by overheads.
    assert 0.05 < ratios["a/b"] < 20 and 0.01 < ratios["c/b"] < 100
    assert ratios["a/b"] == rows["a"]["vs_offline"]
    assert len(report["round_ratios_a_b"]) == ROUNDS
    assert report["targets"]["service >= 90% of offline"] in ("PASS", "MISS")
    # The service counted what it answered (timed rounds plus the warm-up round).
    metrics = env["service_metrics"]
    assert metrics["ucoder_sampler_generated_tokens_total"] >= sum(rows["a"]["round_tokens"])
    engine_tokens = metrics['ucoder_sampler_engine_tokens_total{kind="generation"}']
    assert engine_tokens == metrics["ucoder_sampler_generated_tokens_total"]
    assert metrics["ucoder_sampler_requests_in_flight"] == 0
