"""The orchestrator's view of likely invalid tests: outcome kinds of a problem's results -> test ids."""

from __future__ import annotations

from services.orchestrator import core
from ucoder_common.pb import common_pb2, orchestrator_pb2

RETURNED = common_pb2.OUTCOME_KIND_RETURNED


def state(rows: list[list[int]], num_tests: int = 3) -> orchestrator_pb2.ProblemState:
    ps = orchestrator_pb2.ProblemState(
        tests=[common_pb2.TestCase(test_id=f"p-t{i}", args_literal=f"({i},)") for i in range(num_tests)]
    )
    for c, kinds in enumerate(rows):
        ps.results.add(candidate_id=f"c{c}", outcomes=[common_pb2.TestOutcome(kind=k) for k in kinds])
    return ps


def test_every_failure_kind_counts_and_ids_are_reported() -> None:
    raised, timeout, crashed = (
        common_pb2.OUTCOME_KIND_RAISED,
        common_pb2.OUTCOME_KIND_TIMEOUT,
        common_pb2.OUTCOME_KIND_CRASHED,
    )
    compile_error = common_pb2.OUTCOME_KIND_COMPILE_ERROR
    ps = state(
        [
            [RETURNED, raised, raised],
            [RETURNED, timeout, RETURNED],
            [RETURNED, crashed, raised],
            [compile_error] * 3,  # not evidence: failed everything
        ]
    )
    assert core.likely_invalid_test_ids(ps) == ["p-t1"]


def test_malformed_results_are_skipped_and_few_candidates_report_nothing() -> None:
    raised = common_pb2.OUTCOME_KIND_RAISED
    # Two well-formed informative candidates (below the minimum) and one result of the wrong length.
    ps = state([[RETURNED, raised, raised], [RETURNED, raised, RETURNED], [raised]])
    assert core.likely_invalid_test_ids(ps) == []
    ps.results.add(
        candidate_id="c9", outcomes=[common_pb2.TestOutcome(kind=k) for k in (RETURNED, raised, raised)]
    )
    assert core.likely_invalid_test_ids(ps) == ["p-t1"]
