"""Consensus selection (UCoder section 2.3), its ablation baselines and abstention, as pure logic.

For one problem, every candidate r has one outcome per test; e(r) (execution success) is the
share of tests on which the call returned, i.e. ran without error, and f(r) (perplexity) is
exp(-logprob / tokens). Candidates with equal *execution signatures* form a cluster.

**Signature modes** (both first-class): ``output`` — a canonical digest of the returned value per
input, as in AlphaCode / MBR-exec; needs no expected outputs — and ``pass`` — the paper's
pass/fail vector against the model's guessed outputs.

**Selection rules** (:class:`SelectionRule`; each picks at most one candidate):

* ``paper`` — the hierarchical rule. (1) Reliability filter e(r) >= ``rho``; (2) the largest
  cluster of the rest, which must have at least ``tau`` members (ties between equally large
  clusters go to the higher mean e(r), then the lower mean perplexity, then the smaller
  signature, so the result is deterministic); (3) inside it max e(r), then lowest perplexity,
  then the smallest candidate id.
* The paper's ablation baselines (Table 3). "Successful" means e(r) >= ``rho``.

  - ``random`` — uniformly random among successful candidates, seeded from the problem id
    (SHA-256, so the same problem gets the same pick in every process).
  - ``cluster`` — the dominant cluster with *no* reliability filter: every candidate that
    returned on at least one test (a candidate that never returned has no output to hash);
    ``tau`` and the order inside the cluster as in ``paper``.
  - ``low_ppl`` — the lowest perplexity among successful candidates (then max e(r), then id).
  - ``success_rate`` — among candidates with e(r) >= 0.5 (instead of ``rho``), the highest
    e(r), then the lowest perplexity, then id.

**reject_constant** (``output`` mode, problems with >= 2 tests): a cluster whose members return
the *same* value for every input is never picked (``paper`` and ``cluster`` skip it and take the
next; the other rules leave its members out). On a weak model the most common agreement is
degenerate — ``return 0``, ``return []``, a body that is only the docstring (``None``) — and it
easily outnumbers the correct solutions, which agree with each other less often. Real problems
whose tests all share one output exist but are rare and mostly mean the tests are weak. Its
``pass``-mode counterpart: a cluster that passes *no* test is never picked (any number of tests).
Every program that disagrees with all of the model's guessed outputs shares the all-fail vector,
so wrong programs of every kind pool into one cluster that out-votes the correct one: on
bench/consensus.py's known-answer pools ``paper-pass`` picked it on most problems.

**Confidence** (:func:`consensus_confidence`), from Theorem 2.4: with n candidates, |T| tests,
at least k correct with probability >= 1 - delta, and any two incorrect implementations
agreeing on one test with probability <= p, P(the largest cluster holds only correct ones)
>= 1 - delta - n^2 p^|T|. Per problem, with the quantities the clusterer sees::

    confidence = clamp(1 - delta_hat - n^2 * p_hat^|T|, 0, 1)

* ``n`` — the candidates the rule clustered (its pool after the filters above);
* ``delta_hat`` — the margin term, a one-sided sign test between the chosen cluster (size
  c1) and the largest other cluster (c2): ``P[Binomial(c1 + c2, 1/2) >= c1]``, the chance of a
  lead at least this large if the two behaviours were equally likely. A tie gives >= 1/2, a
  cluster with no rival 2^-c1;
* ``p_hat`` — the observed per-test agreement between candidates of *different* clusters
  (pairs counted by candidate), at least :data:`AGREEMENT_FLOOR` (0.1: a few pairs that never
  agree are no proof that tests separate any two programs); :data:`AGREEMENT_PRIOR` (0.5, a
  coin flip per test) when every candidate is in one cluster, since then nothing was observed.

It rises with the number of tests and the margin, and is low for one cluster on one test
(n^2 / 2 >= 1 for n >= 2). It is an estimate, not a bound: the theorem assumes incorrect
programs agree independently per test, and a weak model's common mistakes are not independent.

**Abstention** (:class:`Abstention`; each withholds the rule's pick, never changes it, so a
benchmark can select once with abstention off and sweep a threshold over ``confidence``):

* ``trivial_body`` (``reject_trivial``) — every member of the chosen cluster only passes,
  returns a constant or one of its parameters unchanged, or raises: an echo of the input or a
  stub that happens to agree is not a solution worth training on;
* ``near_constant`` — the chosen candidate returns one value on at least this share of the
  tests (0 disables): the outputs barely depend on the input (``return False`` that is right on
  most boolean tests), the near-miss of ``reject_constant``;
* ``min_confidence`` — confidence below this (0 disables);
* ``min_distinct`` — the chosen cluster holds fewer *distinct programs* than this (0 disables).
  Programs are compared by :func:`program_key` (the AST without docstrings, so formatting and
  comments do not count). A small model at T=0.8 samples the very same wrong body again and
  again; copies of one program agree by construction and are no independent evidence, while
  Theorem 2.4 counts them as such. ``SelectionResult.distinct_confidence`` is the same estimate
  with every cluster counted in distinct programs;
* ``min_share`` — the chosen cluster holds less than this share of *all* candidates given
  (eligible or not; 0 disables). The sign test behind ``confidence`` compares the cluster only
  with the runner-up, so 6 agreeing of 32 samples against singletons looks safe; on the
  default model's pools such thin pluralities were nearly always wrong (measured by
  bench/consensus.py, README "Consensus benchmark").

No I/O and no third-party imports.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

__all__ = [
    "AGREEMENT_FLOOR",
    "AGREEMENT_PRIOR",
    "DEFAULT_MIN_CONFIDENCE",
    "DEFAULT_NEAR_CONSTANT",
    "OUTCOME_KINDS",
    "SUCCESS_RATE_THRESHOLD",
    "Abstention",
    "Cluster",
    "Clustering",
    "Outcome",
    "ScoredCandidate",
    "SelectionResult",
    "SelectionRule",
    "SignatureMode",
    "agreement_rate",
    "cluster_candidates",
    "consensus_confidence",
    "execution_success",
    "is_trivial",
    "lead_risk",
    "perplexity",
    "program_key",
    "select",
    "signature",
]

#: The outcome kinds the executor reports (see OutcomeKind in common.proto).
OUTCOME_KINDS = frozenset(
    {"returned", "raised", "timeout", "memory", "output_limit", "compile_error", "crashed"}
)

#: The ``success_rate`` baseline's threshold on e(r) (the paper's ">= 0.5").
SUCCESS_RATE_THRESHOLD = 0.5
#: Least estimate of the per-test agreement p of two different behaviours.
AGREEMENT_FLOOR = 0.1
#: The estimate of p when every candidate is in one cluster (no pair of different behaviours).
AGREEMENT_PRIOR = 0.5
#: The service's default ``min_confidence`` (docs/design.md, "Consensus selection", says why).
DEFAULT_MIN_CONFIDENCE = 0.95
#: The service's default ``near_constant`` share.
DEFAULT_NEAR_CONSTANT = 0.9

# Slack for comparing e(r) = k/n with rho, so that 4/5 >= 0.8 however it rounds.
_EPS = 1e-9
# A test a candidate has no outcome for (fewer outcomes than the problem has tests).
_MISSING = "!missing"


class SelectionRule(StrEnum):
    """Which candidate is picked (see the module docstring)."""

    PAPER = "paper"
    RANDOM = "random"
    CLUSTER = "cluster"
    LOW_PPL = "low_ppl"
    SUCCESS_RATE = "success_rate"


class Abstention(StrEnum):
    """Why a pick was withheld (see the module docstring)."""

    TRIVIAL_BODY = "trivial_body"
    NEAR_CONSTANT = "near_constant"
    MIN_CONFIDENCE = "min_confidence"
    MIN_DISTINCT = "min_distinct"
    MIN_SHARE = "min_share"


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
class Cluster:
    """Candidates with one signature; ``success`` and ``perplexity`` are their means."""

    signature: tuple[str, ...]
    members: tuple[ScoredCandidate, ...]
    success: float
    perplexity: float
    constant: bool
    """Skipped by ``reject_constant``: every test returned the same value (``output`` mode), or
    no test passed (``pass`` mode)."""

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class Clustering:
    """A pool of candidates grouped by signature.

    ``clusters`` are all clusters of the pool, ``considered`` those not skipped by
    ``reject_constant``; both in selection order (size, mean e(r), mean perplexity, signature),
    so ``considered[0]`` is the cluster the ``paper`` rule takes.
    """

    num_tests: int
    success: Mapping[str, float]
    pool: tuple[ScoredCandidate, ...]
    clusters: tuple[Cluster, ...]
    considered: tuple[Cluster, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Sizes of all clusters of the pool, largest first."""
        return tuple(sorted((c.size for c in self.clusters), reverse=True))


