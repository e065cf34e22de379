"""The statistics of bench/efficacy.py, as pure functions: pass@1 per problem and bootstrap CIs.

* :func:`pass_rates`: per problem, the unbiased pass@k estimate from its n sampled completions
  (:func:`ucoder_common.evaluation.pass_at_k`; for k = 1 it is c / n);
* :func:`bootstrap_ci`: the mean over problems with a percentile bootstrap interval;
* :func:`paired_bootstrap_ci`: the difference of two versions' means over the *same* problems,
  resampling problems (the pair moves together), so that problem difficulty, which both versions
  share, does not widen the interval of their difference.

Resampling is seeded, so the same inputs give the same interval in every run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ucoder_common.evaluation import pass_at_k

DEFAULT_RESAMPLES = 10_000
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    estimate: float
    """The statistic on the data itself (the mean, or the mean difference)."""
    low: float
    high: float
    level: float
    """Two-sided coverage, e.g. 0.95."""
    n: int
    """Problems it rests on."""

    def excludes_zero(self) -> bool:
        return self.low > 0.0 or self.high < 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "estimate": self.estimate,
            "low": self.low,
            "high": self.high,
            "level": self.level,
            "n": self.n,
        }


def pass_rates(verdicts: Mapping[str, Sequence[bool]], k: int = 1) -> dict[str, float]:
    """Per problem, pass@k estimated from its completions' verdicts (ValueError for k > n)."""
    return {task: pass_at_k(len(v), sum(v), k) for task, v in verdicts.items()}


def _check(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples: must be >= 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level: must be in (0, 1), got {level}")


def _percentile_interval(values: np.ndarray, resamples: int, seed: int, level: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[picks].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float], resamples: int = DEFAULT_RESAMPLES, seed: int = 0, level: float = DEFAULT_LEVEL
) -> Interval:
    """The mean of ``values`` (one per problem) with a percentile bootstrap interval."""
    _check(resamples, level)
    if not values:
        raise ValueError("values: must not be empty")
    array = np.asarray(values, dtype=float)
    low, high = _percentile_interval(array, resamples, seed, level)
    return Interval(float(array.mean()), low, high, level, len(array))


def paired_bootstrap_ci(
    treated: Mapping[str, float],
    baseline: Mapping[str, float],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = DEFAULT_LEVEL,
) -> Interval:
    """Mean of ``treated[p] - baseline[p]`` over problems p, with a paired percentile bootstrap.

    Both must score the same problems (ValueError naming the first missing one otherwise).
    """
    _check(resamples, level)
    if not treated:
        raise ValueError("treated: must not be empty")
    for name, left, right in (("baseline", treated, baseline), ("treated", baseline, treated)):
        missing = [p for p in left if p not in right]
        if missing:
            raise ValueError(f"{name}: has no score for {missing[0]!r} ({len(missing)} problems missing)")
    tasks = sorted(treated)
    diffs = np.asarray([treated[t] - baseline[t] for t in tasks], dtype=float)
    low, high = _percentile_interval(diffs, resamples, seed, level)
    return Interval(float(diffs.mean()), low, high, level, len(diffs))
