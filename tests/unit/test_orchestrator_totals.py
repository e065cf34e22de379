"""core.derive_totals: an iteration's summary from its problems' state (issue 15: killed between a
problem's KV write and the iteration's, the orchestrator left totals short for good)."""

from __future__ import annotations

from services.orchestrator import core
from ucoder_common.pb import common_pb2, orchestrator_pb2

S = orchestrator_pb2


def problem(
    stage_done: int,
    *,
    tests: int = 0,
    candidates: int = 0,
    outcomes_each: int = 0,
    rounds: int = 0,
    selected: bool = False,
    failed_from: int = 0,
    rejected: dict[str, int] | None = None,
) -> orchestrator_pb2.ProblemState:
    ps = S.ProblemState(stage_done=stage_done, rounds=rounds)  # type: ignore[arg-type]
    ps.tests.extend(common_pb2.TestCase(test_id=f"t{i}") for i in range(tests))
    ps.candidates.extend(common_pb2.Candidate(candidate_id=f"c{i}") for i in range(candidates))
    for i in range(candidates if outcomes_each else 0):
        ps.results.add(candidate_id=f"c{i}").outcomes.extend(
            common_pb2.TestOutcome() for _ in range(outcomes_each)
        )
    ps.selection.selected = selected
    if failed_from:
        ps.error = "some stage: failed"
        ps.failed_from = failed_from  # type: ignore[assignment]
    ps.tests_rejected.update(rejected or {})
    return ps


def iteration(problems: int) -> orchestrator_pb2.Iteration:
    it = core.new_iteration(
        "it-1",
        core.validate_spec(
            S.IterationSpec(num_problems=problems, tests_per_problem=4, samples_per_problem=4), ""
        ),
        0,
    )
    for stage in core.PROBLEM_STAGES:
        core.stats(it, stage).total = problems
    return it


PROBLEMS = [
    # finished, selected: 3 tests, 4 candidates run on all 3
    problem(S.STAGE_CLUSTERING, tests=3, candidates=4, outcomes_each=3, selected=True, rejected={"type": 2}),
    # finished without consensus (its last, non-final decision had selected it: not counted)
    problem(S.STAGE_CLUSTERING, tests=2, candidates=4, outcomes_each=2, rejected={"type": 1, "syntax": 4}),
    # no valid test: failed at tests in the first round
    problem(S.STAGE_PROBLEMS, failed_from=S.STAGE_TESTS, rejected={"not_literal": 9}),
    # the sampler failed in the first round: done at tests, failed from sampling on
    problem(S.STAGE_TESTS, tests=1, failed_from=S.STAGE_SAMPLING),
    # a second round in flight (sampling and execution counted in the first), not final
    problem(S.STAGE_TESTS, tests=2, candidates=4, outcomes_each=2, rounds=1, selected=True),
    # failed in its second round: counts as failed from clustering only
    problem(
        S.STAGE_EXECUTION, tests=2, candidates=8, outcomes_each=2, rounds=1, failed_from=S.STAGE_CLUSTERING
    ),
]


def test_totals_and_stage_counts_come_from_the_problems() -> None:
    it = iteration(len(PROBLEMS))
    assert core.derive_totals(it, PROBLEMS)
    assert it.tests_kept == 3 + 2 + 0 + 1 + 2 + 2
    assert it.candidates == 4 + 4 + 4 + 8
    assert it.executions == 12 + 8 + 8 + 16
    assert it.selected == 1
    assert dict(it.tests_rejected) == {"type": 3, "syntax": 4, "not_literal": 9}
    done_failed = {
        core.stage_name(s): (core.stats(it, s).done, core.stats(it, s).failed) for s in core.PROBLEM_STAGES
    }
    assert done_failed == {
        "tests": (5, 1),
        "sampling": (4, 2),
        "execution": (4, 2),
        "clustering": (2, 3),
    }
    assert not core.stats(it, S.STAGE_CLUSTERING).finished_unix_ms  # 5 of 6 accounted for


def test_deriving_again_changes_nothing_and_a_finished_stage_is_stamped() -> None:
    it = iteration(len(PROBLEMS))
    core.derive_totals(it, PROBLEMS)
    assert not core.derive_totals(it, PROBLEMS)
    assert core.stats(it, S.STAGE_TESTS).finished_unix_ms  # 5 done + 1 failed of 6
