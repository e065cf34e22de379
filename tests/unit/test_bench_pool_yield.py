"""bench.pool_yield's numbers from an iteration: yields per core-hour and ratios to the baseline."""

from __future__ import annotations

import pytest
from google.protobuf.json_format import MessageToDict

from bench.pool_yield import BASELINE, VARIANTS, pool_row, with_ratios
from ucoder_common.pb import common_pb2, orchestrator_pb2


def iteration(selected: int, minutes: float, tests: int) -> dict[str, object]:
    it = orchestrator_pb2.Iteration(
        iteration_id="it-1",
        created_unix_ms=1_000_000,
        finished_unix_ms=1_000_000 + int(minutes * 60_000),
        problems_generated=32,
        problem_ids=["a", "b", "c"],
        tests_kept=tests,
        selected=selected,
        candidates=96,
        executions=96 * 5,
        problems=[
            orchestrator_pb2.ProblemState(tests=[common_pb2.TestCase(test_id="t0")]),
            orchestrator_pb2.ProblemState(),
        ],
    )
    it.tests_rejected["not_literal"] = 7
    it.tests_rejected["type"] = 3
    it.tests_repaired["keywords"] = 2
    return MessageToDict(it, preserving_proto_field_name=True)


def test_a_row_counts_per_core_hour() -> None:
    row = pool_row("after", {}, iteration(selected=3, minutes=30, tests=120), cores=2)
    assert row["core_hours"] == pytest.approx(1.0)
    assert row["selected_per_core_hour"] == pytest.approx(3.0)
    assert row["tests_per_core_hour"] == pytest.approx(120.0)
    assert (row["problems_generated"], row["problems_kept"], row["problems_with_tests"]) == (32, 3, 1)
    assert (row["tests_rejected"], row["tests_repaired"]) == (10, 2)


def test_ratios_are_against_the_baseline_of_the_same_run() -> None:
    rows = with_ratios(
        [
            pool_row(BASELINE, VARIANTS[BASELINE], iteration(selected=1, minutes=60, tests=100), cores=2),
            pool_row("after", {}, iteration(selected=2, minutes=30, tests=100), cores=2),
        ]
    )
    assert rows[0]["selected_per_core_hour_vs_before"] == pytest.approx(1.0)
    assert rows[1]["selected_per_core_hour_vs_before"] == pytest.approx(4.0)
    assert rows[1]["tests_per_core_hour_vs_before"] == pytest.approx(2.0)
    assert rows[1]["core_hours_vs_before"] == pytest.approx(0.5)


def test_no_baseline_selection_means_no_ratio() -> None:
    rows = with_ratios(
        [
            pool_row(BASELINE, {}, iteration(selected=0, minutes=60, tests=100), cores=2),
            pool_row("after", {}, iteration(selected=2, minutes=30, tests=100), cores=2),
        ]
    )
    assert rows[1]["selected_per_core_hour_vs_before"] is None
    assert (
        with_ratios([pool_row("after", {}, iteration(1, 30, 10), cores=2)])[0]["core_hours_vs_before"] is None
    )


def test_the_baseline_turns_off_what_was_built_for_yield() -> None:
    # The names must be the testsynth settings' environment variables, or "before" is the defaults.
    from services.testsynth.app import TestSynthConfig
    from ucoder_common.config import env_name

    fields = {env_name("testsynth", f): f for f in ("repair_lines", "stall_rounds")}
    assert set(VARIANTS[BASELINE]) == set(fields)
    assert all(hasattr(TestSynthConfig(), f) for f in fields.values())
