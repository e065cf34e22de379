"""bench/test_lines.py's replay of test synthesis policies on cached completions (no stack).

The streams are written by hand, so what each policy asks and keeps is known; the bench runs the
service's own round loop (core.round_request) and parser on them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import test_lines
from ucoder_common.pb import common_pb2

PROMPT = (
    'def total(xs: list[int], k: int) -> int:\n    """Sum of xs times k.\n\n'
    '    >>> total([1, 2], 3)\n    9\n    """\n'
)
# Round 1's typical completions hold one plain call and one with a keyword (valid only repaired);
# every later one repeats the plain call, so without repairs the problem stalls one test short.
FIRST = "[1], 1) == 1\nassert total([2], k=2) == 4\n"
LATER = "[1], 1) == 1\n"
BOUNDARY = "[], 0) == 0\n"


def write_cache(path: Path, typical: list[str]) -> None:
    problem = common_pb2.Problem(problem_id="p0", entry_point="total", arity=2, prompt=PROMPT)
    streams = {"typical": [[t, 10] for t in typical], "boundary": [[BOUNDARY, 5]] * 16}
    entry = {"problem": problem.SerializeToString().hex(), "streams": streams}
    path.write_text(json.dumps({"problems": {"p0": entry}}))


def test_policies_replay_the_service_loop_on_the_same_completions(tmp_path: Path) -> None:
    cache, out = tmp_path / "completions.json", tmp_path / "out.json"
    write_cache(cache, [FIRST] * 3 + [LATER] * 13)
    argv = ["--completions", str(cache), "--tests", "4", "--max-rounds", "4", "--json", str(out)]
    assert test_lines.main(argv) == 0
    results = json.loads(out.read_text())
    before, repairs, stall, both = (results[p.name] for p in test_lines.POLICIES)
    # 3 typical + 1 boundary in round 1, then 4 typical a round: all 4 rounds without a stop.
    assert (before["completions"], before["tests_kept"], before["rounds"]) == (16, 3, 4)
    assert before["tokens"] == 15 * 10 + 5
    assert before["rejected"] == {"keywords": 3} and before["repaired"] == {}
    # The keyword call, repaired, is the missing test: done after round 1.
    assert (repairs["completions"], repairs["tests_kept"], repairs["rounds"]) == (4, 4, 1)
    assert repairs["repaired"] == {"keywords": 3} and repairs["problems_full"] == 1
    # Rounds 2 and 3 add nothing: the stall stop gives up before round 4, with the same tests.
    assert (stall["completions"], stall["tests_kept"], stall["rounds"]) == (12, 3, 3)
    assert (both["completions"], both["tests_kept"]) == (4, 4)
    assert results["_settings"] == {"tests": 4, "max_rounds": 4, "problems": 1}


def test_a_cache_too_short_for_the_replay_says_so(tmp_path: Path) -> None:
    cache = tmp_path / "completions.json"
    write_cache(cache, [LATER] * 5)
    with pytest.raises(SystemExit, match="the replay needs"):
        test_lines.main(["--completions", str(cache), "--tests", "4", "--max-rounds", "4"])


def test_bad_arguments_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert test_lines.main(["--completions", str(tmp_path / "missing.json")]) == 2
    assert test_lines.main(["--home", str(tmp_path)]) == 2
    assert test_lines.main(["--humaneval", "4"]) == 2  # HumanEval prompts need a stack's sampler
    assert test_lines.main(["--tests", "0", "--completions", "x"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def test_humaneval_problems_are_evenly_spaced_with_their_arity() -> None:
    problems = test_lines.humaneval_problems(4)
    assert [p.problem_id for p in problems] == [
        "HumanEval/0",
        "HumanEval/41",
        "HumanEval/82",
        "HumanEval/123",
    ]
    # has_close_elements(numbers, threshold); car_race_collision(n); prime_length(string); get_odd_collatz(n)
    assert [p.arity for p in problems] == [2, 1, 1, 1]
    assert all(p.prompt.rstrip().endswith('"""') for p in problems)
