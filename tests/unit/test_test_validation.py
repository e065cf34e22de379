"""Unit tests for test validation (stage 4): annotated types, expected guesses, likely-invalid tests."""

from __future__ import annotations

import ast

import pytest

from services.testsynth.core import (
    ParsedTest,
    Signature,
    parse_signature,
    parse_tests,
    value_matches,
)
from ucoder_common.invalid_tests import MIN_CANDIDATES, likely_invalid_tests


def matches(value: object, annotation: str) -> bool:
    return value_matches(value, ast.parse(annotation, mode="eval").body)


# --- value_matches ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (3, "int"),
        (-3, "int"),
        (3, "float"),  # an int is accepted for a float
        (2.5, "float"),
        (3, "complex"),
        (1j, "complex"),
        (True, "bool"),
        ("", "str"),
        (b"x", "bytes"),
        ([], "list[int]"),  # the empty list is a list of anything
        ([1, 2], "list[int]"),
        ([1, 2.5], "list[float]"),
        ([[1], []], "list[list[int]]"),
        ([1, 2], "List[int]"),
        ([1, 2], "typing.List[int]"),
        ({"a": 1}, "dict[str, int]"),
        ({}, "Dict[str, List[int]]"),
        ({"a": [1]}, "Dict[str, List[int]]"),
        ((1, "a"), "tuple[int, str]"),
        ((1, 2, 3), "tuple[int, ...]"),
        ((), "tuple[int, ...]"),
        ((), "tuple[()]"),
        ((1, "a"), "tuple"),
        ({1, 2}, "set[int]"),
        (set(), "set[str]"),
        (None, "Optional[int]"),
        (4, "Optional[int]"),
        (None, "int | None"),
        (4, "int | None"),
        ("a", "Union[int, str]"),
        (None, "None"),
        ([1, (2, "b")], "list[int | tuple[int, str]]"),
        ("anything", "Any"),
        ([1], "object"),
        ([1, 2], "Sequence[int]"),
        ((1, 2), "Sequence[int]"),
        ("abc", "Sequence[str]"),
        ({1, 2}, "Iterable[int]"),
        ({"a": 1}, "Mapping[str, int]"),
        ("b", "Literal['a', 'b']"),
        ([1, 2], "'list[int]'"),  # a forward reference
        (5, "Node"),  # an unknown class: accepted
        (5, "Callable[[int], int]"),  # unknown to the checker: accepted
        (5, "np.ndarray"),
        ("x", "'not valid python ['"),  # an unparsable forward reference: accepted
    ],
)
def test_value_matches(value: object, annotation: str) -> None:
    assert matches(value, annotation)


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        (True, "int"),  # bool is an int subclass, but True for an int is not an int test
        (False, "float"),
        (True, "complex"),
        (1, "bool"),
        (2.5, "int"),
        (1j, "float"),
        ("3", "int"),
        (3, "str"),
        ("ab", "bytes"),
        ((1, 2), "list[int]"),
        ([1, "a"], "list[int]"),
        ([True], "list[int]"),
        ([[1], ["a"]], "list[list[int]]"),
        ({1: 1}, "dict[str, int]"),
        ({"a": "b"}, "dict[str, int]"),
        ([("a", 1)], "dict[str, int]"),
        ((1, 2), "tuple[int, str]"),
        ((1,), "tuple[int, int]"),
        ((1, "a"), "tuple[int, ...]"),
        ((1,), "tuple[()]"),
        ([1, 2], "tuple"),
        ([1], "set[int]"),
        ({"a"}, "set[int]"),
        (None, "int"),  # None only where the annotation allows it
        (None, "list[int]"),
        ([None], "list[int]"),
        ("a", "Optional[int]"),
        (2.5, "int | None"),
        (2.5, "Union[int, str]"),
        (1, "None"),
        ({1}, "Sequence[int]"),
        ("abc", "Sequence[int]"),
        (3, "Iterable[int]"),
        (["a"], "Iterable[int]"),
        ("c", "Literal['a', 'b']"),
        (True, "Literal[1]"),
        ((1, 2), "'list[int]'"),
    ],
)
def test_value_does_not_match(value: object, annotation: str) -> None:
    assert not matches(value, annotation)


