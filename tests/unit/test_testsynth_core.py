"""Unit tests for services.testsynth.core (tests prompt, call parsing, dedupe)."""

from __future__ import annotations

import ast
import math
from collections import Counter

import pytest

from services.testsynth.core import (
    BOUNDARY,
    CONTAINER,
    KINDS,
    MAX_LITERAL_CHARS,
    REASONS,
    REPAIRS,
    SCALAR,
    STRING,
    STRINGS,
    TESTS_STOP,
    TYPICAL,
    ParsedTest,
    boundary_quota,
    build_tests_prompt,
    call_line,
    calls_prefix,
    canonical_literal,
    dedupe_tests,
    docstring_tests,
    make_test_id,
    mix_tests,
    param_shape,
    parse_signature,
    parse_test_inputs,
    parse_tests,
    round_request,
    seed_tests,
    split_samples,
)

SKELETON = 'def add(a: int, b: int) -> int:\n    """Return a plus b.\n\n    >>> add(1, 2)\n    3\n    """\n'


def parse(
    completion: str, entry: str = "add", arity: int = 2, prefix: str | None = None
) -> tuple[list[ParsedTest], int]:
    return parse_test_inputs(completion, entry, arity, calls_prefix(entry) if prefix is None else prefix)


# --- prompt -------------------------------------------------------------------------------

HEADERS = {
    TYPICAL: "# Typical calls of add, one per line:\n",
    BOUNDARY: (
        "# Edge cases of add (empty, zero, negative, single element, large, duplicates), one per line:\n"
    ),
}

# Reference implementations of the worked examples: every expected value the prompt shows must be right.
REFERENCE = {
    "digit_sum": lambda n: sum(int(d) for d in str(abs(n))),
    "count_evens": lambda nums: sum(1 for x in nums if x % 2 == 0),
    "count_vowels": lambda text: sum(1 for c in text.lower() if c in "aeiou"),
    "initials": lambda words: "".join(w[0].upper() for w in words if w),
    "merge_counts": lambda words, min_len: {
        w: sum(1 for x in words if x.lower() == w and len(x) >= min_len)
        for w in dict.fromkeys(x.lower() for x in words if len(x) >= min_len)
    },
    "gcd": math.gcd,
    "count_occurrences": lambda text, sub: text.count(sub),
    "clamp": lambda value, low, high: min(max(value, low), high),
}

# A problem signature per (arity, shape of the first parameter), and the example it gets.
EXAMPLE_FOR = [
    ("def f(a):", "digit_sum"),
    ("def f(a: int):", "digit_sum"),
    ("def f(a: list[int]):", "count_evens"),
    ("def f(a: Optional[List[int]]):", "count_evens"),
    ("def f(a: List[str]):", "initials"),
    ("def f(a: 'tuple[str, ...]'):", "initials"),
    ("def f(a: dict[str, int]):", "count_evens"),
    ("def f(a: list[str], b: int):", "merge_counts"),  # no two-argument example of strings
    ("def f(a: 'tuple[int, ...]'):", "count_evens"),
    ("def f(a: str):", "count_vowels"),
    ("def f(a: str | None):", "count_vowels"),
    ("def f(a: Node):", "digit_sum"),
    ("def f(a, b):", "merge_counts"),
    ("def f(a: dict[str, int], b: int):", "merge_counts"),
    ("def f(a: float, b: float):", "gcd"),
    ("def f(a: str, b: int):", "count_occurrences"),
    ("def f(a, b, c):", "clamp"),
    ("def f(a: list[int], b, c):", "clamp"),
    ("def f(a: str, b, c, d):", "count_occurrences"),  # arity 4: the two-argument examples
]


