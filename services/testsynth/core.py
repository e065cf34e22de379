"""Pure logic of test synthesis (stage 4, test understanding probing).

The base model is shown one worked example — a function skeleton followed by a block of
``assert f(...) == expected`` lines, chosen to match the problem's arity and the shape of its
first parameter — then the problem's skeleton and the start of its own block,
``assert <entry_point>(``. There are two prompt variants that differ only in the
example block and its header comment: *typical* inputs, and *boundary* inputs (empty,
zero, negative, single element, large, duplicates). Each line the model writes is one
test: the arguments must be Python literals of the signature's arity and, where the
signature annotates them, of the annotated types (they become the test input); the
right-hand side, when it is a literal of the annotated return type, is kept as the
model's *guess* of the output (used only by the pass/fail signature mode, never as
ground truth).

When the model's rounds end short of the requested count, :func:`mutation_tests` tops the
tests up with type-preserving mutations of the model's own inputs (kind :data:`MUTATION`, no
expected output), validated like the model's lines.

No I/O; no third-party imports (``ucoder_common.mutation`` is pure standard library).
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ucoder_common.mutation import fuzz_inputs

__all__ = [
    "BOUNDARY",
    "CONTAINER",
    "KINDS",
    "MAX_LITERAL_CHARS",
    "MUTATION",
    "REASONS",
    "SCALAR",
    "STRING",
    "STRINGS",
    "TESTS_STOP",
    "TYPICAL",
    "ParseReport",
    "ParsedTest",
    "Signature",
    "boundary_quota",
    "build_tests_prompt",
    "call_line",
    "calls_prefix",
    "canonical_literal",
    "dedupe_tests",
    "docstring_tests",
    "kind_quotas",
    "make_test_id",
    "mix_tests",
    "mutation_tests",
    "param_shape",
    "parse_signature",
    "parse_test_inputs",
    "parse_tests",
    "problem_signature",
    "round_request",
    "seed_tests",
    "select_tests",
    "split_samples",
    "value_matches",
]

#: Stop sequences: a blank line (the end of the block of asserts) or the start of
#: any other top-level code.
TESTS_STOP: list[str] = ["\n\n", "\ndef ", "\nclass ", "\n#", "\nif __name__", "\nprint("]

#: An argument tuple (or expected value) whose canonical literal is longer than this
#: is rejected: huge inputs make slow, unreadable tests.
MAX_LITERAL_CHARS = 2000

#: The two kinds of test, one prompt variant each (recorded in ``TestCase.kind``).
TYPICAL = "typical"
BOUNDARY = "boundary"
KINDS: tuple[str, ...] = (TYPICAL, BOUNDARY)
#: The kind of a test made by :func:`mutation_tests` (no prompt; not one of :data:`KINDS`).
MUTATION = "mutation"

#: Why a call line was rejected (keys of ``ParseReport.rejected``), and why an expected
#: value was dropped while its input was kept (keys of ``ParseReport.guesses_dropped``:
#: ``not_literal``, ``too_large``, ``type``).
REASONS: dict[str, str] = {
    "syntax": "the line is not valid Python (often the last line, cut by the token budget)",
    "not_a_call": "the assertion is not a plain call of the function",
    "arity": "the call has the wrong number of arguments",
    "keywords": "the call uses keyword or */** arguments",
    "not_literal": "an argument is not a finite Python literal",
    "too_large": "the arguments' literal is longer than MAX_LITERAL_CHARS",
    "type": "an argument does not match the signature's annotation",
}

#: How a rejected line was made a test (keys of ``ParseReport.repaired``). Each repair only
#: recovers an input the line states unambiguously; the checks of :func:`_check_args` still apply.
REPAIRS: dict[str, str] = {
    "joined": "a call spread over several lines, joined (it parsed only whole)",
    "keywords": "keyword arguments that name the signature's parameters, put in their positions",
    "swapped": "arguments in the wrong order: the one reordering that matches every annotation",
}
#: Lines a call may span to be joined (a longer one is most likely cut by the token budget).
MAX_JOINED_LINES = 8

_HEADERS: dict[str, str] = {
    TYPICAL: "# Typical calls of {name}, one per line:\n",
    BOUNDARY: (
        "# Edge cases of {name} (empty, zero, negative, single element, large, duplicates), one per line:\n"
    ),
}


@dataclass(frozen=True)
class _Example:
    """A worked example: a skeleton and, per kind, six ``assert`` lines with the right answers."""

    name: str
    skeleton: str
    calls: dict[str, tuple[str, ...]]


def _skeleton(signature: str, doc: str, call: str, output: str) -> str:
    return f'{signature}\n    """{doc}\n\n    >>> {call}\n    {output}\n    """\n    ...\n'


# The base model copies the example's argument count and the form of its arguments: a
# 1-parameter problem shown a 2-parameter example gets 2-argument calls (1 of 14 lines kept on
# the default model), and a list parameter shown an int example gets ints (HumanEval/35
# `max_element(l: list)`: 222 of 365 lines rejected as ints). So the example is chosen by arity
# and by the *shape* of the first parameter: a scalar, a container, a string, or a container of
# strings (`list[str]`, where an example of int lists made the model write int lists).
SCALAR, CONTAINER, STRING, STRINGS = "scalar", "container", "string", "strings"
_EXAMPLES: dict[tuple[int, str], _Example] = {
    (1, SCALAR): _Example(
        "digit_sum",
        _skeleton(
            "def digit_sum(n: int) -> int:",
            "Return the sum of the decimal digits of n, ignoring its sign.",
            "digit_sum(123)",
            "6",
        ),
        {
            TYPICAL: (
                "assert digit_sum(123) == 6",
                "assert digit_sum(4071) == 12",
                "assert digit_sum(58) == 13",
                "assert digit_sum(-45) == 9",
                "assert digit_sum(2024) == 8",
                "assert digit_sum(99) == 18",
            ),
            BOUNDARY: (
                "assert digit_sum(0) == 0",
                "assert digit_sum(-7) == 7",
                "assert digit_sum(5) == 5",
                "assert digit_sum(1000000000) == 1",
                "assert digit_sum(-999999999999) == 108",
                "assert digit_sum(11111) == 5",
            ),
        },
    ),
    (1, CONTAINER): _Example(
        "count_evens",
        _skeleton(
            "def count_evens(nums: list[int]) -> int:",
            "Return how many numbers in nums are even.",
            "count_evens([1, 2, 3, 4])",
            "2",
        ),
        {
            TYPICAL: (
                "assert count_evens([1, 2, 3, 4]) == 2",
                "assert count_evens([10, 15, 20]) == 2",
                "assert count_evens([7, 9, 11]) == 0",
                "assert count_evens([2, 2, 8, 5, 6]) == 4",
                "assert count_evens([-4, 3, -2, 1]) == 2",
                "assert count_evens([100, 37, 64, 81, 12]) == 3",
            ),
            BOUNDARY: (
                "assert count_evens([]) == 0",
                "assert count_evens([0]) == 1",
                "assert count_evens([-2, -1]) == 1",
                "assert count_evens([1000000, 999999]) == 1",
                "assert count_evens([4, 4, 4, 4]) == 4",
                "assert count_evens([1]) == 0",
            ),
        },
    ),
    (1, STRING): _Example(
        "count_vowels",
        _skeleton(
            "def count_vowels(text: str) -> int:",
            "Return how many vowels (a, e, i, o, u, in either case) text has.",
            "count_vowels('hello')",
            "2",
        ),
        {
            TYPICAL: (
                "assert count_vowels('hello') == 2",
                "assert count_vowels('Programming') == 3",
                "assert count_vowels('sky') == 0",
                "assert count_vowels('Banana split') == 4",
                "assert count_vowels('OpenAI') == 4",
                "assert count_vowels('queue') == 4",
            ),
            BOUNDARY: (
                "assert count_vowels('') == 0",
                "assert count_vowels('a') == 1",
                "assert count_vowels('AEIOU') == 5",
                "assert count_vowels('bcdfg') == 0",
                "assert count_vowels(' ') == 0",
                "assert count_vowels('aaaaaaaaaa') == 10",
            ),
        },
    ),
    (1, STRINGS): _Example(
        "initials",
        _skeleton(
            "def initials(words: list[str]) -> str:",
            "Return the upper-cased first letters of the non-empty words, joined.",
            "initials(['hello', 'world'])",
            "'HW'",
        ),
        {
            TYPICAL: (
                "assert initials(['hello', 'world']) == 'HW'",
                "assert initials(['python', 'is', 'fun']) == 'PIF'",
                "assert initials(['a', 'b', 'c']) == 'ABC'",
                "assert initials(['Graph', 'theory']) == 'GT'",
                "assert initials(['x-ray', 'yak', 'zebra']) == 'XYZ'",
                "assert initials(['one', 'two', 'three', 'four']) == 'OTTF'",
            ),
            BOUNDARY: (
                "assert initials([]) == ''",
                "assert initials(['']) == ''",
                "assert initials(['a']) == 'A'",
                "assert initials(['', 'b', '']) == 'B'",
                "assert initials(['same', 'same']) == 'SS'",
                "assert initials(['abc', 'abd', 'abe', 'abf', 'abg', 'abh', 'abi']) == 'AAAAAAA'",
            ),
        },
    ),
    (2, CONTAINER): _Example(
        "merge_counts",
        _skeleton(
            "def merge_counts(words: list[str], min_len: int) -> dict[str, int]:",
            "Count the words that have at least min_len characters, ignoring case.",
            "merge_counts(['Apple', 'apple', 'fig'], 4)",
            "{'apple': 2}",
        ),
        {
            TYPICAL: (
                "assert merge_counts(['Apple', 'apple', 'fig'], 4) == {'apple': 2}",
                "assert merge_counts(['tree', 'bush', 'Tree'], 3) == {'tree': 2, 'bush': 1}",
                "assert merge_counts(['kiwi', 'melon', 'plum'], 5) == {'melon': 1}",
                "assert merge_counts(['a', 'bb', 'ccc'], 2) == {'bb': 1, 'ccc': 1}",
                "assert merge_counts(['Sun', 'SUN', 'moon'], 3) == {'sun': 2, 'moon': 1}",
                "assert merge_counts(['hello', 'world'], 5) == {'hello': 1, 'world': 1}",
            ),
            BOUNDARY: (
                "assert merge_counts([], 3) == {}",
                "assert merge_counts(['a', 'bb', 'ccc'], 0) == {'a': 1, 'bb': 1, 'ccc': 1}",
                "assert merge_counts(['x'], -1) == {'x': 1}",
                "assert merge_counts(['same', 'same', 'same'], 4) == {'same': 3}",
                "assert merge_counts(['Tree', 'TREE', 'tree', 'bush'], 5) == {}",
                "assert merge_counts([''], 0) == {'': 1}",
            ),
        },
    ),
    (2, SCALAR): _Example(
        "gcd",
        _skeleton(
            "def gcd(a: int, b: int) -> int:",
            "Return the greatest common divisor of a and b (never negative; 0 when both are 0).",
            "gcd(12, 18)",
            "6",
        ),
        {
            TYPICAL: (
                "assert gcd(12, 18) == 6",
                "assert gcd(35, 10) == 5",
                "assert gcd(7, 3) == 1",
                "assert gcd(100, 75) == 25",
                "assert gcd(-24, 36) == 12",
                "assert gcd(81, 27) == 27",
            ),
            BOUNDARY: (
                "assert gcd(0, 0) == 0",
                "assert gcd(0, 5) == 5",
                "assert gcd(-4, -6) == 2",
                "assert gcd(1, 1000000007) == 1",
                "assert gcd(9, 9) == 9",
                "assert gcd(1000000000, 500000000) == 500000000",
            ),
        },
    ),
    (2, STRING): _Example(
        "count_occurrences",
        _skeleton(
            "def count_occurrences(text: str, sub: str) -> int:",
            "Return how many non-overlapping times sub occurs in text (case-sensitive).",
            "count_occurrences('banana', 'an')",
            "2",
        ),
        {
            TYPICAL: (
                "assert count_occurrences('banana', 'an') == 2",
                "assert count_occurrences('hello world', 'o') == 2",
                "assert count_occurrences('abcabc', 'abc') == 2",
                "assert count_occurrences('mississippi', 'ss') == 2",
                "assert count_occurrences('aaaa', 'b') == 0",
                "assert count_occurrences('The cat', 'cat') == 1",
            ),
            BOUNDARY: (
                "assert count_occurrences('', 'a') == 0",
                "assert count_occurrences('aaa', 'aa') == 1",
                "assert count_occurrences('a', 'a') == 1",
                "assert count_occurrences('xyz', 'xyzw') == 0",
                "assert count_occurrences('aaaaaa', 'a') == 6",
                "assert count_occurrences('AbA', 'a') == 0",
            ),
        },
    ),
    (3, SCALAR): _Example(
        "clamp",
        _skeleton(
            "def clamp(value: float, low: float, high: float) -> float:",
            "Return value limited to the range [low, high].",
            "clamp(5.0, 0.0, 3.0)",
            "3.0",
        ),
        {
            TYPICAL: (
                "assert clamp(5.0, 0.0, 3.0) == 3.0",
                "assert clamp(2.0, 0.0, 3.0) == 2.0",
                "assert clamp(-1.5, 0.0, 3.0) == 0.0",
                "assert clamp(7.25, 5.0, 10.0) == 7.25",
                "assert clamp(12.0, 5.0, 10.0) == 10.0",
                "assert clamp(0.5, -1.0, 1.0) == 0.5",
            ),
            BOUNDARY: (
                "assert clamp(0.0, 0.0, 0.0) == 0.0",
                "assert clamp(3.0, 0.0, 3.0) == 3.0",
                "assert clamp(0.0, 0.0, 3.0) == 0.0",
                "assert clamp(-1e9, -1e9, 1e9) == -1e9",
                "assert clamp(1e18, 0.0, 1.0) == 1.0",
                "assert clamp(-0.0, -5.0, -1.0) == -1.0",
            ),
        },
    ),
}
# Without an annotation (or for a shape an arity has no example of) the arity's default;
# a container of strings falls back to a container.
_DEFAULT_SHAPE: dict[int, str] = {1: SCALAR, 2: CONTAINER, 3: SCALAR}
_FALLBACK_SHAPE: dict[str, str] = {STRINGS: CONTAINER}

_CONTAINERS = {"list", "List", "tuple", "Tuple", "set", "Set", "frozenset", "FrozenSet", "dict", "Dict"}
_CONTAINERS |= {"Sequence", "MutableSequence", "Iterable", "Collection", "Mapping", "MutableMapping"}


def param_shape(annotation: ast.expr | None) -> str:
    """``strings``, ``container``, ``string`` or ``scalar`` for a parameter annotation; ``""`` when unknown.

    ``strings`` is a list, tuple, set or sequence whose elements are ``str``; ``Optional[X]`` and
    ``X | None`` are the shape of ``X``.
    """
    if annotation is None:
        return ""
    node = annotation
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        try:
            node = ast.parse(node.value.strip(), mode="eval").body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return ""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left = param_shape(node.left)
        return left or param_shape(node.right)
    if isinstance(node, ast.Subscript):
        base = _type_name(node.value)
        if base == "Optional":
            return param_shape(node.slice)
        if base not in _CONTAINERS:
            return ""
        element = node.slice.elts[0] if isinstance(node.slice, ast.Tuple) and node.slice.elts else node.slice
        mapping = base in ("dict", "Dict", "Mapping", "MutableMapping")
        return STRINGS if not mapping and param_shape(element) == STRING else CONTAINER
    name = _type_name(node)
    if name in _CONTAINERS:
        return CONTAINER
    if name == "str":
        return STRING
    if name in ("int", "float", "bool", "complex"):
        return SCALAR
    return ""


@dataclass(frozen=True)
class ParsedTest:
    """One test input, and optionally the model's guess of the output.

    ``args_literal`` is a canonical tuple literal of the arguments, always a tuple
    even for one argument (``"(5,)"``); ``expected_literal`` is a canonical literal
    of the guessed output or ``""`` when the line gave none (or an unusable one);
    ``kind`` is the prompt variant that produced it (:data:`TYPICAL` or :data:`BOUNDARY`), or
    :data:`MUTATION` for an input derived from the model's own.
    """

    args_literal: str
    expected_literal: str = ""
    kind: str = TYPICAL


@dataclass(frozen=True)
class Signature:
    """The annotations of a function's positional parameters (None where absent) and its return,
    and the parameters' names (empty when unknown)."""

    params: tuple[ast.expr | None, ...]
    returns: ast.expr | None = None
    names: tuple[str, ...] = ()


