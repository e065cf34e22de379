"""`make run` runs the loop with the efficacy experiment's settings (issue 14), on fewer problems.

The Makefile cannot import them, so this test keeps the two from drifting apart.
"""

from __future__ import annotations

import re
from pathlib import Path

from bench.efficacy import Budget

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def make_defaults() -> dict[str, str]:
    pattern = re.compile(r"^([A-Z_]+)[ \t]*\?=[ \t]*(.*?)[ \t]*$", re.MULTILINE)
    return dict(pattern.findall(MAKEFILE.read_text()))


def test_make_run_uses_the_experiments_settings() -> None:
    defaults, budget = make_defaults(), Budget()
    assert int(defaults["TESTS"]) == budget.tests
    assert int(defaults["SAMPLES"]) == budget.samples
    assert float(defaults["TEMPERATURE"]) == budget.temperature
    assert int(defaults["MAX_TOKENS"]) == budget.max_tokens
    # Empty: no --min-confidence, so the clusterer's calibrated default selects, as in the experiment.
    assert defaults["MIN_CONFIDENCE"] == "" and budget.min_confidence is None
    assert 1 <= int(defaults["PROBLEMS"]) < budget.problems
    recipe = MAKEFILE.read_text().split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert "$(if $(MIN_CONFIDENCE),--min-confidence $(MIN_CONFIDENCE))" in recipe
    assert "--max-tokens $(MAX_TOKENS)" in recipe