def example_block(prompt: str) -> tuple[str, list[str]]:
    """The worked example's function name and its assert lines."""
    head = prompt[: prompt.index("\n\n\n", prompt.index("\nassert "))]
    name = head.split("(", 1)[0].removeprefix("def ")
    return name, [line for line in head.splitlines() if line.startswith("assert ")]


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_ends_with_the_kinds_header_and_the_open_call(kind: str) -> None:
    prompt = build_tests_prompt(SKELETON, "add", 2, kind)
    assert prompt.endswith(HEADERS[kind] + "assert add(")
    assert SKELETON + "    ...\n" in prompt
    # The worked example is introduced by the same header, so the model continues the pattern.
    assert HEADERS[kind].replace("add", "merge_counts") in prompt


def test_prompt_variants_differ_only_in_their_examples_and_header() -> None:
    typical = build_tests_prompt(SKELETON, "add", 2, TYPICAL)
    boundary = build_tests_prompt(SKELETON, "add", 2, BOUNDARY)
    assert typical != boundary
    _, typical_lines = example_block(typical)
    _, boundary_lines = example_block(boundary)
    assert not set(typical_lines) & set(boundary_lines)
    assert "merge_counts([], 3)" in boundary and "merge_counts([], 3)" not in typical
    with pytest.raises(ValueError, match="kind"):
        build_tests_prompt(SKELETON, "add", 2, "random")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("signature_line", "example_name"), EXAMPLE_FOR)
def test_prompt_example_fits_the_signature_parses_and_is_correct(
    kind: str, signature_line: str, example_name: str
) -> None:
    problem = signature_line + "\n    pass\n"
    signature = parse_signature(problem, "f")
    assert signature is not None
    arity = len(signature.params)
    prompt = build_tests_prompt(problem, "f", arity, kind, signature)
    name, lines = example_block(prompt)
    assert name == example_name
    example = prompt[: prompt.index(signature_line)]
    ast.parse(example)  # the worked example is a valid Python file
    example_signature = parse_signature(example, name)
    example_arity = arity if arity <= 3 else 2
    assert example_signature is not None and len(example_signature.params) == example_arity
    report = parse_tests("\n".join(lines), name, example_arity, signature=example_signature, kind=kind)
    assert len(lines) == 6
    assert not report.rejected and not report.guesses_dropped
    assert len(report.tests) == len(lines) and all(t.kind == kind for t in report.tests)
    for test in report.tests:
        args = ast.literal_eval(test.args_literal)
        assert REFERENCE[name](*args) == ast.literal_eval(test.expected_literal), (name, test)
    # The skeleton's own >>> example is right too.
    (doc,) = docstring_tests(example, name, example_arity, example_signature)
    assert REFERENCE[name](*ast.literal_eval(doc.args_literal)) == ast.literal_eval(doc.expected_literal)


def test_param_shape() -> None:
    def shape(annotation: str) -> str:
        return param_shape(ast.parse(annotation, mode="eval").body)

    assert [shape(a) for a in ("list[int]", "List[float]", "Sequence[int]", "dict", "tuple[int, str]")] == [
        CONTAINER
    ] * 5
    assert [shape(a) for a in ("str", "Optional[str]", "None | str", "'str'")] == [STRING] * 4
    assert [shape(a) for a in ("list[str]", "Optional[List[str]]", "tuple[str, ...]", "set[str]")] == [
        STRINGS
    ] * 4
    assert [shape(a) for a in ("dict[str, int]", "list[list[str]]", "list[int | str]")] == [CONTAINER] * 3
    assert [shape(a) for a in ("int", "float", "bool", "int | None")] == [SCALAR] * 4
    assert [shape(a) for a in ("Node", "Callable[[int], int]", "'['")] == [""] * 3
    assert param_shape(None) == ""


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_block_of_asserts_contains_no_stop_sequence(kind: str) -> None:
    prompt = build_tests_prompt(SKELETON, "add", 2, kind)
    block_start = prompt.index("assert merge_counts(")
    block_end = prompt.index("\n\n\n", block_start)
    block = prompt[block_start:block_end]
    assert not any(stop in block for stop in TESTS_STOP)