@dataclass
class ParseReport:
    """What :func:`parse_tests` made of a completion.

    ``rejected`` counts call lines dropped, by reason (see :data:`REASONS`);
    ``guesses_dropped`` counts expected values dropped from tests that were kept;
    ``repaired`` counts the kept tests that only a repair made valid (see :data:`REPAIRS`).
    """

    tests: list[ParsedTest] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    guesses_dropped: Counter[str] = field(default_factory=Counter)
    repaired: Counter[str] = field(default_factory=Counter)


# --- prompts ----------------------------------------------------------------------------


def calls_prefix(entry_point: str) -> str:
    """The text the tests prompt ends with; pass it as ``prefix`` to :func:`parse_tests`."""
    return f"assert {entry_point}("


def call_line(entry_point: str, test: ParsedTest) -> str:
    """``test`` written as the line the model would write: ``assert f(1, [2]) == 3`` (or without
    ``== ...`` when it has no expected output)."""
    args = ast.parse(test.args_literal, mode="eval").body
    assert isinstance(args, ast.Tuple), "args_literal is always a tuple literal"
    call = f"{entry_point}({', '.join(ast.unparse(a) for a in args.elts)})"
    return f"assert {call} == {test.expected_literal}" if test.expected_literal else f"assert {call}"


def seed_tests(pool: Sequence[ParsedTest], kind: str, count: int, offset: int = 0) -> list[ParsedTest]:
    """Up to ``count`` of the problem's valid tests to show the model as the first lines of its
    block: those of ``kind`` first, then the others, starting at ``offset`` (a round number, so
    that successive rounds show different ones)."""
    ordered = [t for t in pool if t.kind == kind] + [t for t in pool if t.kind != kind]
    if not ordered or count < 1:
        return []
    start = offset * count % len(ordered)
    rotated = ordered[start:] + ordered[:start]
    return rotated[:count]


