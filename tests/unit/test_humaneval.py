"""ucoder_common.humaneval: the shipped problems, literal test inputs, wrong variants, truncation."""

from __future__ import annotations

import ast
import dataclasses
import random
from typing import Any

import pytest

from services.sampler.core import CANDIDATE_STOP, truncate_body
from ucoder_common.humaneval import (
    HUMANEVAL_STOP,
    HumanEvalProblem,
    extract_inputs,
    load_problems,
    truncate_completion,
    wrong_variants,
)
from ucoder_common.mutation import fuzz_inputs


@pytest.fixture(scope="module")
def problems() -> dict[str, HumanEvalProblem]:
    return {p.task_id: p for p in load_problems()}


def problem(test: str, entry_point: str = "f") -> HumanEvalProblem:
    return HumanEvalProblem("T/0", f"def {entry_point}(*a):\n", "    return a\n", test, entry_point)


def call(code: str, entry_point: str, args: tuple[Any, ...]) -> Any:
    ns: dict[str, Any] = {}
    exec(compile(code, "<test>", "exec"), ns)
    try:
        return ns[entry_point](*args)
    except Exception as exc:
        return type(exc)


def test_load_problems(problems: dict[str, HumanEvalProblem]) -> None:
    assert len(problems) == 164
    p = problems["HumanEval/0"]
    assert p.entry_point == "has_close_elements"
    assert p.solution == p.prompt + p.canonical_solution
    assert "def check(candidate):" in p.test
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.task_id = "x"  # type: ignore[misc]


def test_inputs_of_humaneval_0(problems: dict[str, HumanEvalProblem]) -> None:
    p = problems["HumanEval/0"]
    inputs = extract_inputs(p)
    assert inputs == [
        "([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3)",
        "([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05)",
        "([1.0, 2.0, 5.9, 4.0, 5.0], 0.95)",
        "([1.0, 2.0, 5.9, 4.0, 5.0], 0.8)",
        "([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1)",
        "([1.1, 2.2, 3.1, 4.1, 5.1], 1.0)",
        "([1.1, 2.2, 3.1, 4.1, 5.1], 0.5)",
    ]
    assert inputs.count(inputs[0]) == 1
    # Each one is a call the test makes, as written there.
    assert all(f"candidate{text[:-1]})" in p.test for text in inputs)


def test_inputs_skip_loop_built_calls(problems: dict[str, HumanEvalProblem]) -> None:
    # HumanEval/53 checks five literal calls, then 100 random ones built in a loop.
    assert extract_inputs(problems["HumanEval/53"]) == ["(0, 1)", "(1, 0)", "(2, 3)", "(5, 7)", "(7, 5)"]
    # HumanEval/32 builds every input in a loop: nothing to extract.
    assert extract_inputs(problems["HumanEval/32"]) == []


def test_inputs_rules() -> None:
    test = (
        "def check(candidate):\n"
        "    assert candidate(1, 'a') == 2\n"
        "    assert candidate(1, 'a') == 2\n"  # duplicate
        "    assert candidate(-1.5, [1, (2, 3)], {'k': None}) is None\n"
        "    assert candidate() == ()\n"
        "    x = 3\n"
        "    assert candidate(x) == 3\n"  # a name
        "    assert candidate(1, k=2) == 3\n"  # keywords
        "    assert candidate(*[1, 2]) == 3\n"  # starargs
        "    assert candidate(abs(-1)) == 1\n"  # a computed value
        "    assert other(5) == 5\n"  # not the candidate
        "    for i in range(3):\n"
        "        assert candidate(i) == i\n"
        "        assert candidate(7, True) == 7\n"  # literal even inside the loop
    )
    inputs = extract_inputs(problem(test))
    assert inputs == ["(1, 'a')", "(-1.5, [1, (2, 3)], {'k': None})", "()", "(7, True)"]
    assert all(isinstance(ast.literal_eval(s), tuple) for s in inputs)


def test_every_shipped_problem_parses(problems: dict[str, HumanEvalProblem]) -> None:
    usable = [p for p in problems.values() if extract_inputs(p)]
    assert len(usable) >= 150
    for p in usable:
        for text in extract_inputs(p):
            assert isinstance(ast.literal_eval(text), tuple)


def test_variants_compile_differ_and_are_deterministic(problems: dict[str, HumanEvalProblem]) -> None:
    code = problems["HumanEval/0"].solution
    variants = wrong_variants(code, 5, seed=1)
    assert len(variants) == 5
    assert len(set(variants)) == 5
    original = ast.unparse(ast.parse(code))
    for v in variants:
        compile(v, "<variant>", "exec")
        assert v not in (code, original)
    assert wrong_variants(code, 5, seed=1) == variants
    assert wrong_variants(code, 5, seed=2) != variants
    assert wrong_variants(code, 0, seed=1) == []
    assert wrong_variants(code, 3, seed=1) == variants[:3]


