"""Unit tests for services.testsynth.core (tests prompt, call parsing, dedupe)."""

from __future__ import annotations

import ast

import pytest

from services.testsynth.core import (
    MAX_LITERAL_CHARS,
    TESTS_STOP,
    ParsedTest,
    build_tests_prompt,
    calls_prefix,
    canonical_literal,
    dedupe_tests,
    make_test_id,
    parse_test_inputs,
)

SKELETON = 'def add(a: int, b: int) -> int:\n    """Return a plus b.\n\n    >>> add(1, 2)\n    3\n    """\n'


def parse(
    completion: str, entry: str = "add", arity: int = 2, prefix: str | None = None
) -> tuple[list[ParsedTest], int]:
    return parse_test_inputs(completion, entry, arity, calls_prefix(entry) if prefix is None else prefix)


# --- prompt -------------------------------------------------------------------------------


def test_prompt_ends_with_the_open_call_and_holds_the_skeleton() -> None:
    prompt = build_tests_prompt(SKELETON, "add")
    assert prompt.endswith("\nassert add(")
    assert SKELETON + "    ...\n" in prompt
    assert "# Example calls of add" in prompt


def test_prompt_few_shot_is_valid_python_and_in_the_parsed_format() -> None:
    prompt = build_tests_prompt(SKELETON, "add")
    head = prompt[: prompt.index(SKELETON)]
    ast.parse(head)  # the worked example is a valid Python file
    lines = [line for line in head.splitlines() if line.startswith("assert merge_counts(")]
    assert len(lines) >= 5
    tests, rejected = parse_test_inputs("\n".join(lines), "merge_counts", 2, "")
    assert rejected == 0
    assert len(tests) == len(lines)
    assert all(t.expected_literal for t in tests)


def test_prompt_block_of_asserts_contains_no_stop_sequence() -> None:
    prompt = build_tests_prompt(SKELETON, "add")
    block_start = prompt.index("assert merge_counts(")
    block_end = prompt.index("\n\n\n", block_start)
    block = prompt[block_start:block_end]
    assert not any(stop in block for stop in TESTS_STOP)


def test_prompt_adds_newline_to_skeleton_without_one() -> None:
    prompt = build_tests_prompt(SKELETON.rstrip("\n"), "add")
    assert '    """\n    ...\n' in prompt


# --- parse --------------------------------------------------------------------------------


def test_parse_with_prefix_and_expected() -> None:
    tests, rejected = parse("1, 2) == 3\nassert add(-5, 0) == -5\nassert add(10**2, 1) == 101\n")
    # 10**2 is not a literal
    assert tests == [ParsedTest("(1, 2)", "3"), ParsedTest("(-5, 0)", "-5")]
    assert rejected == 1


def test_single_argument_is_a_one_tuple() -> None:
    tests, rejected = parse("assert neg(5) == -5\nneg(-2.5)\n", entry="neg", arity=1, prefix="")
    assert [t.args_literal for t in tests] == ["(5,)", "(-2.5,)"]
    assert [t.expected_literal for t in tests] == ["-5", ""]
    assert rejected == 0
    assert ast.literal_eval(tests[0].args_literal) == (5,)


def test_wrong_arity_rejected() -> None:
    tests, rejected = parse(
        "assert add(1) == 1\nassert add(1, 2, 3) == 6\nassert add(1, 2) == 3\n", prefix=""
    )
    assert tests == [ParsedTest("(1, 2)", "3")]
    assert rejected == 2


def test_non_literals_keywords_and_starred_rejected() -> None:
    lines = [
        "assert add(x, 1) == 2",
        "assert add(a=1, b=2) == 3",
        "assert add(1, b=2) == 3",
        "assert add(*[1, 2]) == 3",
        "assert add(len('ab'), 1) == 3",
        "assert add(1, 2) == 3",
    ]
    tests, rejected = parse("\n".join(lines), prefix="")
    assert tests == [ParsedTest("(1, 2)", "3")]
    assert rejected == 5


def test_nested_containers_with_commas_and_parentheses() -> None:
    text = (
        "assert f([1, [2, 3]], {'a,b': (1, 2), 'c)': []}) == 'x, (y)'\n"
        "assert f('(,)', (1,)) == [(1, 2), {}]\n"
        'assert f("it\'s", b"\\x00") is None\n'
        "assert f({3, 1, 2}, set()) == set()\n"
        "assert f(True, None) == 1+2j\n"
    )
    tests, rejected = parse(text, entry="f", prefix="")
    assert rejected == 0
    assert [t.args_literal for t in tests] == [
        "([1, [2, 3]], {'a,b': (1, 2), 'c)': []})",
        "('(,)', (1,))",
        "(\"it's\", b'\\x00')",
        "({1, 2, 3}, set())",
        "(True, None)",
    ]
    assert [t.expected_literal for t in tests] == ["'x, (y)'", "[(1, 2), {}]", "None", "set()", "(1+2j)"]
    for t in tests:
        assert isinstance(ast.literal_eval(t.args_literal), tuple)


def test_negative_numbers_and_canonical_spacing() -> None:
    tests, _ = parse("assert add( -1 ,-2 )==-3\nassert add(-0.5, +3) == 2.5\n", prefix="")
    assert tests == [ParsedTest("(-1, -2)", "-3"), ParsedTest("(-0.5, 3)", "2.5")]


def test_non_literal_expected_keeps_input_without_expectation() -> None:
    tests, rejected = parse(
        "assert add(1, 2) == add(2, 1)\nassert add(1, 3) != 5\nassert not add(0, 0)\n", prefix=""
    )
    assert tests == [ParsedTest("(1, 2)", ""), ParsedTest("(1, 3)", ""), ParsedTest("(0, 0)", "")]
    assert rejected == 0