def test_no_annotation_accepts_everything() -> None:
    assert value_matches(object(), None)


# --- parse_signature ----------------------------------------------------------------------


def test_parse_signature_from_a_signature_line_and_from_a_skeleton() -> None:
    line = parse_signature("def f(a: list[int], b, c: 'Optional[str]' = None) -> dict[str, int]:", "f")
    assert line is not None
    assert [None if a is None else ast.unparse(a) for a in line.params] == [
        "list[int]",
        None,
        "'Optional[str]'",
    ]
    assert line.returns is not None and ast.unparse(line.returns) == "dict[str, int]"
    skeleton = (
        "from typing import List\n\n\n"
        "def g(xs: List[int], /, k: int) -> List[int]:\n"
        '    """Docstring only: the body is added before parsing."""\n'
    )
    parsed = parse_signature(skeleton, "g")
    assert parsed is not None and len(parsed.params) == 2  # positional-only parameters count


def test_parse_signature_none_when_missing_or_broken() -> None:
    assert parse_signature("def f(a: int) -> int:", "g") is None
    assert parse_signature("def f(a: int -> int:", "f") is None
    assert parse_signature("", "f") is None


# --- arguments and expected values against the signature -----------------------------------

SIGNATURE = parse_signature("def f(nums: list[int], k: int) -> Optional[float]:", "f")


def parse(
    text: str, signature: Signature | None = SIGNATURE
) -> tuple[list[ParsedTest], dict[str, int], dict[str, int]]:
    report = parse_tests(text, "f", 2, signature=signature)
    return report.tests, dict(report.rejected), dict(report.guesses_dropped)


def test_argument_types_are_checked() -> None:
    tests, rejected, dropped = parse(
        "assert f([1, 2], 3) == 1.5\n"
        "assert f([], 0) == None\n"  # the empty list, and None allowed by Optional
        "assert f([1], True) == 1.0\n"  # bool for int
        "assert f((1, 2), 3) == 1.0\n"  # tuple for list
        "assert f([1.5], 3) == 1.0\n"  # float element
        "assert f(None, 3) == 1.0\n"  # None where the parameter is not Optional
    )
    assert tests == [ParsedTest("([1, 2], 3)", "1.5"), ParsedTest("([], 0)", "None")]
    assert rejected == {"type": 4}
    assert dropped == {}


def test_expected_values_are_kept_as_guesses_when_literal_and_of_the_return_type() -> None:
    tests, rejected, dropped = parse(
        "assert f([1], 1) == 2\n"  # an int for a float return: a guess
        "assert f([2], 1) is None\n"  # None: Optional return
        "assert f([3], 1) == 'two'\n"  # not a float: guess dropped, input kept
        "assert f([4], 1) == [2.0]\n"  # not a float either
        "assert f([5], 1) == g(1)\n"  # not a literal: guess dropped
        "assert f([6], 1) == float('nan')\n"
        "assert f([7], 1) != 3.0\n"  # no guess at all (not dropped)
        "assert f([8], 1)\n"
    )
    assert [t.args_literal for t in tests] == [f"([{i}], 1)" for i in range(1, 9)]
    assert [t.expected_literal for t in tests] == ["2", "None", "", "", "", "", "", ""]
    assert rejected == {}
    assert dropped == {"type": 2, "not_literal": 2}


def test_bool_guess_is_dropped_for_an_int_return_and_kept_for_a_bool_one() -> None:
    as_int = parse_signature("def f(a: int, b: int) -> int:", "f")
    as_bool = parse_signature("def f(a: int, b: int) -> bool:", "f")
    tests, _, dropped = parse("assert f(1, 2) == True\nassert f(1, 3) == 1\n", as_int)
    assert [t.expected_literal for t in tests] == ["", "1"] and dropped == {"type": 1}
    tests, _, dropped = parse("assert f(1, 2) == True\nassert f(1, 3) == 1\n", as_bool)
    assert [t.expected_literal for t in tests] == ["True", ""] and dropped == {"type": 1}