def test_variants_are_mostly_wrong(problems: dict[str, HumanEvalProblem]) -> None:
    wrong = total = 0
    # A short solution has few mutation sites (HumanEval/2 is `return number % 1.0`: one).
    for task_id in ("HumanEval/0", "HumanEval/2", "HumanEval/12", "HumanEval/53", "HumanEval/80"):
        p = problems[task_id]
        inputs = [ast.literal_eval(s) for s in extract_inputs(p)]
        expected = [call(p.solution, p.entry_point, args) for args in inputs]
        for v in wrong_variants(p.solution, 4, seed=0):
            total += 1
            wrong += [call(v, p.entry_point, args) for args in inputs] != expected
    assert total == 14
    assert wrong >= 12  # a mutation can be equivalent on these inputs


def test_variant_mutations() -> None:
    code = (
        "def f(xs, n):\n"
        "    if not xs or n <= 0:\n"
        "        return []\n"
        "    return xs[n - 1:len(xs)] + [n == 2]\n"
    )
    variants = set(wrong_variants(code, 100, seed=0))
    body = {v.split("\n", 1)[1] for v in variants}
    expected = {
        "    if xs or n <= 0:",  # not removed
        "    if not xs and n <= 0:",  # or -> and
        "    if not xs or n < 0:",  # <= -> <
        "    if not xs or n <= 1:",  # constant + 1
        "        return None",  # return X -> return None
        "    return xs[n + 1:len(xs)] + [n == 2]",  # - -> +
        "    return xs[n - 1:len(xs)] - [n == 2]",  # + -> -
        "    return xs[n - 1:len(xs) + 1] + [n == 2]",  # slice bound + 1
        "    return xs[n - 1 + 1:len(xs)] + [n == 2]",
        "    return xs[n - 1:len(xs)] + [n != 2]",  # == -> !=
        "    return xs[n - 1:len(xs)] + [n == 3]",
    }
    for line in expected:
        assert any(line in b.splitlines() for b in body), line


def test_nothing_inside_while_is_mutated() -> None:
    code = "def f(n):\n    i = 0\n    while i < n:\n        i += 1\n    return i\n"
    variants = wrong_variants(code, 100, seed=0)
    loop = "    while i < n:\n        i += 1\n"
    assert variants
    assert all(loop in v for v in variants)


def test_helpers_a_while_calls_are_not_mutated() -> None:
    # The shape of HumanEval/39: a mutated is_prime could keep the loop from ever returning.
    code = (
        "def is_prime(p):\n"
        "    return p > 1 and all(p % k for k in range(2, p))\n"
        "def step(x):\n"
        "    return is_prime(x)\n"
        "def f(n):\n"
        "    x = n + 1\n"
        "    while True:\n"
        "        if step(x):\n"
        "            return x\n"
        "        x += 1\n"
    )
    variants = wrong_variants(code, 100, seed=0)
    # Only `x = n + 1`, before the loop, is left to mutate.
    assert sorted(line for v in variants for line in v.splitlines() if line.startswith("    x = ")) == [
        "    x = n + 2",
        "    x = n - 1",
    ]
    assert all(v.startswith(ast.unparse(ast.parse(code)).split("def f")[0]) for v in variants)


def test_no_mutation_sites() -> None:
    assert wrong_variants("def f(x):\n    return\n", 3, seed=0) == []


# ---------------------------------------------------------------------------------------------
# truncate_completion


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("    return 1\n", "    return 1\n"),
        ("    return 1", "    return 1\n"),
        ("    x = 1\n\n    return x\n\n\ndef helper():\n    pass\n", "    x = 1\n\n    return x\n"),
        ("    return 1\nclass A:\n    pass\n", "    return 1\n"),
        ("    return 1\nif __name__ == '__main__':\n    main()\n", "    return 1\n"),
        ("    return 1\nprint(f(2))\n", "    return 1\n"),
        ("    return 1\n# tests\n    return 2\n", "    return 1\n"),
        # Top-level lines the stop sequences let through are cut too.
        ("    return 1\nassert f(1) == 1\n", "    return 1\n"),
        ("    return 1\nimport os\n", "    return 1\n"),
        ("    return 1\nx = f(2)\n", "    return 1\n"),
        ("    return 1\n    \n\n  \n", "    return 1\n"),
        ("\treturn 1\nx = 2\n", "\treturn 1\n"),
        ("\n    return 1\nfoo\n", "\n    return 1\n"),
        ("    return 1\r\n\r\nx = 1\r\n", "    return 1\n"),
        ("", ""),
        ("\n\n", ""),
        ("def other():\n    return 2\n", ""),  # the first line is already at column 0: no body
    ],
)
def test_truncate_completion(text: str, body: str) -> None:
    assert truncate_completion(text) == body
    assert truncate_completion(body) == body  # idempotent


