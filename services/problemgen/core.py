"""Pure logic of the problem generator: the few-shot prompt, parsing, deduplication.

The default model is a *base* model with no chat template, so problems are not asked
for in prose. The prompt is the start of a Python file holding a few exercise
skeletons (a typed ``def`` plus a docstring with a ``>>>`` example, no body) and ends
with ``"\\n\\n\\ndef "``: the model continues by inventing the next function. The
completion is cut by :data:`PROBLEM_STOP` before the next top-level statement, and
:func:`parse_problem` turns it into a :class:`ParsedProblem` (or explains why not in
a :class:`ProblemRejection`).

No I/O and no third-party imports: everything here is deterministic and unit-tested.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "EXAMPLE_SKELETONS",
    "PROBLEM_HEADER",
    "PROBLEM_PREFIX",
    "PROBLEM_STOP",
    "ParsedProblem",
    "ProblemRejection",
    "build_problem_prompt",
    "dedupe_problems",
    "normalise_prompt",
    "parse_problem",
    "problem_id_for",
    "render_skeleton",
]

PROBLEM_HEADER = (
    "# Small, self-contained Python programming exercises.\n"
    "# Each function has a typed signature and a docstring with an example.\n"
)

#: What the prompt ends with; pass it as ``prefix`` to :func:`parse_problem`. No trailing
#: space: tokenizers attach the space to the next word, and a prompt ending in "def " made
#: the default model write names starting with digits (0 of 8 parsed; 19 of 24 without it).
PROBLEM_PREFIX = "def"

#: Stop sequences for the sampler: the completion ends before the next top-level
#: statement (another def/class, a comment block or a main guard).
PROBLEM_STOP: list[str] = ["\ndef ", "\nclass ", "\n#", "\nif __name__"]

#: How many example skeletons one prompt shows.
EXAMPLES_PER_PROMPT = 3

#: Docstrings shorter than this (after stripping) are rejected as uninformative.
MIN_DOCSTRING_CHARS = 10

#: Parsing looks at no more than this many lines of a completion.
MAX_COMPLETION_LINES = 200

# Names from ``typing`` the model tends to use in annotations; a skeleton that uses
# them gets the matching ``from typing import ...`` line so that it executes.
_TYPING_NAMES = frozenset(
    {
        "Any",
        "Callable",
        "DefaultDict",
        "Deque",
        "Dict",
        "FrozenSet",
        "Iterable",
        "Iterator",
        "List",
        "Literal",
        "Mapping",
        "Optional",
        "Sequence",
        "Set",
        "Tuple",
        "Union",
    }
)
_BUILTIN_NAMES = frozenset(dir(builtins))

# (signature, docstring) pairs; the docstring is in cleaned form (see render_skeleton).
EXAMPLE_SKELETONS: tuple[tuple[str, str], ...] = (
    (
        "def count_vowels(text: str) -> int:",
        "Return how many vowels (a, e, i, o, u, either case) occur in text.\n\n"
        '>>> count_vowels("Hello World")\n3',
    ),
    (
        "def running_max(values: list[int]) -> list[int]:",
        "Return a list whose i-th item is the largest of values[0..i].\n\n"
        ">>> running_max([3, 1, 4, 1, 5])\n[3, 3, 4, 4, 5]",
    ),
    (
        "def is_palindrome_number(n: int) -> bool:",
        "Return True when the decimal digits of n read the same backwards; negatives are not.\n\n"
        ">>> is_palindrome_number(12321)\nTrue",
    ),
    (
        "def word_lengths(sentence: str) -> dict[str, int]:",
        "Map each distinct word of a space-separated sentence to its length.\n\n"
        ">>> word_lengths(\"hi there hi\")\n{'hi': 2, 'there': 5}",
    ),
    (
        "def second_largest(nums: list[int]) -> int | None:",
        "Return the second largest distinct number in nums, or None if there is none.\n\n"
        ">>> second_largest([4, 1, 4, 3])\n3",
    ),
    (
        "def rotate_left(items: list[int], k: int) -> list[int]:",
        "Rotate items to the left by k positions; k may exceed the length.\n\n"
        ">>> rotate_left([1, 2, 3, 4, 5], 2)\n[3, 4, 5, 1, 2]",
    ),
    (
        "def digit_sum(n: int) -> int:",
        "Return the sum of the decimal digits of the absolute value of n.\n\n>>> digit_sum(-472)\n13",
    ),
    (
        "def run_length_encode(s: str) -> str:",
        "Compress runs of equal characters as the character followed by the run length.\n\n"
        ">>> run_length_encode(\"aaabcc\")\n'a3b1c2'",
    ),
    (
        "def pairs_with_sum(nums: list[int], target: int) -> list[tuple[int, int]]:",
        "Return the index pairs (i, j) with i < j and nums[i] + nums[j] == target, in order.\n\n"
        ">>> pairs_with_sum([1, 3, 2, 2], 4)\n[(0, 1), (2, 3)]",
    ),
    (
        "def count_occurrences(text: str, word: str) -> int:",
        "Count how many times word occurs in text as a whole word, ignoring case.\n\n"
        '>>> count_occurrences("The cat and the hat", "the")\n2',
    ),
    (
        "def transpose(matrix: list[list[int]]) -> list[list[int]]:",
        "Return the transpose of a rectangular matrix given as a list of rows.\n\n"
        ">>> transpose([[1, 2, 3], [4, 5, 6]])\n[[1, 4], [2, 5], [3, 6]]",
    ),
    (
        "def fizzbuzz_label(n: int) -> str:",
        "Return 'Fizz' for multiples of 3, 'Buzz' for multiples of 5, 'FizzBuzz' for both, "
        "else str(n).\n\n>>> fizzbuzz_label(15)\n'FizzBuzz'",
    ),
    (
        "def average_grade(scores: dict[str, float]) -> float:",
        "Return the mean of the values of scores, or 0.0 for an empty dict.\n\n"
        '>>> average_grade({"ann": 80.0, "bob": 90.0})\n85.0',
    ),
)


@dataclass(frozen=True)
class ParsedProblem:
    """A problem skeleton the sampler can complete.

    ``prompt`` is the exact text candidates continue: any ``typing`` imports the
    annotations need, then ``signature`` and the docstring indented by four spaces,
    ending with a newline after the closing quotes.
    """

    entry_point: str
    signature: str
    docstring: str
    prompt: str
    arity: int
    problem_id: str


@dataclass(frozen=True)
class ProblemRejection:
    """Why a completion did not become a problem.

    ``kind`` is ``"parse"`` when the completion does not hold a usable signature +
    docstring, ``"compile"`` when it does but the skeleton would not compile or run.
    """

    reason: str
    kind: Literal["parse", "compile"]


_EXAMPLE_NAMES = frozenset(sig.split("(", 1)[0].removeprefix("def ").strip() for sig, _ in EXAMPLE_SKELETONS)


def build_problem_prompt(examples_seed: int) -> str:
    """Few-shot prompt: header comment, 3 example skeletons picked by the seed, ``"\\n\\n\\ndef "``.

    Different seeds pick and order different examples, so prompts (and therefore the
    invented problems) vary; the same seed always gives the same prompt.
    """
    rng = random.Random(examples_seed)
    chosen = rng.sample(EXAMPLE_SKELETONS, EXAMPLES_PER_PROMPT)
    parts = [PROBLEM_HEADER]
    for signature, docstring in chosen:
        parts.append("\n\n" + render_skeleton(signature, docstring))
    return "".join(parts) + "\n\n" + PROBLEM_PREFIX


def render_skeleton(signature: str, docstring: str, imports: str = "") -> str:
    """Render ``imports`` + ``signature`` + the docstring indented by four spaces.

    A one-line docstring stays on one line; a multi-line one gets its continuation
    lines indented and the closing quotes on their own line. Backslashes are escaped
    so the rendered docstring evaluates back to ``docstring``.
    """
    lines = docstring.replace("\\", "\\\\").split("\n")
    if len(lines) == 1:
        body = f'    """{lines[0]}"""\n'
    else:
        indented = [lines[0]] + [("    " + line) if line.strip() else "" for line in lines[1:]]
        body = '    """' + "\n".join(indented) + '\n    """\n'
    head = f"{imports}\n\n\n" if imports else ""
    return f"{head}{signature}\n{body}"


def normalise_prompt(prompt: str) -> str:
    """Collapse every run of whitespace to one space (the identity used for problem ids)."""
    return " ".join(prompt.split())


def problem_id_for(prompt: str) -> str:
    """First 12 hex digits of the sha256 of the normalised prompt."""
    return hashlib.sha256(normalise_prompt(prompt).encode("utf-8")).hexdigest()[:12]


_DEF_LINE = re.compile(r"^def\s", re.MULTILINE)


def _first_function(segment_lines: list[str]) -> ast.FunctionDef | None:
    """Longest prefix of the lines that parses, if its first statement is a def."""
    for end in range(len(segment_lines), 0, -1):
        try:
            module = ast.parse("\n".join(segment_lines[:end]))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if module.body and isinstance(module.body[0], ast.FunctionDef):
            return module.body[0]
        return None
    return None


def _annotation_imports(func: ast.FunctionDef) -> tuple[str, str | None]:
    """The import line the annotations need, or an error naming an unknown name."""
    annotations: list[ast.expr] = []
    all_args = func.args.posonlyargs + func.args.args
    annotations.extend(a.annotation for a in all_args if a.annotation is not None)
    if func.returns is not None:
        annotations.append(func.returns)
    typing_names: set[str] = set()
    needs_typing_module = False
    for annotation in annotations:
        for node in ast.walk(annotation):
            if isinstance(node, ast.Attribute):
                root: ast.expr = node
                while isinstance(root, ast.Attribute):
                    root = root.value
                if not (isinstance(root, ast.Name) and root.id == "typing"):
                    return "", f"annotation uses an unresolvable attribute: {ast.unparse(node)}"
                needs_typing_module = True
            elif isinstance(node, ast.Name):
                if node.id == "typing":
                    continue
                if node.id in _TYPING_NAMES:
                    typing_names.add(node.id)
                elif node.id not in _BUILTIN_NAMES:
                    return "", f"annotation uses an undefined name: {node.id}"
    lines: list[str] = []
    if needs_typing_module:
        lines.append("import typing")
    if typing_names:
        lines.append("from typing import " + ", ".join(sorted(typing_names)))
    return "\n".join(lines), None


def parse_problem(completion: str, prefix: str = PROBLEM_PREFIX) -> ParsedProblem | ProblemRejection:
    """Parse ``prefix + completion`` into a problem skeleton.

    Takes the first top-level ``def`` (anything before it, decorators included, is
    ignored; a body or trailing code after the docstring is tolerated and dropped),
    and requires: a docstring of at least 10 characters, a public name (no leading
    underscore), at least one positional parameter and no ``*args``, ``**kwargs``
    or keyword-only parameters. The re-rendered skeleton (see :class:`ParsedProblem`)
    must compile and keep the docstring intact, and annotation names must resolve
    (builtins, or ``typing`` names, for which an import line is added).
    """
    # The prompt ends in "def" (no space); a completion that starts with the name gets one.
    if prefix and not prefix[-1].isspace() and completion and not completion[0].isspace():
        prefix += " "
    text = (prefix + completion).replace("\r\n", "\n")
    match = _DEF_LINE.search(text)
    if match is None:
        return ProblemRejection("no function definition", "parse")
    segment = text[match.start() :].split("\n")[:MAX_COMPLETION_LINES]
    func = _first_function(segment)
    if func is None:
        if '"""' not in "\n".join(segment) and "'''" not in "\n".join(segment):
            return ProblemRejection("no docstring", "parse")
        return ProblemRejection("function definition does not parse", "compile")
    docstring = ast.get_docstring(func, clean=True)
    if docstring is None:
        return ProblemRejection("no docstring", "parse")
    docstring = docstring.strip()
    if len(docstring) < MIN_DOCSTRING_CHARS:
        return ProblemRejection(f"docstring shorter than {MIN_DOCSTRING_CHARS} characters", "parse")
    name = func.name
    if name.startswith("_"):
        return ProblemRejection(f"private function name: {name}", "parse")
    if name in _EXAMPLE_NAMES:
        return ProblemRejection(f"copy of a prompt example: {name}", "parse")
    args = func.args
    if args.vararg is not None or args.kwarg is not None:
        return ProblemRejection("variadic parameters (*args/**kwargs)", "parse")
    if args.kwonlyargs:
        return ProblemRejection("keyword-only parameters", "parse")
    arity = len(args.posonlyargs) + len(args.args)
    if arity == 0:
        return ProblemRejection("no positional parameter", "parse")
    imports, error = _annotation_imports(func)
    if error is not None:
        return ProblemRejection(error, "compile")

    header = ast.FunctionDef(
        name=func.name,
        args=func.args,
        body=[ast.Pass()],
        decorator_list=[],
        returns=func.returns,
        type_comment=None,
    )
    ast.fix_missing_locations(header)
    signature = ast.unparse(header).split("\n", 1)[0]
    prompt = render_skeleton(signature, docstring, imports)
    try:
        check = ast.parse(prompt + "    pass\n")
        compile(check, "<skeleton>", "exec")
    except (SyntaxError, ValueError) as exc:
        return ProblemRejection(f"skeleton does not compile: {exc}", "compile")
    defined = [node for node in check.body if isinstance(node, ast.FunctionDef)]
    if len(defined) != 1 or ast.get_docstring(defined[0], clean=True) != docstring:
        return ProblemRejection("docstring does not survive re-rendering", "compile")
    return ParsedProblem(
        entry_point=name,
        signature=signature,
        docstring=docstring,
        prompt=prompt,
        arity=arity,
        problem_id=problem_id_for(prompt),
    )


def dedupe_problems(problems: Iterable[ParsedProblem]) -> tuple[list[ParsedProblem], int]:
    """Drop exact duplicates (same ``problem_id``) and reused function names, keeping the first.

    Returns the kept problems in their original order and how many were removed.
    """
    kept: list[ParsedProblem] = []
    seen_ids: set[str] = set()
    seen_names: set[str] = set()
    removed = 0
    for problem in problems:
        if problem.problem_id in seen_ids or problem.entry_point in seen_names:
            removed += 1
            continue
        seen_ids.add(problem.problem_id)
        seen_names.add(problem.entry_point)
        kept.append(problem)
    return kept, removed
