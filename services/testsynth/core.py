"""Pure logic of test synthesis: the few-shot prompt, parsing of test calls, deduplication.

The base model is shown one worked example — a function skeleton followed by a block
of ``assert f(...) == expected`` lines covering typical and edge cases — then the
problem's skeleton and the start of its own block, ``assert <entry_point>(``. Each
line the model writes is one test: the arguments must be Python literals (they
become the test input) and the right-hand side, when it is a literal too, is kept
as the model's *guess* of the output (used only by the pass/fail signature mode,
never as ground truth).

No I/O and no third-party imports.
"""

from __future__ import annotations

import ast
import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_LITERAL_CHARS",
    "TESTS_STOP",
    "ParsedTest",
    "build_tests_prompt",
    "calls_prefix",
    "canonical_literal",
    "dedupe_tests",
    "docstring_tests",
    "make_test_id",
    "parse_test_inputs",
]

#: Stop sequences: a blank line (the end of the block of asserts) or the start of
#: any other top-level code.
TESTS_STOP: list[str] = ["\n\n", "\ndef ", "\nclass ", "\n#", "\nif __name__", "\nprint("]

#: An argument tuple (or expected value) whose canonical literal is longer than this
#: is rejected: huge inputs make slow, unreadable tests.
MAX_LITERAL_CHARS = 2000

# One worked example per arity: the base model copies the example's argument count,
# so a 1-parameter problem shown a 2-parameter example gets 2-argument calls (seen on the
# default model: 1 of 14 lines kept for a 1-parameter problem with a 2-parameter example).
_FEW_SHOTS: dict[int, str] = {
    1: '''def digit_sum(n: int) -> int:
    """Return the sum of the decimal digits of n, ignoring its sign.

    >>> digit_sum(123)
    6
    """
    ...


# Example calls of digit_sum, one per line, covering typical and edge cases:
assert digit_sum(123) == 6
assert digit_sum(0) == 0
assert digit_sum(-45) == 9
assert digit_sum(7) == 7
assert digit_sum(1000001) == 2
assert digit_sum(99999) == 45
''',
    2: '''def merge_counts(words: list[str], min_len: int) -> dict[str, int]:
    """Count the words that have at least min_len characters, ignoring case.

    >>> merge_counts(["Apple", "apple", "fig"], 4)
    {'apple': 2}
    """
    ...


# Example calls of merge_counts, one per line, covering typical and edge cases:
assert merge_counts(["Apple", "apple", "fig"], 4) == {'apple': 2}
assert merge_counts([], 3) == {}
assert merge_counts(["a", "bb", "ccc"], 0) == {'a': 1, 'bb': 1, 'ccc': 1}
assert merge_counts(["Hi, there", "hi, there"], 2) == {'hi, there': 2}
assert merge_counts(["x"], -1) == {'x': 1}
assert merge_counts(["Tree", "TREE", "tree", "bush"], 5) == {}
''',
    3: '''def clamp(value: float, low: float, high: float) -> float:
    """Return value limited to the range [low, high].

    >>> clamp(5.0, 0.0, 3.0)
    3.0
    """
    ...


# Example calls of clamp, one per line, covering typical and edge cases:
assert clamp(5.0, 0.0, 3.0) == 3.0
assert clamp(-1.5, 0.0, 3.0) == 0.0
assert clamp(2.0, 0.0, 3.0) == 2.0
assert clamp(0.0, 0.0, 0.0) == 0.0
assert clamp(3.0, 0.0, 3.0) == 3.0
assert clamp(1e9, -1e9, 1e9) == 1e9
''',
}


@dataclass(frozen=True)
class ParsedTest:
    """One test input, and optionally the model's guess of the output.

    ``args_literal`` is a canonical tuple literal of the arguments, always a tuple
    even for one argument (``"(5,)"``); ``expected_literal`` is a canonical literal
    of the guessed output or ``""`` when the line gave none (or a non-literal one).
    """

    args_literal: str
    expected_literal: str = ""


def calls_prefix(entry_point: str) -> str:
    """The text the tests prompt ends with; pass it as ``prefix`` to :func:`parse_test_inputs`."""
    return f"assert {entry_point}("


def build_tests_prompt(problem_prompt: str, entry_point: str, arity: int = 2) -> str:
    """A worked example with the same number of arguments, then the skeleton and the start of a test line."""
    skeleton = problem_prompt if problem_prompt.endswith("\n") else problem_prompt + "\n"
    return (
        _FEW_SHOTS.get(arity, _FEW_SHOTS[2])
        + "\n\n"
        + skeleton
        + "    ...\n\n\n"
        + f"# Example calls of {entry_point}, one per line, covering typical and edge cases:\n"
        + calls_prefix(entry_point)
    )


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