@dataclass(frozen=True)
class SelectionResult:
    """The decision for one problem.

    ``cluster_size`` is the size of the chosen candidate's cluster, or of the one the rule
    would have used when nothing was selected (0 when there was none); ``num_clusters`` and
    ``cluster_sizes`` (largest first) cover all clusters of the rule's pool, skipped constant
    ones included; ``execution_success`` is e(r) of the chosen candidate (0.0 when none);
    ``reason`` says why nothing was selected ("" when something was). ``confidence`` and
    ``margin`` (its size minus the largest other cluster's) describe the picked cluster, also
    when an abstention rule withheld it (``abstained`` names that rule); 0 without a pick.
    ``distinct`` is the number of distinct programs in that cluster and ``distinct_confidence``
    the confidence with every cluster counted in distinct programs (see ``min_distinct``).
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
    rule: str = SelectionRule.PAPER.value
    confidence: float = 0.0
    margin: int = 0
    abstained: str = ""
    # Diagnostics derived from the chosen cluster, left out of ==: two results are the same
    # decision when the fields above agree.
    distinct: int = field(default=0, compare=False)
    distinct_confidence: float = field(default=0.0, compare=False)
    share: float = field(default=0.0, compare=False)
    """The chosen cluster's size over all candidates given (see ``min_share``)."""


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


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _successes(candidates: Sequence[ScoredCandidate], num_tests: int) -> dict[str, float]:
    """e(r) per candidate over ``num_tests`` (missing outcomes count as failures)."""
    return {
        c.candidate_id: sum(1 for o in c.outcomes if o.kind == "returned") / num_tests for c in candidates
    }