@pytest.mark.parametrize(
    ("test", "line"),
    [
        (ParsedTest("(1, [2, 3])", "6"), "assert add(1, [2, 3]) == 6"),
        (ParsedTest("('x',)"), "assert add('x')"),
        (ParsedTest("((1, 2),)", "(1, 2)"), "assert add((1, 2)) == (1, 2)"),
        (ParsedTest("({'a': -1}, None)", "-1.5"), "assert add({'a': -1}, None) == -1.5"),
    ],
)
def test_call_line_reads_back_as_the_same_test(test: ParsedTest, line: str) -> None:
    assert call_line("add", test) == line
    arity = len(ast.literal_eval(test.args_literal))
    (parsed,) = parse_tests(line, "add", arity).tests
    assert (parsed.args_literal, parsed.expected_literal) == (test.args_literal, test.expected_literal)


def test_seed_tests_prefer_the_kind_and_rotate_by_round() -> None:
    pool = [ParsedTest(f"({i},)", kind=TYPICAL if i % 2 else BOUNDARY) for i in range(6)]
    assert [t.args_literal for t in seed_tests(pool, TYPICAL, 2)] == ["(1,)", "(3,)"]
    assert [t.args_literal for t in seed_tests(pool, BOUNDARY, 2)] == ["(0,)", "(2,)"]
    assert [t.args_literal for t in seed_tests(pool, TYPICAL, 2, offset=1)] == ["(5,)", "(0,)"]
    assert len(seed_tests(pool, TYPICAL, 10)) == 6
    assert seed_tests([], TYPICAL, 3) == [] and seed_tests(pool, TYPICAL, 0) == []


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_with_seeds_opens_the_block_with_them(kind: str) -> None:
    seeds = [ParsedTest("(1, 2)", "3"), ParsedTest("(0, -5)")]
    prompt = build_tests_prompt(SKELETON, "add", 2, kind, seeds=seeds)
    assert prompt.endswith(HEADERS[kind] + "assert add(1, 2) == 3\nassert add(0, -5)\nassert add(")
    assert build_tests_prompt(SKELETON, "add", 2, kind, seeds=()) == build_tests_prompt(
        SKELETON, "add", 2, kind
    )
    block = prompt[prompt.rindex(HEADERS[kind]) :]
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


def test_docstring_examples_become_tests() -> None:
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


# --- rejection reasons, kinds -------------------------------------------------------------


def test_rejections_are_counted_by_reason() -> None:
    lines = [
        "assert add(1, 2) == 3",
        "assert add(1) == 1",  # arity
        "assert add(1, b=2) == 3",  # keywords
        "assert add(*[1, 2]) == 3",  # starred
        "assert add(x, 1) == 2",  # not_literal
        "assert add(1e999, 1) == 1",  # not_literal (non-finite)
        "assert add('" + "a" * MAX_LITERAL_CHARS + "', 1) == 1",  # too_large
        "assert add(1, 2) + 1 == 4",  # not_a_call
        "assert add('1', 2) == 3",  # type
        "assert add([1, 2,",  # syntax (cut by the token budget)
    ]
    signature = parse_signature(SKELETON, "add")
    report = parse_tests("\n".join(lines), "add", 2, signature=signature, repair=False)
    assert report.tests == [ParsedTest("(1, 2)", "3")]
    assert dict(report.rejected) == {
        "arity": 1,
        "keywords": 2,
        "not_literal": 2,
        "too_large": 1,
        "not_a_call": 1,
        "type": 1,
        "syntax": 1,
    }
    assert set(report.rejected) <= set(REASONS)
    assert not report.repaired
    # With repairs (the default), the keyword call names a parameter: it becomes (1, 2).
    repaired = parse_tests("\n".join(lines), "add", 2, signature=signature)
    assert repaired.tests == [ParsedTest("(1, 2)", "3")] * 2
    assert repaired.repaired == {"keywords": 1}
    assert repaired.rejected == report.rejected - Counter({"keywords": 1})
    # Without the signature the string argument is a test like any other.
    untyped = parse_tests("\n".join(lines), "add", 2, repair=False)
    assert ParsedTest("('1', 2)", "3") in untyped.tests and "type" not in untyped.rejected


