"""Tests that are likely invalid: every candidate that runs at all fails on them (stage 4).

A model-written input can break the problem's contract (a negative length, a list where the
docstring promises a non-empty one, a string for a number in an unannotated parameter).
Correct solutions then raise on it, and so does everything else; the test tells nothing
about behaviour. When every candidate that ran some test cleanly still fails on a test,
that test is reported as likely invalid. Pure logic, shared by the orchestrator and benches.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["MIN_CANDIDATES", "likely_invalid_tests"]

#: Fewer informative candidates than this are too little evidence to call a test invalid.
MIN_CANDIDATES = 3


def likely_invalid_tests(failed: Sequence[Sequence[bool]], min_candidates: int = MIN_CANDIDATES) -> list[int]:
    """Indices of the tests on which every informative candidate failed.

    ``failed[c][t]`` is True when candidate ``c`` did not return on test ``t`` (it raised,
    timed out, ran out of memory or output, crashed). A candidate that failed *every* test
    (it did not compile, or is broken throughout) says nothing about any one test and is left
    out; with fewer than ``min_candidates`` informative candidates nothing is reported (so a
    pool of broken candidates does not condemn the tests). Raises ``ValueError`` when the rows
    differ in length or ``min_candidates`` < 1.
    """
    if min_candidates < 1:
        raise ValueError(f"min_candidates must be >= 1, got {min_candidates}")
    if not failed:
        return []
    num_tests = len(failed[0])
    if any(len(row) != num_tests for row in failed):
        raise ValueError("every candidate needs one outcome per test")
    informative = [row for row in failed if not all(row)]
    if len(informative) < min_candidates:
        return []
    return [t for t in range(num_tests) if all(row[t] for row in informative)]