def _is_constant(sig: tuple[str, ...], candidates: Sequence[ScoredCandidate]) -> bool:
    """Every test returned, and returned the same value."""
    if len(set(sig)) != 1:
        return False
    return all(outcome.kind == "returned" for outcome in candidates[0].outcomes)


def _cluster_pool(
    pool: Sequence[ScoredCandidate],
    success: Mapping[str, float],
    num_tests: int,
    mode: SignatureMode,
    reject_constant: bool,
) -> Clustering:
    groups: dict[tuple[str, ...], list[ScoredCandidate]] = {}
    for c in pool:
        groups.setdefault(signature(c.outcomes, mode), []).append(c)
    check_constant = reject_constant and mode is SignatureMode.OUTPUT and num_tests >= 2
    check_all_fail = reject_constant and mode is SignatureMode.PASS
    clusters = sorted(
        (
            Cluster(
                signature=sig,
                members=tuple(members),
                success=_mean([success[m.candidate_id] for m in members]),
                perplexity=_mean([perplexity(m) for m in members]),
                constant=(check_constant and _is_constant(sig, members))
                or (check_all_fail and "1" not in sig),
            )
            for sig, members in groups.items()
        ),
        key=lambda c: (-c.size, -c.success, c.perplexity, c.signature),
    )
    return Clustering(
        num_tests=num_tests,
        success=success,
        pool=tuple(pool),
        clusters=tuple(clusters),
        considered=tuple(c for c in clusters if not c.constant),
    )


def cluster_candidates(
    candidates: Sequence[ScoredCandidate],
    rho: float = 0.8,
    mode: SignatureMode = SignatureMode.OUTPUT,
    reject_constant: bool = True,
) -> Clustering:
    """The ``paper`` rule's clustering: candidates with e(r) >= rho, grouped by signature.

    The number of tests is the longest outcome tuple; a candidate with fewer outcomes counts
    the missing ones as failures. With no tests the pool is empty. Adaptive sampling
    (:func:`services.clusterer.adaptive.observe`) reads the same clustering.
    """
    mode = SignatureMode(mode)
    num_tests = max((len(c.outcomes) for c in candidates), default=0)
    if num_tests == 0:
        return Clustering(0, {}, (), (), ())
    success = _successes(candidates, num_tests)
    pool = [c for c in candidates if success[c.candidate_id] >= rho - _EPS]
    return _cluster_pool(pool, success, num_tests, mode, reject_constant)


# ---------------------------------------------------------------------------------------------
# Confidence (Theorem 2.4)


def lead_risk(chosen: int, runner_up: int) -> float:
    """delta_hat = P[Binomial(chosen + runner_up, 1/2) >= chosen]: a one-sided sign test."""
    if chosen < 0 or runner_up < 0:
        raise ValueError(f"cluster sizes must be >= 0, got {chosen} and {runner_up}")
    total = chosen + runner_up
    tail = sum(math.comb(total, i) for i in range(chosen, total + 1))
    return tail / (1 << total)  # exact big-integer division: no overflow for a thousand samples


