"""Unit tests for the mutation fill of services.testsynth.core (mutation_tests, select_tests) and its
setting: tests the model's rounds left short of the count are filled with type-preserving mutations
of the model's own inputs, validated as the model's lines are."""

from __future__ import annotations

import ast

import pytest

from services.testsynth import app
from services.testsynth.core import (
    BOUNDARY,
    MAX_LITERAL_CHARS,
    MUTATION,
    TYPICAL,
    ParsedTest,
    Signature,
    canonical_literal,
    mix_tests,
    mutation_tests,
    parse_signature,
    parse_tests,
    select_tests,
)
from ucoder_common.config import ConfigError, load_config
from ucoder_common.mutation import fuzz_inputs


def signature(line: str) -> Signature:
    parsed = parse_signature(line, "f")
    assert parsed is not None
    return parsed


MIXED = signature("def f(n: int, s: str, xs: list[int], flag: bool) -> int:")
MIXED_POOL = [
    ParsedTest("(3, 'abc', [1, 2, 3], True)", "7", TYPICAL),
    ParsedTest("(0, '', [], False)", "0", BOUNDARY),
    ParsedTest("(-12, 'Hello world', [5, 5, -1], False)", "", TYPICAL),
]


def values(test: ParsedTest) -> tuple[object, ...]:
    value = ast.literal_eval(test.args_literal)
    assert isinstance(value, tuple)
    return value


def test_mutations_keep_arity_and_annotated_types() -> None:
    tests = mutation_tests(MIXED_POOL, 60, 4, MIXED, "HumanEval/1")
    assert len(tests) == 60
    for test in tests:
        n, s, xs, flag = values(test)  # arity 4 kept
        assert type(n) is int and type(s) is str and type(flag) is bool  # an int never a bool or a str
        assert isinstance(xs, list) and all(type(x) is int for x in xs)
        assert test.kind == MUTATION and test.expected_literal == ""
        # The canonical form, as the model's lines are written.
        assert test.args_literal == canonical_literal(values(test))


def test_mutations_are_validated_exactly_as_model_written_calls() -> None:
    # tuple[int, int] and Literal[...] are annotations the mutations break (an element dropped,
    # a number nudged out of the choices): those must be rejected, the rest kept, in fuzz order.
    sig = signature("def f(p: tuple[int, int], mode: Literal[1, 2, 3]) -> int:")
    pool = [ParsedTest("((1, 2), 1)"), ParsedTest("((4, -3), 3)")]
    tests = mutation_tests(pool, 200, 2, sig, "seed")
    # fuzz_inputs' list only grows with its limit; this one is at least as long as any mutation_tests read.
    fuzzed = fuzz_inputs([t.args_literal for t in pool], "seed", 2 + 8 * 200)
    as_model = [parse_tests(f"assert f{text} == 0", "f", 2, signature=sig).tests for text in fuzzed[2:]]
    accepted = list(dict.fromkeys(parsed[0].args_literal for parsed in as_model if parsed))
    assert tests and [t.args_literal for t in tests] == accepted[: len(tests)]
    assert sum(not parsed for parsed in as_model) > 0  # the check above saw rejections
    for test in tests:
        p, mode = values(test)
        assert isinstance(p, tuple) and len(p) == 2 and mode in (1, 2, 3)
    # With rejections, more tuples are asked of fuzz_inputs than wanted; still at most count come back.
    assert mutation_tests(pool, 10, 2, sig, "seed") == tests[:10]


def test_mutations_longer_than_the_literal_limit_are_dropped() -> None:
    text = "a" * (MAX_LITERAL_CHARS - 5)
    pool = [ParsedTest(f"({text!r},)")]
    tests = mutation_tests(pool, 50, 1, signature("def f(s: str) -> int:"), "long")
    assert tests  # shorter ones (a character dropped, reversed, emptied) are fine
    assert all(len(t.args_literal) <= MAX_LITERAL_CHARS for t in tests)
    # Duplicating a character makes the only tuples longer than the pool's: none survived.
    assert all(len(t.args_literal) <= len(pool[0].args_literal) for t in tests)