def test_parse_test_inputs_is_parse_tests_without_types() -> None:
    text = "1, 2) == 3\nassert add('a', 2) == 3\nassert add(1) == 1\n"
    tests, rejected = parse(text)
    assert tests == parse_tests(text, "add", 2, calls_prefix("add")).tests
    assert [t.args_literal for t in tests] == ["(1, 2)", "('a', 2)"] and rejected == 1


def test_tests_carry_the_kind_of_their_prompt() -> None:
    report = parse_tests("0, 0) == 0\nassert add(-1, 1) == 0\n", "add", 2, calls_prefix("add"), kind=BOUNDARY)
    assert [t.kind for t in report.tests] == [BOUNDARY, BOUNDARY]
    assert parse_tests("1, 2) == 3\n", "add", 2, calls_prefix("add")).tests[0].kind == TYPICAL


def test_docstring_examples_are_type_checked_against_the_signature() -> None:
    skeleton = (
        "def scale(nums: list[int], k: int) -> list[int]:\n"
        '    """Multiply every number by k.\n\n'
        "    >>> scale([1, 2], 3)\n"
        "    [3, 6]\n"
        "    >>> scale([1.5], 2)\n"
        "    [3.0]\n"
        "    >>> scale([2], 2)\n"
        "    '[4]'\n"
        '    """\n'
    )
    signature = parse_signature(skeleton, "scale")
    tests = docstring_tests(skeleton, "scale", 2, signature)
    # [1.5] is not a list[int]; the string output is not a list[int] guess, so only the input stays.
    assert tests == [ParsedTest("([1, 2], 3)", "[3, 6]"), ParsedTest("([2], 2)", "")]


# --- dedupe by canonical literal, mix -----------------------------------------------------


def test_dedupe_compares_canonical_literals() -> None:
    tests = [
        ParsedTest("(1,)", ""),
        ParsedTest("(1, )", "2", BOUNDARY),
        ParsedTest("( 1 ,)", "3"),
        ParsedTest("({2, 1},)", "x"),
        ParsedTest("({1, 2},)", "y"),
        ParsedTest("(1.0,)", ""),  # a float is another input than an int
    ]
    kept, removed = dedupe_tests(tests)
    # The first occurrence keeps its text and kind and takes the first expectation written later.
    assert kept == [ParsedTest("(1,)", "2"), ParsedTest("({2, 1},)", "x"), ParsedTest("(1.0,)", "")]
    assert removed == 3


def test_dedupe_across_kinds_keeps_the_first_kind() -> None:
    typical = parse_tests("0, 0) == 0\nassert add(1, 2) == 3\n", "add", 2, calls_prefix("add")).tests
    boundary = parse_tests(
        "0,0) == 0\nassert add(0, -1) == -1\n", "add", 2, calls_prefix("add"), kind=BOUNDARY
    )
    kept, removed = dedupe_tests([*typical, *boundary.tests])
    assert [(t.args_literal, t.kind) for t in kept] == [
        ("(0, 0)", TYPICAL),
        ("(1, 2)", TYPICAL),
        ("(0, -1)", BOUNDARY),
    ]
    assert removed == 1


def make_pool(typical: int, boundary: int) -> list[ParsedTest]:
    """Alternating kinds (typical first), distinct inputs."""
    pool: list[ParsedTest] = []
    t = b = 0
    while t < typical or b < boundary:
        if t < typical:
            pool.append(ParsedTest(f"({t},)", "", TYPICAL))
            t += 1
        if b < boundary:
            pool.append(ParsedTest(f"({-1 - b},)", "", BOUNDARY))
            b += 1
    return pool


