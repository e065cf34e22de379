"""Consensus selection: the paper's hierarchical rule (UCoder section 2.3), as pure logic.

For one problem, every candidate r has one outcome per test. Then:

1. **Reliability filter** — keep candidates whose execution success
   e(r) (the share of tests on which the call returned, i.e. ran without error)
   is at least ``rho``.
2. **Consensus** — group the kept candidates by their execution signature and take
   the largest group; it must have at least ``tau`` members. Ties between equally
   large groups go to the higher mean e(r), then the lower mean perplexity, then
   the smaller signature (so the result is deterministic).
3. **Inside the group** — pick max e(r), then the lowest perplexity
   f(r) = exp(-logprob / tokens), then the smallest candidate id.

Two signature modes: ``OUTPUT`` (a canonical digest of the returned value per input,
as in AlphaCode / MBR-exec; needs no expected outputs) and ``PASS`` (the paper's
pass/fail vector against the model's guessed outputs).

``reject_constant`` (OUTPUT mode, problems with >= 2 tests): a group whose members
return the *same* value for every input is skipped. On a weak model the most common
agreement is degenerate — ``return 0``, ``return []``, a body that is only the
docstring (``None``) — and it easily outnumbers the correct solutions, which agree
with each other less often. Real problems whose tests all share one output exist
but are rare and mostly mean the tests are weak, so losing them costs little.

No I/O and no third-party imports.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "OUTCOME_KINDS",
    "Outcome",
    "ScoredCandidate",
    "SelectionResult",
    "SignatureMode",
    "execution_success",
    "perplexity",
    "select",
    "signature",
]

#: The outcome kinds the executor reports (see OutcomeKind in common.proto).
OUTCOME_KINDS = frozenset(
    {"returned", "raised", "timeout", "memory", "output_limit", "compile_error", "crashed"}
)

# Slack for comparing e(r) = k/n with rho, so that 4/5 >= 0.8 however it rounds.
_EPS = 1e-9


@dataclass(frozen=True)
class Outcome:
    """The outcome of one candidate on one test.

    ``kind`` is one of :data:`OUTCOME_KINDS`; ``value_digest`` is set when the call
    returned, ``exception_type`` when it raised; ``passed`` says whether the value
    equals the test's expected output (false when the test has none).
    """

    kind: str
    value_digest: str = ""
    exception_type: str = ""
    passed: bool = False


@dataclass(frozen=True)
class ScoredCandidate:
    """A candidate with its outcomes (one per test, in test order) and its sampling score."""

    candidate_id: str
    code: str
    outcomes: tuple[Outcome, ...]
    cumulative_logprob: float
    num_tokens: int


class SignatureMode(StrEnum):
    """How candidates are grouped: by output digests, or by pass/fail vectors."""

    OUTPUT = "output"
    PASS = "pass"


@dataclass(frozen=True)
class SelectionResult:
    """The decision for one problem.

    ``cluster_size`` is the size of the chosen cluster, or of the largest one
    considered when nothing was selected (0 when nothing was eligible);
    ``num_clusters`` and ``cluster_sizes`` (largest first) cover all clusters of
    eligible candidates, skipped constant ones included; ``execution_success`` is
    e(r) of the chosen candidate (0.0 when none); ``reason`` says why nothing was
    selected ("" when something was).
    """

    selected: bool
    candidate_id: str
    code: str
    cluster_size: int
    num_clusters: int
    eligible: int
    execution_success: float
    reason: str
    cluster_sizes: tuple[int, ...]


def execution_success(outcomes: Sequence[Outcome]) -> float:
    """e(r): the share of tests whose call returned (ran without error); 0.0 with no tests."""
    if not outcomes:
        return 0.0
    return sum(1 for outcome in outcomes if outcome.kind == "returned") / len(outcomes)


def signature(outcomes: Sequence[Outcome], mode: SignatureMode) -> tuple[str, ...]:
    """The execution signature of a candidate.

    OUTPUT: per test the value digest when the call returned, ``"!" + exception type``
    when it raised, ``"!" + kind`` otherwise (``"!timeout"``, ``"!memory"``, ...).
    PASS: per test ``"1"`` when it passed, else ``"0"``.
    """
    mode = SignatureMode(mode)
    if mode is SignatureMode.PASS:
        return tuple("1" if outcome.passed else "0" for outcome in outcomes)
    entries: list[str] = []
    for outcome in outcomes:
        if outcome.kind == "returned":
            entries.append(outcome.value_digest)
        elif outcome.kind == "raised":
            entries.append("!" + outcome.exception_type)
        else:
            entries.append("!" + outcome.kind)
    return tuple(entries)


def perplexity(candidate: ScoredCandidate) -> float:
    """f(r) = exp(-cumulative_logprob / max(num_tokens, 1)); +inf on overflow or NaN."""
    try:
        value = math.exp(-candidate.cumulative_logprob / max(candidate.num_tokens, 1))
    except OverflowError:
        return math.inf
    return math.inf if math.isnan(value) else value


def _is_constant(sig: tuple[str, ...], candidates: Sequence[ScoredCandidate]) -> bool:
    """Every test returned, and returned the same value."""
    if len(set(sig)) != 1:
        return False
    return all(outcome.kind == "returned" for outcome in candidates[0].outcomes)


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def select(
    candidates: Sequence[ScoredCandidate],
    rho: float = 0.8,
    tau: int = 2,
    mode: SignatureMode = SignatureMode.OUTPUT,
    reject_constant: bool = True,
) -> SelectionResult:
    """Hierarchical consensus selection (see the module docstring).

    ``rho`` must lie in [0, 1] and ``tau`` be >= 1 (``ValueError`` otherwise). The
    number of tests is the longest outcome tuple; e(r) of a candidate with fewer
    outcomes counts the missing ones as failures.
    """
    if isinstance(rho, bool) or not isinstance(rho, int | float) or not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be a number in [0, 1], got {rho!r}")
    if isinstance(tau, bool) or not isinstance(tau, int) or tau < 1:
        raise ValueError(f"tau must be an integer >= 1, got {tau!r}")
    try:
        mode = SignatureMode(mode)
    except ValueError:
        raise ValueError(f"mode must be one of {[m.value for m in SignatureMode]}, got {mode!r}") from None

    def nothing(
        reason: str, cluster_size: int = 0, sizes: tuple[int, ...] = (), eligible: int = 0
    ) -> SelectionResult:
        return SelectionResult(
            selected=False,
            candidate_id="",
            code="",
            cluster_size=cluster_size,
            num_clusters=len(sizes),
            eligible=eligible,
            execution_success=0.0,
            reason=reason,
            cluster_sizes=sizes,
        )

    if not candidates:
        return nothing("no candidates")
    num_tests = max(len(c.outcomes) for c in candidates)
    if num_tests == 0:
        return nothing("no tests")

    success = {
        c.candidate_id: sum(1 for o in c.outcomes if o.kind == "returned") / num_tests for c in candidates
    }
    eligible = [c for c in candidates if success[c.candidate_id] >= rho - _EPS]
    if not eligible:
        return nothing(f"no candidate reached execution success rho={rho}")

    clusters: dict[tuple[str, ...], list[ScoredCandidate]] = {}
    for c in eligible:
        clusters.setdefault(signature(c.outcomes, mode), []).append(c)
    sizes = tuple(sorted((len(members) for members in clusters.values()), reverse=True))

    considered = clusters
    skipped = 0
    if reject_constant and mode is SignatureMode.OUTPUT and num_tests >= 2:
        considered = {sig: members for sig, members in clusters.items() if not _is_constant(sig, members)}
        skipped = len(clusters) - len(considered)
        if not considered:
            return nothing(
                f"all {len(clusters)} clusters return one constant value (reject_constant)",
                cluster_size=sizes[0],
                sizes=sizes,
                eligible=len(eligible),
            )

    def cluster_key(
        item: tuple[tuple[str, ...], list[ScoredCandidate]],
    ) -> tuple[int, float, float, tuple[str, ...]]:
        sig, members = item
        return (
            -len(members),
            -_mean([success[m.candidate_id] for m in members]),
            _mean([perplexity(m) for m in members]),
            sig,
        )

    _, best_members = min(considered.items(), key=cluster_key)
    if len(best_members) < tau:
        reason = f"largest cluster has size {len(best_members)} < tau={tau}"
        if skipped:
            reason += f" ({skipped} constant-output clusters skipped)"
        return nothing(reason, cluster_size=len(best_members), sizes=sizes, eligible=len(eligible))

    chosen = min(best_members, key=lambda m: (-success[m.candidate_id], perplexity(m), m.candidate_id))
    return SelectionResult(
        selected=True,
        candidate_id=chosen.candidate_id,
        code=chosen.code,
        cluster_size=len(best_members),
        num_clusters=len(clusters),
        eligible=len(eligible),
        execution_success=success[chosen.candidate_id],
        reason="",
        cluster_sizes=sizes,
    )