def test_unannotated_signature_checks_arity_only() -> None:
    untyped = parse_signature("def f(nums, k):", "f")
    tests, rejected, dropped = parse("assert f('x', None) == {1}\nassert f(1) == 1\n", untyped)
    assert tests == [ParsedTest("('x', None)", "{1}")]
    assert rejected == {"arity": 1} and dropped == {}


def test_signature_with_another_arity_skips_argument_types() -> None:
    # The problem's arity rules the call; a signature that disagrees is not used for arguments.
    three = parse_signature("def f(a: int, b: int, c: int) -> int:", "f")
    tests, rejected, _ = parse("assert f('a', 'b') == 1\n", three)
    assert tests == [ParsedTest("('a', 'b')", "1")] and rejected == {}


# --- likely invalid tests -----------------------------------------------------------------

# Rows are candidates, columns tests; True = the candidate failed (raised, timed out, ...) there.
OK, ERR = False, True


def test_tests_every_informative_candidate_failed_are_reported() -> None:
    failed = [
        [OK, ERR, OK, ERR],
        [OK, ERR, ERR, ERR],
        [ERR, ERR, OK, ERR],
        [ERR, ERR, ERR, ERR],  # failed everything (did not compile): not evidence
    ]
    assert likely_invalid_tests(failed) == [1, 3]


def test_one_clean_run_clears_a_test() -> None:
    failed = [[OK, ERR], [OK, ERR], [OK, OK]]
    assert likely_invalid_tests(failed) == []


def test_too_few_informative_candidates_report_nothing() -> None:
    failed = [[OK, ERR], [OK, ERR], [ERR, ERR], [ERR, ERR], [ERR, ERR]]
    assert MIN_CANDIDATES == 3
    assert likely_invalid_tests(failed) == []  # only 2 candidates ran anything
    assert likely_invalid_tests(failed, min_candidates=2) == [1]


def test_all_candidates_broken_condemn_no_test() -> None:
    assert likely_invalid_tests([[ERR, ERR, ERR]] * 10) == []


def test_likely_invalid_edge_cases() -> None:
    assert likely_invalid_tests([]) == []
    assert likely_invalid_tests([[], [], []]) == []
    assert likely_invalid_tests([[OK]] * 5) == []  # one test: informative candidates passed it
    with pytest.raises(ValueError, match="one outcome per test"):
        likely_invalid_tests([[OK, ERR], [OK]])
    with pytest.raises(ValueError, match="min_candidates"):
        likely_invalid_tests([[OK]], min_candidates=0)


# --- no false rejections on real data -----------------------------------------------------


def test_humaneval_hidden_inputs_and_canonical_outputs_fit_their_annotations() -> None:
    """HumanEval's own inputs and answers are valid tests: the checker must accept every one."""
    from ucoder_common import humaneval

    inputs = outputs = 0
    rejected: list[tuple[str, str]] = []
    for problem in humaneval.load_problems():
        signature = parse_signature(problem.prompt, problem.entry_point)
        assert signature is not None, problem.task_id
        namespace: dict[str, object] = {}
        exec(compile(problem.solution, problem.task_id, "exec"), namespace)
        solution = namespace[problem.entry_point]
        assert callable(solution)
        for literal in humaneval.extract_inputs(problem):
            args = ast.literal_eval(literal)
            if len(args) != len(signature.params):
                continue
            inputs += 1
            if not all(value_matches(v, a) for v, a in zip(args, signature.params, strict=True)):
                rejected.append((problem.task_id, literal))
            try:
                value = solution(*args)
            except Exception:
                continue
            outputs += 1
            if not value_matches(value, signature.returns):
                rejected.append((problem.task_id, f"-> {value!r}"))
    assert inputs > 1000 and outputs > 1000
    assert rejected == []