@pytest.mark.parametrize(
    ("typical", "boundary", "count", "ratio", "want"),
    [
        (200, 200, 100, 0.3, (70, 30)),  # enough of both: the ratio
        (200, 200, 100, 0.0, (100, 0)),
        (200, 200, 100, 1.0, (0, 100)),
        (20, 200, 100, 0.3, (20, 80)),  # typical short: boundary fills in
        (200, 5, 100, 0.3, (95, 5)),  # boundary short: typical fills in
        (3, 2, 100, 0.3, (3, 2)),  # fewer than asked: everything
        (10, 10, 5, 0.5, (3, 2)),  # 2.5 boundary tests round half to even: 2
    ],
)
def test_mix_tests_follows_the_ratio_and_fills_shortfalls(
    typical: int, boundary: int, count: int, ratio: float, want: tuple[int, int]
) -> None:
    pool = make_pool(typical, boundary)
    mixed = mix_tests(pool, count, ratio)
    got = (sum(t.kind == TYPICAL for t in mixed), sum(t.kind == BOUNDARY for t in mixed))
    assert got == want
    assert len(mixed) == min(count, len(pool))
    # Order of arrival is kept, and each kind is taken from its front.
    assert mixed == [t for t in pool if t in mixed]
    assert [t for t in mixed if t.kind == TYPICAL] == [t for t in pool if t.kind == TYPICAL][: got[0]]


def test_boundary_quota_rounds_and_clamps() -> None:
    assert boundary_quota(100, 0.3) == 30
    assert boundary_quota(8, 0.3) == 2
    assert boundary_quota(1, 0.3) == 0
    assert boundary_quota(1, 0.6) == 1
    assert boundary_quota(10, 1.0) == 10
    assert boundary_quota(10, 0.0) == 0


def test_split_samples_in_proportion_to_the_shortfalls() -> None:
    assert split_samples(4, {TYPICAL: 70, BOUNDARY: 30}) == {TYPICAL: 3, BOUNDARY: 1}
    assert split_samples(8, {TYPICAL: 10, BOUNDARY: 10}) == {TYPICAL: 4, BOUNDARY: 4}
    assert split_samples(4, {TYPICAL: 0, BOUNDARY: 30}) == {BOUNDARY: 4}
    assert split_samples(4, {TYPICAL: -3, BOUNDARY: 0}) == {}
    # Each short kind gets one even when there are fewer samples than kinds.
    assert split_samples(1, {TYPICAL: 99, BOUNDARY: 1}) == {TYPICAL: 1, BOUNDARY: 1}
    assert sum(split_samples(7, {TYPICAL: 5, BOUNDARY: 50}).values()) == 7


# --- repairs ------------------------------------------------------------------------------

TOP_K = 'def top_k(items: list[int], k: int) -> list[int]:\n    """The k largest."""\n'


def test_keyword_arguments_naming_parameters_are_put_in_their_positions() -> None:
    signature = parse_signature(TOP_K, "top_k")
    assert signature is not None and signature.names == ("items", "k")
    lines = [
        "assert top_k([3, 1], k=1) == [3]",  # the rest by name
        "assert top_k(k=2, items=[1, 2]) == [2, 1]",  # all by name, in another order
        "assert top_k([1], n=1) == [1]",  # no parameter n
        "assert top_k([1], items=[2]) == [2]",  # items twice
        "assert top_k([1]) == [1]",  # k missing: arity, not keywords
        "assert top_k([1], **{'k': 1}) == [1]",  # ** is never repaired
    ]
    report = parse_tests("\n".join(lines), "top_k", 2, signature=signature)
    assert report.tests == [ParsedTest("([3, 1], 1)", "[3]"), ParsedTest("([1, 2], 2)", "[2, 1]")]
    assert report.repaired == {"keywords": 2}
    assert report.rejected == {"keywords": 3, "arity": 1}
    # Without the names (no signature) keywords cannot be placed.
    assert parse_tests(lines[0], "top_k", 2).rejected == {"keywords": 1}


