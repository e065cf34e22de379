"""canonical_digest: equal behaviour gives equal digests, different behaviour different ones."""

from __future__ import annotations

import math
from typing import Any

import pytest

from services.executor.harness import DIGEST_CHARS, MAX_DEPTH, canonical_digest, value_repr

d = canonical_digest


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ({1: 2, 3: 4}, {3: 4, 1: 2}),
        ({"b": [1, {2, 3}], "a": None}, {"a": None, "b": [1, {3, 2}]}),
        ({3, 1, 2}, {2, 3, 1}),
        (frozenset({"x", "y"}), frozenset({"y", "x"})),
        (float("nan"), float("nan")),
        (float("nan"), -float("nan")),
        (0.1 + 0.2, 0.3),
        (-0.0, 0.0),
        ([0.1 + 0.2, -0.0], [0.3, 0.0]),
        (1e-300 * 1e-300, 0.0),
        (complex(0.1 + 0.2, -0.0), complex(0.3, 0.0)),
        ({1, "a", (2,), None}, {None, (2,), "a", 1}),  # unorderable mixed-type set
        ({1: "x", "1": "y"}, {"1": "y", 1: "x"}),
    ],
)
def test_equal(a: Any, b: Any) -> None:
    assert d(a) == d(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([1], (1,)),
        (1, True),
        (0, False),
        (1, 1.0),
        ("1", 1),
        ("a", b"a"),
        (b"a", bytearray(b"a")),
        (set(), frozenset()),
        ({}, set()),
        ([], ()),
        (None, "None"),
        (0.3, 0.3001),
        (float("inf"), float("-inf")),
        (float("inf"), float("nan")),
        ([1, 2], [2, 1]),
        ([[1], 2], [1, [2]]),
        ({1: 2}, {2: 1}),
        ({1: (2, 3)}, {1: [2, 3]}),
        ("ab", ["a", "b"]),
        (["a", "bc"], ["ab", "c"]),  # length prefixes prevent concatenation collisions
        (2**100, 2**100 + 1),
    ],
)
def test_different(a: Any, b: Any) -> None:
    assert d(a) != d(b)


def test_format_and_determinism() -> None:
    out = d([1, "x", {2: 3.5}])
    assert len(out) == DIGEST_CHARS
    int(out, 16)
    assert out == d([1, "x", {2: 3.5}])


def test_self_containing_list_digests() -> None:
    a: list[Any] = [1]
    a.append(a)
    b: list[Any] = [1]
    b.append(b)
    assert d(a) == d(b)
    assert d(a) != d([1, []])
    c: dict[str, Any] = {}
    c["self"] = c
    assert isinstance(d(c), str)


def test_deep_nesting_is_capped() -> None:
    v: list[Any] = []
    for _ in range(MAX_DEPTH * 10):
        v = [v]
    assert isinstance(d(v), str)


def test_large_values_digest() -> None:
    assert d(10**100_000) != d(10**100_000 + 1)  # beyond int max str digits
    big = list(range(300_000))
    assert d(big) == d(list(range(300_000)))
    assert d("x" * 5_000_000) != d("x" * 4_999_999)


class _Point:
    def __init__(self, x: int) -> None:
        self.x = x

    def __repr__(self) -> str:
        return f"_Point({self.x})"


class _BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class _Plain:
    pass


class _IntSub(int):
    pass


def test_other_objects() -> None:
    assert d(_Point(1)) == d(_Point(1))
    assert d(_Point(1)) != d(_Point(2))
    assert d(_Point(1)) != d("_Point(1)")
    assert d(_BadRepr()) == d(_BadRepr())
    assert d(_IntSub(1)) != d(1)  # a subclass cannot pose as an int
    assert d(_Plain()) == d(_Plain())  # default reprs differ only by address, which is dropped


def test_surrogates_and_unicode() -> None:
    assert d("\ud800") != d("\ud801")
    assert d("é") == d("\u00e9")


def test_value_repr() -> None:
    assert value_repr([1, 2]) == "[1, 2]"
    assert len(value_repr("x" * 10_000)) <= 200
    assert len(value_repr(list(range(10_000)), limit=50)) <= 50
    assert "_BadRepr" in value_repr(_BadRepr())
    a: list[Any] = []
    a.append(a)
    assert value_repr(a)
    assert value_repr(float("nan")) == "nan"
    assert math.isnan(float(value_repr(float("nan"))))


def test_integrity_check_uses_dict_version_tags_here() -> None:
    # The fast integrity check (CPython dict version tags read in place) must be the one in use
    # on the interpreter the executor runs; the slow fallback would cost ~30x more per candidate.
    from services.executor import harness

    reader = harness._dict_version_reader()
    assert reader is not None
    d: dict[str, int] = {}
    tag = reader(d)
    before = tag.value
    d["k"] = 1
    assert tag.value != before


def test_value_repr_is_bounded_like_reprlib_and_ignores_a_replaced_repr() -> None:
    import builtins

    for value in ([1, (2,)], (), set(), {3, 1, 2}, frozenset({1}), {"a": [1, (2,)]}, b"ab", "é", 1.5, None):
        assert value_repr(value) == repr(value)
    assert value_repr(list(range(30))) == repr(list(range(20)))[:-1] + ", ...]"
    assert value_repr([[[[[[1]]]]]]) == "[[[[[...]]]]]"
    assert value_repr("x" * 300).startswith("'" + "x" * 150)
    original = builtins.repr
    builtins.repr = lambda value: "forged"
    try:
        assert value_repr([3, "a"]) == "[3, 'a']" and value_repr(7) == "7"
    finally:
        builtins.repr = original