def test_parsing_stops_at_first_non_call_line() -> None:
    text = "1, 2) == 3\n\nassert add(2, 2) == 4\nprint('done')\nassert add(3, 3) == 6\n"
    tests, rejected = parse(text)
    assert [t.args_literal for t in tests] == ["(1, 2)", "(2, 2)"]
    assert rejected == 0


def test_other_function_stops_parsing() -> None:
    tests, _ = parse("assert add(1, 2) == 3\nassert adder(1, 2) == 3\nassert add(5, 5) == 10\n", prefix="")
    assert len(tests) == 1


def test_truncated_last_line_is_rejected() -> None:
    tests, rejected = parse("1, 2) == 3\nassert add([1, 2,")
    assert tests == [ParsedTest("(1, 2)", "3")]
    assert rejected == 1


def test_trailing_comment_is_fine() -> None:
    tests, rejected = parse("0, 0) == 0  # zero, edge case\n")
    assert tests == [ParsedTest("(0, 0)", "0")]
    assert rejected == 0


def test_non_finite_and_huge_literals_rejected() -> None:
    big = "[" + ", ".join(["1"] * MAX_LITERAL_CHARS) + "]"
    tests, rejected = parse(
        f"assert add(1e999, 1) == 1\nassert add({big}, 1) == 1\nassert add(1, 1) == 2\n", prefix=""
    )
    assert tests == [ParsedTest("(1, 1)", "2")]
    assert rejected == 2


def test_arity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="arity"):
        parse_test_inputs("f()", "f", 0, "")


def test_empty_completion() -> None:
    assert parse_test_inputs("", "add", 2, "") == ([], 0)


# --- canonical literal --------------------------------------------------------------------


def test_canonical_literal_sorts_sets_and_keeps_dict_order() -> None:
    assert canonical_literal({"b", "a"}) == "{'a', 'b'}"
    assert canonical_literal({"z": 1, "a": 2}) == "{'z': 1, 'a': 2}"
    assert canonical_literal((1,)) == "(1,)"
    assert canonical_literal(()) == "()"
    with pytest.raises(ValueError):
        canonical_literal(float("nan"))
    with pytest.raises(ValueError):
        canonical_literal(object())
    with pytest.raises(ValueError):
        canonical_literal(frozenset({1}))  # literal_eval cannot read frozenset(...) back
    value: tuple[object, ...] = ({"b", "a", 3}, [1.5, -2, None], {"k": (True, b"x")}, set(), 1j)
    assert ast.literal_eval(canonical_literal(value)) == value


# --- dedupe -------------------------------------------------------------------------------


def test_dedupe_keeps_order_and_counts() -> None:
    tests = [
        ParsedTest("(1, 2)", "3"),
        ParsedTest("(0, 0)", ""),
        ParsedTest("(1, 2)", "4"),
        ParsedTest("(0, 0)", "0"),
        ParsedTest("(5, 5)", "10"),
        ParsedTest("(1, 2)", ""),
    ]
    kept, removed = dedupe_tests(tests)
    # first expectation wins; a missing one is filled from a later duplicate
    assert kept == [ParsedTest("(1, 2)", "3"), ParsedTest("(0, 0)", "0"), ParsedTest("(5, 5)", "10")]
    assert removed == 3


def test_dedupe_after_canonicalisation() -> None:
    tests, _ = parse("assert add(1,2) == 3\nassert add( 1 , 2 ) == 3\nassert add(2, 1) == 3\n", prefix="")
    kept, removed = dedupe_tests(tests)
    assert [t.args_literal for t in kept] == ["(1, 2)", "(2, 1)"]
    assert removed == 1


def test_make_test_id_is_stable_and_distinct() -> None:
    assert make_test_id("abc", "(1,)") == make_test_id("abc", "(1,)")
    assert make_test_id("abc", "(1,)") != make_test_id("abc", "(2,)")
    assert make_test_id("abc", "(1,)").startswith("abc-t")


def test_prompt_example_has_the_problems_arity() -> None:
    from services.testsynth.core import parse_test_inputs

    for arity in (1, 2, 3):
        prompt = build_tests_prompt("def f(a):\n    pass\n", "f", arity)
        example = prompt.split("\n\n\n# Example calls of ", 1)[1].split(":\n", 1)[1].split("\n\n\n", 1)[0]
        name = prompt.split("(", 1)[0].removeprefix("def ")
        tests, rejected = parse_test_inputs(example, name, arity)
        assert len(tests) >= 5 and rejected == 0, (arity, example)
    # Arities without an example of their own fall back to the two-argument one.
    assert build_tests_prompt("def f(a, b, c, d):\n    pass\n", "f", 4).startswith("def merge_counts(")


def test_docstring_examples_become_tests() -> None:
    from services.testsynth.core import docstring_tests

    skeleton = (
        "def scale(nums: list[int], k: int) -> list[int]:\n"
        '    """Multiply every number by k.\n\n'
        "    >>> scale([1, 2], 3)\n"
        "    [3, 6]\n"
        "    >>> scale([], 5)\n"
        "    >>> scale(nums, 2)\n"
        "    [2]\n"
        "    >>> other([1], 2)\n"
        "    [2]\n"
        '    """\n'
    )
    tests = docstring_tests(skeleton, "scale", 2)
    assert [(t.args_literal, t.expected_literal) for t in tests] == [
        ("([1, 2], 3)", "[3, 6]"),
        ("([], 5)", ""),
    ]
    assert docstring_tests(skeleton, "scale", 1) == []  # wrong arity: nothing kept