def random_continuations(count: int) -> list[str]:
    pieces = [
        "    return 1",
        "        x += 1",
        "\tpass",
        "",
        "   ",
        "def f():",
        "class A:",
        "if __name__ == '__main__':",
        "print(1)",
        "# note",
        "assert f() == 1",
        "x = 2",
        '    s = """doc',
        'continued"""',
        "\r",
    ]
    rng = random.Random(7)
    return ["\n".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(count)]


def cut_at_stops(text: str, stops: tuple[str, ...]) -> str:
    ends = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(ends)] if ends else text


def test_truncate_completion_is_the_samplers_rule() -> None:
    # One implementation: a body is cut the same way when sampling and when evaluating.
    assert truncate_completion is truncate_body


def test_stop_sequences_change_nothing() -> None:
    assert HUMANEVAL_STOP == ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
    assert set(HUMANEVAL_STOP) <= set(CANDIDATE_STOP)
    for text in random_continuations(2000):
        # A model stopped early by the stop sequences leaves the same body.
        assert truncate_completion(cut_at_stops(text, HUMANEVAL_STOP)) == truncate_completion(text), repr(
            text
        )


def test_canonical_solutions_are_their_own_truncation(problems: dict[str, HumanEvalProblem]) -> None:
    for p in problems.values():
        raw = p.canonical_solution + "\n\ndef check(candidate):\n    assert False\n"
        assert truncate_completion(raw) == truncate_completion(p.canonical_solution), p.task_id
        assert truncate_completion(p.canonical_solution).strip() == p.canonical_solution.strip(), p.task_id


# ---------------------------------------------------------------------------------------------
# fuzz_inputs


def _same_types(new: Any, old: Any) -> bool:
    """``new`` has ``old``'s type, and its elements each have the types of some element of ``old``."""
    if type(new) is not type(old):
        return False
    if isinstance(new, list | tuple):
        return all(any(_same_types(n, o) for o in old) for n in new)
    if isinstance(new, dict):
        return set(new) <= set(old) and all(_same_types(new[k], old[k]) for k in new)
    return True


def test_fuzz_inputs_are_deterministic_and_start_with_the_inputs() -> None:
    inputs = ["([1, 2, 3], 'abc')", "([4, 5], 'de')", "([1, 2, 3], 'abc')"]
    out = fuzz_inputs(inputs, "T/1", 60)
    assert out == fuzz_inputs(inputs, "T/1", 60)
    assert out[:2] == ["([1, 2, 3], 'abc')", "([4, 5], 'de')"]
    assert len(out) == 60 and len(set(out)) == 60
    assert fuzz_inputs(inputs, "T/2", 60) != out  # the seed matters


def test_fuzz_inputs_preserve_types() -> None:
    inputs = ["([1.5, 2.0], 3, True, 'ab', (1, 'x'), [[1], [2, 3]], {'k': 1})"]
    base = ast.literal_eval(inputs[0])
    out = fuzz_inputs(inputs, "T/3", 200)
    assert len(out) == 200
    for text in out:
        args = ast.literal_eval(text)
        assert isinstance(args, tuple) and len(args) == len(base)
        for new, old in zip(args, base, strict=True):
            assert _same_types(new, old), (text, new, old)
    # Every kind of argument does change somewhere.
    for k in range(len(base)):
        assert any(ast.literal_eval(t)[k] != base[k] for t in out), k


def test_fuzz_inputs_limit_and_small_spaces() -> None:
    assert fuzz_inputs(["(1,)"], "T/4", 0) == []
    assert fuzz_inputs(["(1,)", "(2,)", "(3,)"], "T/4", 2) == ["(1,)", "(2,)"]
    # A lone bool has two values: the bounded search stops without reaching the limit.
    assert sorted(fuzz_inputs(["(True,)"], "T/4", 100)) == ["(False,)", "(True,)"]
    # No arguments or no literal: nothing to mutate.
    assert fuzz_inputs(["()"], "T/4", 10) == ["()"]
    assert fuzz_inputs(["not a literal"], "T/4", 10) == []


def test_fuzz_inputs_of_a_humaneval_problem(problems: dict[str, HumanEvalProblem]) -> None:
    p = problems["HumanEval/0"]
    hidden = extract_inputs(p)
    out = fuzz_inputs(hidden, p.task_id, 100)
    assert out[: len(hidden)] == hidden and len(out) == 100
    # The canonical solution accepts them: (list of floats, float) stays that shape.
    for text in out:
        numbers, threshold = ast.literal_eval(text)
        assert isinstance(numbers, list) and all(isinstance(x, float) for x in numbers)
        assert isinstance(threshold, float)
        assert call(p.solution, p.entry_point, (numbers, threshold)) in (True, False)