def build_tests_prompt(
    problem_prompt: str,
    entry_point: str,
    arity: int = 2,
    kind: str = TYPICAL,
    signature: Signature | None = None,
    seeds: Sequence[ParsedTest] = (),
) -> str:
    """A worked example of ``kind``, then the skeleton and an open test line.

    The example has the problem's arity (arities without one get the two-argument examples)
    and, when ``signature`` annotates the first parameter, its shape (:func:`param_shape`).
    ``seeds`` (valid tests of this problem: its docstring examples, earlier rounds' lines) open
    the problem's own block, so that the model continues with literal calls of the right arity
    and types instead of, say, the parameters' names.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    example_arity = arity if arity in _DEFAULT_SHAPE else 2
    first = signature.params[0] if signature is not None and signature.params else None
    shape = param_shape(first)
    if (example_arity, shape) not in _EXAMPLES:
        shape = _FALLBACK_SHAPE.get(shape, "")
    if (example_arity, shape) not in _EXAMPLES:
        shape = _DEFAULT_SHAPE[example_arity]
    example = _EXAMPLES[(example_arity, shape)]
    skeleton = problem_prompt if problem_prompt.endswith("\n") else problem_prompt + "\n"
    return (
        example.skeleton
        + "\n\n"
        + _HEADERS[kind].format(name=example.name)
        + "\n".join(example.calls[kind])
        + "\n\n\n"
        + skeleton
        + "    ...\n\n\n"
        + _HEADERS[kind].format(name=entry_point)
        + "".join(call_line(entry_point, t) + "\n" for t in seeds)
        + calls_prefix(entry_point)
    )


# --- literals ---------------------------------------------------------------------------


def canonical_literal(value: object) -> str:
    """A deterministic literal for ``value``: like ``repr``, but sets are sorted.

    (``repr`` of a set of strings depends on the hash seed, so two processes would
    write the same test differently.) The result always reads back with
    ``ast.literal_eval``. Raises ``ValueError`` for values with no such literal:
    non-finite floats, or types ``literal_eval`` cannot produce.
    """
    if value is None or isinstance(value, bool | int | str | bytes):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"non-finite float {value!r}")
        return repr(value)
    if isinstance(value, complex):
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            raise ValueError(f"non-finite complex {value!r}")
        return repr(value)
    if isinstance(value, tuple):
        items = [canonical_literal(v) for v in value]
        return "(" + items[0] + ",)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if isinstance(value, list):
        return "[" + ", ".join(canonical_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{canonical_literal(k)}: {canonical_literal(v)}" for k, v in value.items()) + "}"
        )
    if isinstance(value, set):
        items = sorted(canonical_literal(v) for v in value)
        return "{" + ", ".join(items) + "}" if items else "set()"
    raise ValueError(f"unsupported literal type {type(value).__name__}")


def _literal(node: ast.expr) -> tuple[object, str] | str:
    """The value and canonical literal of an expression node, or the reason it is unusable."""
    try:
        value = ast.literal_eval(node)
        text = canonical_literal(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return "not_literal"
    if len(text) > MAX_LITERAL_CHARS:
        return "too_large"
    return value, text


# --- signature and types ----------------------------------------------------------------


def parse_signature(source: str, entry_point: str) -> Signature | None:
    """The annotations of ``def entry_point`` in ``source`` (a signature line or a whole skeleton).

    ``source`` may end without a body (``def f(a: int) -> int:`` or a skeleton that stops
    after its docstring); a body is added before parsing. None when it does not parse or
    defines no such function.
    """
    text = source if source.endswith("\n") else source + "\n"
    for candidate in (text + "    ...\n", text):
        try:
            module = ast.parse(candidate)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == entry_point:
                positional = [*node.args.posonlyargs, *node.args.args]
                return Signature(
                    tuple(a.annotation for a in positional), node.returns, tuple(a.arg for a in positional)
                )
    return None


def problem_signature(signature_line: str, prompt: str, entry_point: str) -> Signature | None:
    """The annotations of a problem's entry point: from its signature line, else its skeleton;
    None = arity checks only."""
    return parse_signature(signature_line, entry_point) or parse_signature(prompt, entry_point)


def kind_quotas(count: int, boundary_ratio: float) -> dict[str, int]:
    """How many of ``count`` tests to ask as each kind (:func:`boundary_quota` boundary cases)."""
    boundary = boundary_quota(count, boundary_ratio)
    return {BOUNDARY: boundary, TYPICAL: count - boundary}


def _type_name(node: ast.expr) -> str | None:
    """``int`` for ``int``, ``List`` for ``typing.List``; None for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _items(value: object) -> list[object] | None:
    """The elements of a container literal, or None for a scalar."""
    if isinstance(value, list | tuple | set | str | bytes):
        return list(value)
    if isinstance(value, dict):
        return list(value)
    return None