def _literal(node: ast.expr) -> str | None:
    """Canonical literal of an expression node, or None when it is not a usable literal."""
    try:
        value = ast.literal_eval(node)
        text = canonical_literal(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if len(text) > MAX_LITERAL_CHARS:
        return None
    return text


def _parse_line(line: str, entry_point: str, arity: int) -> ParsedTest | None:
    """Parse one ``assert f(...) == x`` / ``assert f(...)`` / ``f(...)`` line."""
    try:
        module = ast.parse(line)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    if len(module.body) != 1:
        return None
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
        return None
    if not (
        isinstance(call_node, ast.Call)
        and isinstance(call_node.func, ast.Name)
        and call_node.func.id == entry_point
    ):
        return None
    if call_node.keywords or len(call_node.args) != arity:
        return None
    if any(isinstance(arg, ast.Starred) for arg in call_node.args):
        return None
    values: list[str] = []
    for arg in call_node.args:
        text = _literal(arg)
        if text is None:
            return None
        values.append(text)
    args_literal = "(" + values[0] + ",)" if arity == 1 else "(" + ", ".join(values) + ")"
    if len(args_literal) > MAX_LITERAL_CHARS:
        return None
    expected = _literal(expected_node) if expected_node is not None else None
    return ParsedTest(args_literal=args_literal, expected_literal=expected or "")


def _mentions_call(line: str, entry_point: str) -> bool:
    stripped = line.strip()
    return stripped.startswith((f"assert {entry_point}(", f"{entry_point}(", f"assert not {entry_point}("))


def parse_test_inputs(
    completion: str, entry_point: str, arity: int, prefix: str = ""
) -> tuple[list[ParsedTest], int]:
    """Parse the test lines of ``prefix + completion``.

    Each line is ``assert entry_point(a, b) == expected`` (also ``is None``), or a
    bare ``assert entry_point(...)`` / ``entry_point(...)`` (no expected output). It
    is a test when the call has exactly ``arity`` positional arguments, no keywords
    or ``*``/``**``, and every argument is a literal (``ast.literal_eval``) with a
    finite, canonical form. A non-literal expected value drops only the expectation.

    Blank lines are skipped; parsing stops at the first non-blank line that is not a
    call of ``entry_point`` (the model has moved on to other code). Returns the
    tests in order (duplicates included; see :func:`dedupe_tests`) and the number of
    call lines that were rejected.
    """
    if arity < 1:
        raise ValueError(f"arity must be >= 1, got {arity}")
    tests: list[ParsedTest] = []
    rejected = 0
    for line in (prefix + completion).replace("\r\n", "\n").split("\n"):
        if not line.strip():
            continue
        if not _mentions_call(line, entry_point):
            break
        parsed = _parse_line(line.strip(), entry_point, arity)
        if parsed is None:
            rejected += 1
        else:
            tests.append(parsed)
    return tests, rejected


def docstring_tests(problem_prompt: str, entry_point: str, arity: int) -> list[ParsedTest]:
    """The ``>>> entry_point(...)`` examples of the skeleton's docstring, as tests.

    The line after the call, when it is not another prompt, is the expected output. These
    are the problem author's own examples, so they come first among a problem's tests.
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
    tests, _rejected = parse_test_inputs("\n".join(asserts), entry_point, arity)
    return tests


def dedupe_tests(tests: Iterable[ParsedTest]) -> tuple[list[ParsedTest], int]:
    """Drop tests whose ``args_literal`` was seen before, keeping order.

    The first occurrence wins; if it had no expected output and a later duplicate
    has one, the first takes that expectation. Returns the kept tests and how many
    were removed.
    """
    order: list[str] = []
    kept: dict[str, ParsedTest] = {}
    removed = 0
    for test in tests:
        previous = kept.get(test.args_literal)
        if previous is None:
            order.append(test.args_literal)
            kept[test.args_literal] = test
            continue
        removed += 1
        if not previous.expected_literal and test.expected_literal:
            kept[test.args_literal] = ParsedTest(test.args_literal, test.expected_literal)
    return [kept[key] for key in order], removed


def make_test_id(problem_id: str, args_literal: str) -> str:
    """A stable test id: the problem id and 8 hex digits of the sha256 of the arguments."""
    digest = hashlib.sha256(args_literal.encode("utf-8")).hexdigest()[:8]
    return f"{problem_id}-t{digest}"