def agreement_rate(clusters: Sequence[Cluster], num_tests: int) -> float | None:
    """The share of (pair, test) agreements over pairs of candidates in different clusters.

    None when there is no such pair (one cluster) or no test. A test a candidate has no
    outcome for counts as its own value ``"!missing"``.
    """
    sizes = [c.size for c in clusters]
    total = sum(sizes)
    within = sum(math.comb(s, 2) for s in sizes)
    cross = math.comb(total, 2) - within
    if cross == 0 or num_tests <= 0:
        return None
    agree = 0
    for t in range(num_tests):
        counts: Counter[str] = Counter()
        for c in clusters:
            counts[c.signature[t] if t < len(c.signature) else _MISSING] += c.size
        agree += sum(math.comb(k, 2) for k in counts.values()) - within
    return agree / (cross * num_tests)


def consensus_confidence(chosen: int, runner_up: int, pool: int, num_tests: int, agreement: float) -> float:
    """clamp(1 - lead_risk(chosen, runner_up) - pool^2 * agreement^num_tests, 0, 1).

    ``chosen`` and ``runner_up`` are cluster sizes, ``pool`` the candidates clustered,
    ``agreement`` the estimate p_hat (already floored; see the module docstring).
    """
    if num_tests < 0 or pool < 0:
        raise ValueError(f"num_tests and pool must be >= 0, got {num_tests} and {pool}")
    if not 0.0 <= agreement <= 1.0:
        raise ValueError(f"agreement must be in [0, 1], got {agreement}")
    collision = pool**2 * agreement**num_tests
    return max(0.0, min(1.0, 1.0 - lead_risk(chosen, runner_up) - collision))


def _confidence(clustering: Clustering, chosen: Cluster) -> tuple[float, int]:
    """(confidence, margin) of ``chosen`` among the considered clusters of ``clustering``."""
    considered = clustering.considered
    runner_up = max((c.size for c in considered if c is not chosen), default=0)
    observed = agreement_rate(considered, clustering.num_tests)
    p_hat = AGREEMENT_PRIOR if observed is None else max(AGREEMENT_FLOOR, observed)
    pool = sum(c.size for c in considered)
    value = consensus_confidence(chosen.size, runner_up, pool, clustering.num_tests, p_hat)
    return value, chosen.size - runner_up


def _distinct_confidence(clustering: Clustering, chosen: Cluster) -> tuple[float, int]:
    """(confidence, distinct programs of ``chosen``) with clusters counted in distinct programs."""
    counts = {id(c): len({program_key(m.code) for m in c.members}) for c in clustering.considered}
    mine = counts[id(chosen)]
    runner_up = max((n for key, n in counts.items() if key != id(chosen)), default=0)
    observed = agreement_rate(clustering.considered, clustering.num_tests)
    p_hat = AGREEMENT_PRIOR if observed is None else max(AGREEMENT_FLOOR, observed)
    value = consensus_confidence(mine, runner_up, sum(counts.values()), clustering.num_tests, p_hat)
    return value, mine


# ---------------------------------------------------------------------------------------------
# Abstention signals


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            body = node.body
            first = body[0].value if body and isinstance(body[0], ast.Expr) else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                node.body = body[1:] or [ast.Pass()]


@functools.lru_cache(maxsize=4096)  # a pool's candidates are keyed once per selection otherwise
def program_key(code: str) -> str:
    """A key equal for programs that differ only in formatting, comments and docstrings.

    The text itself (stripped) when it does not parse.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return code.strip()
    _strip_docstrings(tree)
    return ast.dump(tree)


def _trivial_function(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    body = list(func.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    if not body:
        return True
    if len(body) > 1:
        return False
    stmt = body[0]
    if isinstance(stmt, ast.Pass | ast.Raise):
        return True
    if isinstance(stmt, ast.Expr):  # `...` or another bare constant
        return isinstance(stmt.value, ast.Constant)
    if isinstance(stmt, ast.Return):
        params = {a.arg for a in (*func.args.posonlyargs, *func.args.args, *func.args.kwonlyargs)}
        value = stmt.value
        return (
            value is None
            or isinstance(value, ast.Constant)
            or (isinstance(value, ast.Name) and value.id in params)
        )
    return False


def is_trivial(code: str) -> bool:
    """Every top-level function only passes, returns a constant or a parameter, or raises.

    False when the code does not parse or defines no function (nothing to judge).
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    funcs = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    return bool(funcs) and all(_trivial_function(f) for f in funcs)