def _all_match(items: Iterable[object], annotation: ast.expr | None) -> bool:
    return annotation is None or all(value_matches(item, annotation) for item in items)


def _literal_choices(nodes: list[ast.expr]) -> list[object]:
    choices: list[object] = []
    for node in nodes:
        try:
            choices.append(ast.literal_eval(node))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
    return choices


_INT_LIKE = {"int": (int,), "float": (int, float), "complex": (int, float, complex)}
_SEQUENCES = {"Sequence", "MutableSequence"}
_ITERABLES = {"Iterable", "Collection", "Container", "Reversible"}
_SETS = {"set", "Set", "frozenset", "FrozenSet", "AbstractSet", "MutableSet"}
_MAPPINGS = {"dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "DefaultDict", "defaultdict"}


def _matches_named(value: object, name: str, args: list[ast.expr] | None) -> bool:
    """Whether ``value`` is an instance of the type called ``name`` with type arguments ``args``."""
    first = args[0] if args else None
    if name in ("Any", "object"):
        return True
    if name in ("None", "NoneType"):
        return value is None
    if name in _INT_LIKE:
        # bool is an int subclass, but True for an int parameter is a model mistake, not a test.
        return isinstance(value, _INT_LIKE[name]) and not isinstance(value, bool)
    if name == "bool":
        return isinstance(value, bool)
    if name == "str":
        return isinstance(value, str)
    if name == "bytes":
        return isinstance(value, bytes)
    if name in ("list", "List"):
        return isinstance(value, list) and _all_match(value, first)
    if name in _SETS:
        return isinstance(value, set) and _all_match(value, first)
    if name in _MAPPINGS:
        if not isinstance(value, dict):
            return False
        if args is None or len(args) != 2:
            return True
        return _all_match(value.keys(), args[0]) and _all_match(value.values(), args[1])
    if name in ("tuple", "Tuple"):
        if not isinstance(value, tuple):
            return False
        if args is None:
            return True
        if len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is Ellipsis:
            return _all_match(value, args[0])
        return len(value) == len(args) and all(value_matches(v, a) for v, a in zip(value, args, strict=True))
    if name in _SEQUENCES:
        return isinstance(value, list | tuple | str | bytes) and _all_match(value, first)
    if name in _ITERABLES:
        items = _items(value)
        return items is not None and _all_match(items, first)
    if name == "Optional":
        return value is None or first is None or value_matches(value, first)
    if name == "Union":
        return args is None or any(value_matches(value, a) for a in args)
    if name == "Literal":
        # Equal and of the same type: Literal[1] does not admit True.
        return args is None or any(
            type(value) is type(choice) and value == choice for choice in _literal_choices(args)
        )
    return True  # an annotation this checker does not know: accepted


def value_matches(value: object, annotation: ast.expr | None) -> bool:
    """Whether a literal ``value`` fits a type ``annotation`` (an AST node; None = unannotated).

    Knows the builtins and their ``typing`` aliases, nested: ``int`` (not ``bool``),
    ``float`` (an ``int`` too), ``complex``, ``bool``, ``str``, ``bytes``, ``list[...]``,
    ``set[...]``, ``dict[K, V]``, ``tuple[A, B]`` / ``tuple[A, ...]``, ``Optional[X]``,
    ``X | None``, ``Union[...]``, ``Literal[...]``, ``Sequence``/``Iterable``/``Mapping``,
    ``None``, ``Any``/``object``, string forward references. Any other annotation
    (a class of the problem's own, ``Callable``, ...) accepts every value.
    """
    if annotation is None:
        return True
    if isinstance(annotation, ast.Constant):
        if annotation.value is None:
            return value is None
        if isinstance(annotation.value, str):  # a forward reference: "list[int]"
            try:
                inner = ast.parse(annotation.value.strip(), mode="eval").body
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                return True
            return value_matches(value, inner)
        return True
    if isinstance(annotation, ast.BinOp) and isinstance(annotation.op, ast.BitOr):
        return value_matches(value, annotation.left) or value_matches(value, annotation.right)
    if isinstance(annotation, ast.Subscript):
        name = _type_name(annotation.value)
        if name is None:
            return True
        inner_node = annotation.slice
        args = list(inner_node.elts) if isinstance(inner_node, ast.Tuple) else [inner_node]
        return _matches_named(value, name, args)
    name = _type_name(annotation)
    return True if name is None else _matches_named(value, name, None)


# --- parsing test lines -----------------------------------------------------------------


def _check_args(nodes: Sequence[ast.expr], arity: int, signature: Signature | None) -> tuple[str, str]:
    """The canonical tuple literal of a call's arguments and ``""``, or ``""`` and the reason
    they are no test input (``arity``, ``not_literal``, ``too_large``, ``type``).

    The one check of an input, for the model's lines and for mutations of them alike.
    """
    if len(nodes) != arity:
        return "", "arity"
    values: list[object] = []
    texts: list[str] = []
    for node in nodes:
        parsed = _literal(node)
        if isinstance(parsed, str):
            return "", parsed
        values.append(parsed[0])
        texts.append(parsed[1])
    args_literal = "(" + texts[0] + ",)" if arity == 1 else "(" + ", ".join(texts) + ")"
    if len(args_literal) > MAX_LITERAL_CHARS:
        return "", "too_large"
    # Types are checked only where the signature's parameter count agrees with the arity.
    params = signature.params if signature is not None and len(signature.params) == arity else None
    if params is not None and not all(value_matches(v, a) for v, a in zip(values, params, strict=True)):
        return "", "type"
    return args_literal, ""


def _keyword_positions(call: ast.Call, arity: int, signature: Signature | None) -> list[ast.expr] | None:
    """The call's arguments in parameter order, when its keywords name exactly the parameters its
    positional arguments leave open (``f([1, 2], k=3)``); None otherwise."""
    names = signature.names if signature is not None else ()
    if len(names) != arity or len(call.args) > arity or any(k.arg is None for k in call.keywords):
        return None
    slots: list[ast.expr | None] = [*call.args, *([None] * (arity - len(call.args)))]
    for keyword in call.keywords:
        if keyword.arg not in names or slots[names.index(keyword.arg)] is not None:
            return None
        slots[names.index(keyword.arg)] = keyword.value
    filled = [node for node in slots if node is not None]
    return filled if len(filled) == arity else None


def _unswapped(nodes: Sequence[ast.expr], arity: int, signature: Signature | None) -> str:
    """The args literal of the one reordering of ``nodes`` whose every argument matches its
    parameter's annotation, or ``""`` when there is none or more than one."""
    if signature is None or len(signature.params) != arity or not 2 <= arity <= 3:
        return ""
    if all(a is None for a in signature.params):
        return ""
    found: set[str] = set()
    for order in itertools.permutations(range(arity)):
        if order == tuple(range(arity)):
            continue
        args_literal, reason = _check_args([nodes[i] for i in order], arity, signature)
        if not reason:
            found.add(args_literal)
    return found.pop() if len(found) == 1 else ""


def _parse_line(
    line: str, entry_point: str, arity: int, signature: Signature | None, kind: str, repair: bool = True
) -> tuple[ParsedTest | None, str, str]:
    """Parse one ``assert f(...) == x`` / ``assert f(...)`` / ``f(...)`` line.

    Returns ``(test, "", repaired)``, ``(test, guess_reason, repaired)`` when the expected value
    was dropped, or ``(None, reason, "")`` when the line is rejected; ``repaired`` names the
    :data:`REPAIRS` entry that made the call valid (``""`` for none; ``joined`` is
    :func:`parse_tests`'s). ``repair`` False rejects what a repair would have recovered.
    """
    try:
        module = ast.parse(line)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None, "syntax", ""
    if len(module.body) != 1:
        return None, "syntax", ""
    statement = module.body[0]
    expected_node: ast.expr | None = None
    call_node: ast.expr
    if isinstance(statement, ast.Expr):
        call_node = statement.value
    elif isinstance(statement, ast.Assert):
        test = statement.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1:
            call_node = test.left
            op = test.ops[0]
            right = test.comparators[0]
            is_none = isinstance(op, ast.Is) and isinstance(right, ast.Constant) and right.value is None
            if isinstance(op, ast.Eq) or is_none:
                expected_node = right
        elif isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            call_node = test.operand
        else:
            call_node = test
    else:
        return None, "not_a_call", ""
    if not (
        isinstance(call_node, ast.Call)
        and isinstance(call_node.func, ast.Name)
        and call_node.func.id == entry_point
    ):
        return None, "not_a_call", ""
    if any(isinstance(arg, ast.Starred) for arg in call_node.args):
        return None, "keywords", ""
    nodes: list[ast.expr] = list(call_node.args)
    repaired = ""
    if call_node.keywords:
        ordered = _keyword_positions(call_node, arity, signature) if repair else None
        if ordered is None:
            return None, "keywords", ""
        nodes, repaired = ordered, "keywords"
    args_literal, reason = _check_args(nodes, arity, signature)
    if reason == "type" and repair:
        args_literal = _unswapped(nodes, arity, signature)
        if args_literal:
            reason, repaired = "", repaired or "swapped"
    if reason:
        return None, reason, ""
    if expected_node is None:
        return ParsedTest(args_literal, "", kind), "", repaired
    expected = _literal(expected_node)
    if isinstance(expected, str):
        return ParsedTest(args_literal, "", kind), expected, repaired
    if signature is not None and not value_matches(expected[0], signature.returns):
        return ParsedTest(args_literal, "", kind), "type", repaired
    return ParsedTest(args_literal, expected[1], kind), "", repaired


def _mentions_call(line: str, entry_point: str) -> bool:
    stripped = line.strip()
    return stripped.startswith((f"assert {entry_point}(", f"{entry_point}(", f"assert not {entry_point}("))


def parse_tests(
    completion: str,
    entry_point: str,
    arity: int,
    prefix: str = "",
    signature: Signature | None = None,
    kind: str = TYPICAL,
    repair: bool = True,
) -> ParseReport:
    """Parse and validate the test lines of ``prefix + completion``.

    Each line is ``assert entry_point(a, b) == expected`` (also ``is None``), or a
    bare ``assert entry_point(...)`` / ``entry_point(...)`` (no expected output). It
    is a test when the call has exactly ``arity`` positional arguments, no ``*``/``**``,
    every argument is a literal (``ast.literal_eval``) with a finite, canonical form and,
    when ``signature`` annotates it, of the annotated type. An expected value that is not
    a literal, or not of the annotated return type, is dropped as a guess; the input is kept.

    With ``repair`` (see :data:`REPAIRS`), a call that parses only when joined with the lines
    after it (up to :data:`MAX_JOINED_LINES`, none of them a new call) is joined; keyword
    arguments naming the signature's parameters are put in their positions; and arguments that
    match the annotations in exactly one other order are reordered. Without it, such lines are
    rejected as ``syntax``, ``keywords`` and ``type``.

    Blank lines are skipped; parsing stops at the first non-blank line that is not a
    call of ``entry_point`` (the model has moved on to other code). Tests come in
    order, duplicates included (see :func:`dedupe_tests`), each marked with ``kind``.
    """
    if arity < 1:
        raise ValueError(f"arity must be >= 1, got {arity}")
    report = ParseReport()
    lines = (prefix + completion).replace("\r\n", "\n").split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            continue
        if not _mentions_call(line, entry_point):
            break
        test, reason, repaired = _parse_line(line.strip(), entry_point, arity, signature, kind, repair)
        if reason == "syntax" and repair:
            for end in range(index, min(index + MAX_JOINED_LINES - 1, len(lines))):
                if not lines[end].strip() or _mentions_call(lines[end], entry_point):
                    break
                joined = " ".join(part.strip() for part in lines[index - 1 : end + 1])
                test, reason, repaired = _parse_line(joined, entry_point, arity, signature, kind, repair)
                if reason != "syntax":
                    repaired = repaired or "joined"
                    index = end + 1
                    break
        if test is None:
            report.rejected[reason] += 1
            continue
        report.tests.append(test)
        if repaired:
            report.repaired[repaired] += 1
        if reason:
            report.guesses_dropped[reason] += 1
    return report


def parse_test_inputs(
    completion: str, entry_point: str, arity: int, prefix: str = ""
) -> tuple[list[ParsedTest], int]:
    """:func:`parse_tests` without types: the tests and how many call lines were rejected."""
    report = parse_tests(completion, entry_point, arity, prefix)
    return report.tests, report.rejected.total()


def docstring_tests(
    problem_prompt: str, entry_point: str, arity: int, signature: Signature | None = None
) -> list[ParsedTest]:
    """The ``>>> entry_point(...)`` examples of the skeleton's docstring, as typical tests.

    The line after the call, when it is not another prompt, is the expected output. These
    are the problem author's own examples, so they come first among a problem's tests;
    they are validated like the model's own lines.
    """
    lines = [line.strip() for line in problem_prompt.splitlines()]
    asserts: list[str] = []
    for index, line in enumerate(lines):
        if not line.startswith(f">>> {entry_point}("):
            continue
        call = line.removeprefix(">>> ")
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if following and not following.startswith(">>>") and following != '"""':
            asserts.append(f"assert {call} == {following}")
        else:
            asserts.append(call)
    return parse_tests("\n".join(asserts), entry_point, arity, signature=signature).tests


# --- dedupe and mix ---------------------------------------------------------------------


def _dedupe_key(args_literal: str) -> str:
    """The canonical form of an argument tuple, so ``(1,)`` and ``(1, )`` are one test."""
    try:
        return canonical_literal(ast.literal_eval(args_literal))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return args_literal


def dedupe_tests(tests: Iterable[ParsedTest]) -> tuple[list[ParsedTest], int]:
    """Drop tests whose arguments (compared as canonical literals) were seen before, keeping order.

    The first occurrence wins (its text and kind); if it had no expected output and a
    later duplicate has one, the first takes that expectation. Returns the kept tests
    and how many were removed.
    """
    order: list[str] = []
    kept: dict[str, ParsedTest] = {}
    removed = 0
    for test in tests:
        key = _dedupe_key(test.args_literal)
        previous = kept.get(key)
        if previous is None:
            order.append(key)
            kept[key] = test
            continue
        removed += 1
        if not previous.expected_literal and test.expected_literal:
            kept[key] = ParsedTest(previous.args_literal, test.expected_literal, previous.kind)
    return [kept[key] for key in order], removed


def boundary_quota(count: int, boundary_ratio: float) -> int:
    """How many of ``count`` tests should be boundary cases (rounded, within 0..count)."""
    return min(max(round(count * boundary_ratio), 0), count)


def split_samples(samples: int, shortfall: dict[str, int]) -> dict[str, int]:
    """Share a round's ``samples`` completions among the kinds still short of their quota.

    Each kind with a positive shortfall gets at least one completion and the rest go in
    proportion to the shortfalls (D'Hondt: the next one to the kind with the most tests
    missing per completion given; ties to the earlier kind). Kinds with none missing get
    nothing, so a round costs ``samples`` completions however the quotas stand (or one per
    short kind, when ``samples`` is smaller).
    """
    short = {kind: missing for kind, missing in shortfall.items() if missing > 0}
    if not short:
        return {}
    counts = dict.fromkeys(short, 1)
    for _ in range(samples - len(short)):
        kind = max(short, key=lambda k: short[k] / counts[k])
        counts[kind] += 1
    return counts


def round_request(
    pool: Sequence[ParsedTest], quotas: dict[str, int], samples: int, stalled: int, stall_rounds: int
) -> dict[str, int]:
    """The completions to ask per kind in a problem's next round (:func:`split_samples` of what
    ``pool`` still lacks of ``quotas``), or ``{}`` when the problem is done: every quota is met,
    or ``stalled`` rounds in a row added no new test and ``stall_rounds`` (0 = never) says stop."""
    if stall_rounds and stalled >= stall_rounds:
        return {}
    shortfall = {kind: quotas[kind] - sum(t.kind == kind for t in pool) for kind in KINDS}
    return split_samples(samples, shortfall)


def mix_tests(tests: Sequence[ParsedTest], count: int, boundary_ratio: float) -> list[ParsedTest]:
    """Up to ``count`` tests, ``boundary_ratio`` of them boundary cases where there are enough.

    Takes each kind in its order of arrival (docstring examples first); when one kind is
    short the other fills its place. The result keeps the order of ``tests``.
    """
    wanted_boundary = boundary_quota(count, boundary_ratio)
    boundary = [i for i, t in enumerate(tests) if t.kind == BOUNDARY]
    typical = [i for i, t in enumerate(tests) if t.kind != BOUNDARY]
    take_boundary = min(len(boundary), max(wanted_boundary, count - len(typical)))
    take_typical = min(len(typical), count - take_boundary)
    chosen = set(boundary[:take_boundary]) | set(typical[:take_typical])
    return [tests[i] for i in sorted(chosen)]


# Mutations asked of fuzz_inputs at most, per test wanted: some fail validation (an annotated
# Literal, a list grown past MAX_LITERAL_CHARS), so more are made than needed.
_MUTATION_HEADROOM = 8


def _valid_mutations(
    fuzzed: Sequence[str], seen: set[str], arity: int, signature: Signature | None, count: int
) -> list[ParsedTest]:
    """The first ``count`` tuples of ``fuzzed`` that pass :func:`_check_args` and are not in ``seen``
    (which gets the ones taken)."""
    tests: list[ParsedTest] = []
    for text in fuzzed:
        if text in seen:  # a pool input, as fuzz_inputs repeats them first: no need to parse it
            continue
        try:
            node = ast.parse(text, mode="eval").body
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if not isinstance(node, ast.Tuple):
            continue
        # args_literal is canonical already, so it is its own dedupe key.
        args_literal, reason = _check_args(node.elts, arity, signature)
        if reason or args_literal in seen:
            continue
        seen.add(args_literal)
        tests.append(ParsedTest(args_literal, "", MUTATION))
        if len(tests) == count:
            break
    return tests


def mutation_tests(
    pool: Sequence[ParsedTest], count: int, arity: int, signature: Signature | None, seed: str
) -> list[ParsedTest]:
    """Up to ``count`` new test inputs: type-preserving mutations of the inputs in ``pool``.

    :func:`ucoder_common.mutation.fuzz_inputs`, seeded with ``seed`` (the problem id), derives
    argument tuples from the pool's; each is validated exactly as a model-written call is
    (:func:`_check_args`: arity, finite literals in canonical form, ``MAX_LITERAL_CHARS``, the
    signature's annotated types), and one whose canonical form is in ``pool`` or came earlier is
    dropped. The tests have kind :data:`MUTATION` and no expected output (nothing guessed what the
    function returns on them). The same arguments give the same list; an empty pool gives none,
    and so may a pool whose inputs allow few distinct mutations (one ``bool``).
    """
    if count <= 0 or not pool:
        return []
    inputs = [t.args_literal for t in pool]
    seen = {_dedupe_key(text) for text in inputs} | set(inputs)
    # fuzz_inputs returns the inputs and then its mutations, and a larger limit only extends that
    # list (the same draws), so asking again with more headroom keeps the result independent of
    # how many asks it took. Stop at count, when fuzz_inputs runs out of distinct tuples, or at the cap.
    limit = len(inputs) + count
    cap = len(inputs) + _MUTATION_HEADROOM * count
    tests: list[ParsedTest] = []
    done = 0  # tuples of fuzzed already validated (the list only grows with the limit)
    while True:
        fuzzed = fuzz_inputs(inputs, seed, limit)
        tests += _valid_mutations(fuzzed[done:], seen, arity, signature, count - len(tests))
        done = len(fuzzed)
        if len(tests) >= count or len(fuzzed) < limit or limit >= cap:
            return tests
        limit = min(limit * 2, cap)


def select_tests(
    pool: Sequence[ParsedTest],
    count: int,
    boundary_ratio: float,
    arity: int,
    signature: Signature | None,
    seed: str,
    mutation_fill: bool,
) -> list[ParsedTest]:
    """A problem's tests: :func:`mix_tests` of the model's ``pool``, then, when ``mutation_fill``
    is on and those are fewer than ``count``, :func:`mutation_tests` of them for the rest.

    The model's tests come first and are never displaced (mutations only fill
    ``count - len(model tests)``); the boundary quota applies to the model's tests alone.
    """
    kept = mix_tests(pool, count, boundary_ratio)
    if not mutation_fill or len(kept) >= count:
        return kept
    return [*kept, *mutation_tests(kept, count - len(kept), arity, signature, seed)]


def make_test_id(problem_id: str, args_literal: str) -> str:
    """A stable test id: the problem id and 8 hex digits of the sha256 of the arguments."""
    digest = hashlib.sha256(args_literal.encode("utf-8")).hexdigest()[:8]
    return f"{problem_id}-t{digest}"