def test_pool_inputs_are_not_repeated_and_mutations_are_distinct() -> None:
    # Small ints: +-1, x2, negation and 0 land on other pool inputs all the time.
    pool = [ParsedTest(f"({i},)") for i in range(-3, 4)]
    tests = mutation_tests(pool, 30, 1, signature("def f(n: int) -> int:"), "ints")
    keys = [t.args_literal for t in tests]
    assert tests and len(set(keys)) == len(keys)
    assert not set(keys) & {t.args_literal for t in pool}


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    first = mutation_tests(MIXED_POOL, 40, 4, MIXED, "HumanEval/7")
    assert first == mutation_tests(MIXED_POOL, 40, 4, MIXED, "HumanEval/7")
    assert first != mutation_tests(MIXED_POOL, 40, 4, MIXED, "HumanEval/8")


def test_capped_at_count_and_a_smaller_count_is_a_prefix() -> None:
    many = mutation_tests(MIXED_POOL, 50, 4, MIXED, "p")
    assert len(many) == 50
    assert mutation_tests(MIXED_POOL, 5, 4, MIXED, "p") == many[:5]
    assert mutation_tests(MIXED_POOL, 0, 4, MIXED, "p") == []


def test_empty_pool_gives_no_mutations() -> None:
    assert mutation_tests([], 10, 4, MIXED, "p") == []


def test_few_distinct_mutations_end_early() -> None:
    # One bool parameter: only the flipped value is new.
    tests = mutation_tests([ParsedTest("(True,)")], 100, 1, signature("def f(b: bool) -> int:"), "b")
    assert [t.args_literal for t in tests] == ["(False,)"]


def test_without_a_signature_only_arity_is_checked() -> None:
    pool = [ParsedTest("([1, 'x'], {'k': 2})")]
    tests = mutation_tests(pool, 10, 2, None, "untyped")
    assert len(tests) == 10
    assert all(len(values(t)) == 2 for t in tests)


# --- select_tests: the model's tests, then the fill ----------------------------------------------


def list_pool(typical: int, boundary: int) -> list[ParsedTest]:
    """Typical tests ([i, i + 1, 7],) then boundary tests ([-1 - i],), with expected outputs."""
    pool = [ParsedTest(f"([{i}, {i + 1}, 7],)", str(i), TYPICAL) for i in range(typical)]
    return pool + [ParsedTest(f"([{-1 - i}],)", "0", BOUNDARY) for i in range(boundary)]


LIST = signature("def f(xs: list[int]) -> int:")


def test_select_fills_to_count_after_the_models_tests() -> None:
    pool = list_pool(5, 2)
    tests = select_tests(pool, 40, 0.3, 1, LIST, "P/1", True)
    assert len(tests) == 40
    # The model's tests first, all of them, unchanged; then only mutations.
    assert tests[:7] == pool
    assert all(t.kind == MUTATION and not t.expected_literal for t in tests[7:])
    assert tests[7:] == mutation_tests(pool, 33, 1, LIST, "P/1")


def test_select_never_displaces_model_tests_and_keeps_the_boundary_quota() -> None:
    # Enough model tests: the mix is exactly mix_tests', no mutation.
    pool = list_pool(80, 80)
    tests = select_tests(pool, 100, 0.3, 1, LIST, "P/2", True)
    assert tests == mix_tests(pool, 100, 0.3)
    assert sum(t.kind == BOUNDARY for t in tests) == 30 and not any(t.kind == MUTATION for t in tests)
    # Short: the boundary count is what the model wrote (mutations do not count toward any quota).
    short = list_pool(10, 4)
    filled = select_tests(short, 100, 0.3, 1, LIST, "P/2", True)
    assert filled[: len(short)] == mix_tests(short, 100, 0.3) == short
    assert sum(t.kind == BOUNDARY for t in filled) == 4


def test_select_with_the_fill_off_gives_only_the_models_tests() -> None:
    pool = list_pool(5, 2)
    assert select_tests(pool, 40, 0.3, 1, LIST, "P/3", False) == pool
    assert select_tests([], 40, 0.3, 1, LIST, "P/3", True) == []


def test_mutation_fill_setting_parses_from_env_and_flags() -> None:
    for raw, want in (("0", False), ("off", False), ("true", True)):
        env = {"UCODER_TESTSYNTH_MUTATION_FILL": raw}
        assert load_config(app.TestSynthConfig, "testsynth", [], env).mutation_fill is want
    assert load_config(app.TestSynthConfig, "testsynth", ["--mutation-fill", "no"], {}).mutation_fill is False
    with pytest.raises(ConfigError, match="UCODER_TESTSYNTH_MUTATION_FILL"):
        load_config(app.TestSynthConfig, "testsynth", [], {"UCODER_TESTSYNTH_MUTATION_FILL": "maybe"})