def _modal_share(outcomes: Sequence[Outcome], num_tests: int) -> tuple[int, float]:
    """(count, share) of the most common output entry over ``num_tests`` tests."""
    entries = list(signature(outcomes, SignatureMode.OUTPUT))
    entries += [_MISSING] * (num_tests - len(entries))
    count = Counter(entries).most_common(1)[0][1] if entries else 0
    return count, count / num_tests if num_tests else 0.0


# ---------------------------------------------------------------------------------------------
# Selection


def _check_fraction(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")


def _seeded_rng(problem_id: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(problem_id.encode()).digest()[:8], "big"))


def select(
    candidates: Sequence[ScoredCandidate],
    rho: float = 0.8,
    tau: int = 2,
    mode: SignatureMode = SignatureMode.OUTPUT,
    reject_constant: bool = True,
    *,
    rule: SelectionRule | str = SelectionRule.PAPER,
    min_confidence: float = 0.0,
    near_constant: float = 0.0,
    reject_trivial: bool = False,
    min_distinct: int = 0,
    min_share: float = 0.0,
    problem_id: str = "",
) -> SelectionResult:
    """Pick a candidate by ``rule``, then apply the abstention rules (see the module docstring).

    ``rho``, ``min_confidence`` and ``near_constant`` must lie in [0, 1], ``tau`` be >= 1 and
    ``rule`` and ``mode`` known values (``ValueError`` otherwise). ``problem_id`` seeds the
    ``random`` rule. The defaults are the paper's rule with ``reject_constant`` and no
    abstention; the service's come from its configuration (``DEFAULT_MIN_CONFIDENCE``,
    ``DEFAULT_NEAR_CONSTANT`` and ``reject_trivial`` on, see ClustererConfig).
    """
    _check_fraction("rho", rho)
    if isinstance(tau, bool) or not isinstance(tau, int) or tau < 1:
        raise ValueError(f"tau must be an integer >= 1, got {tau!r}")
    try:
        mode = SignatureMode(mode)
    except ValueError:
        raise ValueError(f"mode must be one of {[m.value for m in SignatureMode]}, got {mode!r}") from None
    try:
        rule = SelectionRule(rule)
    except ValueError:
        raise ValueError(f"rule must be one of {[r.value for r in SelectionRule]}, got {rule!r}") from None
    _check_fraction("min_confidence", min_confidence)
    _check_fraction("near_constant", near_constant)
    _check_fraction("min_share", min_share)
    if isinstance(min_distinct, bool) or not isinstance(min_distinct, int) or min_distinct < 0:
        raise ValueError(f"min_distinct must be an integer >= 0, got {min_distinct!r}")

    def nothing(
        reason: str,
        clustering: Clustering | None = None,
        cluster: Cluster | None = None,
        abstained: str = "",
    ) -> SelectionResult:
        # A skipped constant cluster gets none: it was never a pick.
        confidence, margin, distinct, distinct_confidence = 0.0, 0, 0, 0.0
        if (
            clustering is not None
            and cluster is not None
            and any(cluster is c for c in clustering.considered)
        ):
            confidence, margin = _confidence(clustering, cluster)
            distinct_confidence, distinct = _distinct_confidence(clustering, cluster)
        return SelectionResult(
            selected=False,
            candidate_id="",
            code="",
            cluster_size=cluster.size if cluster else 0,
            num_clusters=len(clustering.clusters) if clustering else 0,
            eligible=len(clustering.pool) if clustering else 0,
            execution_success=0.0,
            reason=reason,
            cluster_sizes=clustering.sizes if clustering else (),
            rule=rule.value,
            confidence=confidence,
            margin=margin,
            abstained=abstained,
            distinct=distinct,
            distinct_confidence=distinct_confidence,
            share=cluster.size / len(candidates) if cluster is not None and candidates else 0.0,
        )

    if not candidates:
        return nothing("no candidates")
    num_tests = max(len(c.outcomes) for c in candidates)
    if num_tests == 0:
        return nothing("no tests")
    success = _successes(candidates, num_tests)

    # Each rule's pool: who may be picked.
    if rule is SelectionRule.CLUSTER:
        pool = [c for c in candidates if success[c.candidate_id] > 0.0]
        empty = "no candidate returned on any test"
    elif rule is SelectionRule.SUCCESS_RATE:
        pool = [c for c in candidates if success[c.candidate_id] >= SUCCESS_RATE_THRESHOLD - _EPS]
        empty = f"no candidate reached execution success {SUCCESS_RATE_THRESHOLD}"
    else:
        pool = [c for c in candidates if success[c.candidate_id] >= rho - _EPS]
        empty = f"no candidate reached execution success rho={rho}"
    clustering = _cluster_pool(pool, success, num_tests, mode, reject_constant)
    if not pool:
        return nothing(empty)
    if not clustering.considered:
        return nothing(
            f"all {len(clustering.clusters)} clusters return one constant value (reject_constant)",
            clustering,
            clustering.clusters[0],
        )
    skipped = len(clustering.clusters) - len(clustering.considered)

    def best_inside(members: Sequence[ScoredCandidate]) -> ScoredCandidate:
        return min(members, key=lambda m: (-success[m.candidate_id], perplexity(m), m.candidate_id))

    if rule in (SelectionRule.PAPER, SelectionRule.CLUSTER):
        chosen_cluster = clustering.considered[0]
        if chosen_cluster.size < tau:
            reason = f"largest cluster has size {chosen_cluster.size} < tau={tau}"
            if skipped:
                reason += f" ({skipped} constant-output clusters skipped)"
            return nothing(reason, clustering, chosen_cluster)
        chosen = best_inside(chosen_cluster.members)
    else:
        picks = sorted((m for c in clustering.considered for m in c.members), key=lambda m: m.candidate_id)
        if rule is SelectionRule.RANDOM:
            chosen = _seeded_rng(problem_id).choice(picks)
        elif rule is SelectionRule.LOW_PPL:
            chosen = min(picks, key=lambda m: (perplexity(m), -success[m.candidate_id], m.candidate_id))
        else:  # SUCCESS_RATE
            chosen = best_inside(picks)
        chosen_cluster = next(c for c in clustering.considered if any(m is chosen for m in c.members))

    confidence, margin = _confidence(clustering, chosen_cluster)
    distinct_confidence, distinct = _distinct_confidence(clustering, chosen_cluster)
    if reject_trivial and all(is_trivial(m.code) for m in chosen_cluster.members):
        return nothing(
            f"abstained (trivial_body): all {chosen_cluster.size} members of the cluster only pass, "
            "return a constant or a parameter, or raise",
            clustering,
            chosen_cluster,
            Abstention.TRIVIAL_BODY.value,
        )
    if near_constant > 0.0 and num_tests >= 2:
        count, share = _modal_share(chosen.outcomes, num_tests)
        if share >= near_constant - _EPS:
            return nothing(
                f"abstained (near_constant): one value on {count}/{num_tests} tests "
                f"(near_constant={near_constant:g})",
                clustering,
                chosen_cluster,
                Abstention.NEAR_CONSTANT.value,
            )
    if confidence < min_confidence - _EPS:
        return nothing(
            f"abstained (min_confidence): confidence {confidence:.3f} < {min_confidence:g} "
            f"(cluster {chosen_cluster.size} vs {chosen_cluster.size - margin}, {num_tests} tests)",
            clustering,
            chosen_cluster,
            Abstention.MIN_CONFIDENCE.value,
        )
    if distinct < min_distinct:
        return nothing(
            f"abstained (min_distinct): the cluster holds {distinct} distinct programs "
            f"< min_distinct={min_distinct}",
            clustering,
            chosen_cluster,
            Abstention.MIN_DISTINCT.value,
        )
    share = chosen_cluster.size / len(candidates)
    if share < min_share - _EPS:
        return nothing(
            f"abstained (min_share): the cluster holds {chosen_cluster.size} of {len(candidates)} "
            f"candidates ({share:.2f} < min_share={min_share:g})",
            clustering,
            chosen_cluster,
            Abstention.MIN_SHARE.value,
        )
    return SelectionResult(
        selected=True,
        candidate_id=chosen.candidate_id,
        code=chosen.code,
        cluster_size=chosen_cluster.size,
        num_clusters=len(clustering.clusters),
        eligible=len(clustering.pool),
        execution_success=success[chosen.candidate_id],
        reason="",
        cluster_sizes=clustering.sizes,
        rule=rule.value,
        confidence=confidence,
        margin=margin,
        distinct=distinct,
        distinct_confidence=distinct_confidence,
        share=share,
    )