def test_swapped_arguments_are_reordered_only_when_one_order_matches() -> None:
    signature = parse_signature(TOP_K, "top_k")
    report = parse_tests(
        "assert top_k(2, [5, 1, 4]) == [5, 4]\nassert top_k('a', [1]) == [1]", "top_k", 2, signature=signature
    )
    assert report.tests == [ParsedTest("([5, 1, 4], 2)", "[5, 4]")]
    assert report.repaired == {"swapped": 1}
    assert report.rejected == {"type": 1}  # 'a' fits no parameter
    # Two reorderings match (int, str, str): ambiguous, so rejected.
    pad = parse_signature("def pad(width: int, text: str, fill: str) -> str: ...", "pad")
    ambiguous = parse_tests("assert pad('ab', '*', 5) == '***ab'", "pad", 3, signature=pad)
    assert ambiguous.tests == [] and ambiguous.rejected == {"type": 1}
    # One reordering matches: the int moves to the front, the strings keep their order.
    one = parse_signature("def pad(width: int, text: str, fill: list[str]) -> str: ...", "pad")
    fixed = parse_tests("assert pad('ab', 5, ['*'])", "pad", 3, signature=one)
    assert fixed.tests == [ParsedTest("(5, 'ab', ['*'])")]
    assert parse_tests("assert top_k(2, [5])", "top_k", 2, signature=signature, repair=False).rejected == {
        "type": 1
    }


def test_a_call_spread_over_lines_is_joined() -> None:
    signature = parse_signature(TOP_K, "top_k")
    text = "\n".join(
        [
            "assert top_k([1,",
            "              2, 3],",
            "             2) == [3, 2]",
            "assert top_k([4], 1) == [4]",
            "assert top_k([5,",  # cut: the next line is a new call, not a continuation
            "assert top_k([6], 1) == [6]",
            "assert top_k([7,",  # cut by the token budget at the end
        ]
    )
    report = parse_tests(text, "top_k", 2, signature=signature)
    assert report.tests == [
        ParsedTest("([1, 2, 3], 2)", "[3, 2]"),
        ParsedTest("([4], 1)", "[4]"),
        ParsedTest("([6], 1)", "[6]"),
    ]
    assert report.repaired == {"joined": 1}
    assert report.rejected == {"syntax": 2}
    # Without repairs the first call is a syntax error and its continuation ends the block.
    plain = parse_tests(text, "top_k", 2, signature=signature, repair=False)
    assert plain.tests == [] and plain.rejected == {"syntax": 1}


def test_repairs_are_named() -> None:
    assert set(REPAIRS) == {"joined", "keywords", "swapped"}


def test_round_request_shares_the_round_and_stops_when_done_or_stalled() -> None:
    pool = [ParsedTest("(1, 2)"), ParsedTest("(0, 0)", kind=BOUNDARY)]
    quotas = {TYPICAL: 4, BOUNDARY: 1}
    assert round_request(pool, quotas, 4, stalled=0, stall_rounds=2) == {TYPICAL: 4}
    assert round_request(pool, quotas, 4, stalled=1, stall_rounds=2) == {TYPICAL: 4}
    assert round_request(pool, quotas, 4, stalled=2, stall_rounds=2) == {}  # two rounds gained nothing
    assert round_request(pool, quotas, 4, stalled=9, stall_rounds=0) == {TYPICAL: 4}  # 0: never stop
    assert round_request(pool, {TYPICAL: 1, BOUNDARY: 1}, 4, stalled=0, stall_rounds=2) == {}  # quotas met
    assert round_request([], {TYPICAL: 3, BOUNDARY: 1}, 4, stalled=0, stall_rounds=2) == {
        TYPICAL: 3,
        BOUNDARY: 1,
    }
