"""Pure logic of problem space probing (the paper's stages 1-3), for a base model.

The default model is a *base* model with no chat template, so every stage is a few-shot
completion prompt: hand-written, self-made examples of the expected output, then the
start of the next one for the model to continue.

0. **Categories**: a Python list of exercise categories, three given, the model adds
   more (:func:`build_category_prompt`, :func:`parse_categories`). The categories the
   model proposes form the pool each generation prompt draws one category from.
1. **Problem generator**: problems in the paper's template between ``<PROBLEM_START>``
   and ``<PROBLEM_END>`` (title, description, typed function signature, example input and
   output, hint), each after a ``Category:`` line; the prompt ends with the target
   category and ``<PROBLEM_START>\\nTitle:`` (:func:`build_problem_prompt`).
   :func:`parse_problem` turns a completion into a :class:`ParsedProblem`, whose
   skeleton is rendered from the signature, the description and the example (it also
   still accepts a bare ``def`` with a docstring).
2. **Quality oracle**: the model reviews the problem between ``<RATING_START>`` and
   ``<RATING_END>`` (score 1-10, summary, difficulty, category); :func:`parse_rating`
   reads one review, :func:`aggregate_ratings` combines several samples.
3. **Interface synthesizer**: the model writes the skeleton (imports for the
   annotations, then the ``def`` with an Args/Returns docstring) between
   ``<SKELETON_START>`` and ``<SKELETON_END>``; :func:`parse_skeleton` checks it with
   ``ast`` and the caller keeps the rendered skeleton when it is unusable.

Also here: exact and near-duplicate removal, and :func:`plan_categories`, which
steers a round's categories toward under-represented ones when diversity drops.

No I/O: everything here is deterministic and unit-tested.
"""

from __future__ import annotations

import ast
import builtins
import collections
import dataclasses
import hashlib
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from services.problemgen.examples import POOR_EXAMPLES, SEED_CATEGORIES, TEMPLATE_EXAMPLES, ExampleProblem
from ucoder_common import diversity

__all__ = [
    "CATEGORY_STOP",
    "NEUTRAL_SCORE",
    "PROBLEM_PREFIX",
    "PROBLEM_STOP",
    "RATING_PREFIX",
    "RATING_STOP",
    "SEED_CATEGORIES",
    "SKELETON_PREFIX",
    "SKELETON_STOP",
    "TEMPLATE_EXAMPLES",
    "CategoryPlan",
    "ExampleProblem",
    "ParsedProblem",
    "ProblemRejection",
    "Rating",
    "aggregate_ratings",
    "apply_rating",
    "build_category_prompt",
    "build_problem_prompt",
    "build_rating_prompt",
    "build_skeleton_prompt",
    "category_pool",
    "dedupe_problems",
    "normalise_category",
    "normalise_prompt",
    "parse_categories",
    "parse_problem",
    "parse_rating",
    "parse_skeleton",
    "plan_categories",
    "problem_id_for",
    "remove_near_duplicates",
    "render_problem_block",
    "render_skeleton",
    "split_samples",
]

# --- shared limits -------------------------------------------------------------------------

#: Docstrings and descriptions shorter than this (after stripping) are rejected as uninformative.
MIN_DOCSTRING_CHARS = 10

#: Parsing looks at no more than this many lines of a completion.
MAX_COMPLETION_LINES = 200

#: Longest title / hint / summary / example field kept (longer ones are cut).
MAX_FIELD_CHARS = 300

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

_EXAMPLE_NAMES = frozenset(example.entry_point for example in (*TEMPLATE_EXAMPLES, *POOR_EXAMPLES))

# --- categories (the pool problems are drawn from) -----------------------------------------

CATEGORY_HEADER = (
    "# Categories of small, self-contained Python programming exercises, one topic per entry.\n"
    "CATEGORIES = [\n"
)

#: How many seed categories open the category prompt.
CATEGORIES_SHOWN = 3

#: The category list ends at the closing bracket.
CATEGORY_STOP: list[str] = ["]"]

#: Longest category name kept, in characters.
MAX_CATEGORY_CHARS = 40

_CATEGORY_LINE = re.compile(r"""^\s*["']([^"'\n]+)["']\s*,?\s*(?:#.*)?$""")


def normalise_category(text: str) -> str:
    """Lower-case words joined by single spaces, or "" when it is no usable category name.

    Usable: 3 to 40 characters, starting with a letter, at most 6 words.
    """
    words = re.findall(r"[a-z0-9+#]+(?:[-'][a-z0-9]+)*", text.lower())
    name = " ".join(words)
    if not 3 <= len(name) <= MAX_CATEGORY_CHARS or not name[0].isalpha() or len(words) > 6:
        return ""
    return name


def build_category_prompt(seed: int) -> str:
    """The start of a Python list of categories: three seed categories picked by ``seed``, then
    an open line for the model to continue."""
    rng = random.Random(seed)
    shown = rng.sample(SEED_CATEGORIES, CATEGORIES_SHOWN)
    return CATEGORY_HEADER + "".join(f'    "{name}",\n' for name in shown) + '    "'


def parse_categories(completion: str) -> list[str]:
    """The normalised, distinct category names of a completion of the category prompt, in order.

    The prompt ends inside an opening quote, so the first line is completed by the model; lines
    that are not a quoted string (comments, code) are skipped.
    """
    text = '"' + completion.replace("\r\n", "\n")
    names: list[str] = []
    for line in text.split("\n")[:MAX_COMPLETION_LINES]:
        match = _CATEGORY_LINE.match(line)
        if match is None:
            continue
        name = normalise_category(match.group(1))
        if name and name not in names:
            names.append(name)
    return names


def category_pool(
    proposals: Iterable[Iterable[str]], max_categories: int, min_categories: int
) -> tuple[list[str], int]:
    """Merge the model's proposals (first seen first) into a pool of at most ``max_categories``.

    A pool with fewer than ``min_categories`` is topped up from :data:`SEED_CATEGORIES`. Returns
    the pool and how many of its categories the model proposed.
    """
    pool: list[str] = []
    for names in proposals:
        for name in names:
            name = normalise_category(name)
            if name and name not in pool and len(pool) < max_categories:
                pool.append(name)
    proposed = len(pool)
    for seed in SEED_CATEGORIES:
        if len(pool) >= min(min_categories, max_categories):
            break
        if seed not in pool:
            pool.append(seed)
    return pool, proposed


# --- steering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryPlan:
    """The categories of a round's generation prompts, and whether they were steered."""

    categories: list[str]
    steered: bool
    reason: str = ""


def plan_categories(
    pool: Sequence[str],
    counts: Mapping[str, int],
    k: int,
    seed: int,
    max_share: float = 0.2,
    min_coverage: float = 0.5,
) -> CategoryPlan:
    """Pick ``k`` categories (repeating when the pool is smaller) for the next round.

    ``counts`` are the problems kept so far per category. Diversity has dropped when one
    category holds more than ``max_share`` of them (checked from 1/max_share problems on, so
    that a handful of problems is not judged), or when fewer than ``min_coverage`` of the
    categories the kept problems could cover (min(problems, pool size)) are covered. Then
    the round asks for the least represented categories (ties broken by ``seed``);
    otherwise for a uniform random sample of the pool.
    """
    if not pool or k < 1:
        return CategoryPlan([], False)
    rng = random.Random(seed)
    total = sum(counts.get(name, 0) for name in pool)
    represented = sum(1 for name in pool if counts.get(name, 0) > 0)
    reason = ""
    if total and total * max_share >= 1:
        top = max(pool, key=lambda name: counts.get(name, 0))
        if counts.get(top, 0) / total > max_share:
            reason = f"category {top!r} holds {counts.get(top, 0)} of {total} problems"
    reachable = min(total, len(pool))
    if not reason and total and represented < min_coverage * reachable:
        reason = f"{represented} of {reachable} reachable categories covered"
    if reason:
        order = sorted(pool, key=lambda name: (counts.get(name, 0), rng.random()))
    else:
        order = rng.sample(list(pool), len(pool))
    chosen = [order[i % len(order)] for i in range(k)]
    return CategoryPlan(chosen, bool(reason), reason)


def split_samples(total: int, parts: int) -> list[int]:
    """``total`` completions over ``parts`` prompts as evenly as possible (the first get the rest)."""
    if parts < 1:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# --- stage 1: problems in the template ------------------------------------------------------


@dataclass(frozen=True)
class ParsedProblem:
    """A problem the sampler can complete.

    ``prompt`` is the exact text candidates continue: any imports the annotations need,
    then ``signature`` and the docstring indented by four spaces, ending with a newline
    after the closing quotes. The template fields (title ... hint) are empty for a problem
    parsed from a bare ``def``; ``doctest`` is the example as ``>>> call`` and output lines
    (empty when the example is unusable); the rating fields are set by :func:`apply_rating`.
    """

    entry_point: str
    signature: str
    docstring: str
    prompt: str
    arity: int
    problem_id: str
    title: str = ""
    description: str = ""
    example_input: str = ""
    example_output: str = ""
    hint: str = ""
    category: str = ""
    doctest: str = ""
    quality_score: float = 0.0
    difficulty: str = ""
    rating_summary: str = ""
    rated: bool = False
    skeleton_from_model: bool = False

    @property
    def text(self) -> str:
        """The problem statement diversity and near-duplicates are measured on."""
        return self.description or self.docstring


@dataclass(frozen=True)
class ProblemRejection:
    """Why a completion did not become a problem (or a skeleton was unusable).

    ``kind`` is ``"parse"`` when the completion does not hold the required fields,
    ``"compile"`` when it does but the skeleton would not compile or run.
    """

    reason: str
    kind: Literal["parse", "compile"]


PROBLEM_HEADER = "Self-contained Python programming problems, each written in the same template.\n"

#: What the problem prompt ends with; pass it as ``prefix`` to :func:`parse_problem`.
PROBLEM_PREFIX = "<PROBLEM_START>\nTitle:"

#: The completion ends with the problem block (or where the model starts another one).
PROBLEM_STOP: list[str] = ["<PROBLEM_END>", "<PROBLEM_START>", "\nCategory:"]

#: How many example problems one generation prompt shows.
EXAMPLES_PER_PROMPT = 3


def example_call(example: ExampleProblem) -> str:
    return f"{example.entry_point}({example.example_input})"


def render_problem_block(
    title: str, description: str, signature: str, example_input: str, example_output: str, hint: str
) -> str:
    """The paper's problem template, from ``<PROBLEM_START>`` to ``<PROBLEM_END>`` (no final newline)."""
    return (
        "<PROBLEM_START>\n"
        f"Title: {title}\n"
        f"Description: {description}\n"
        f"Function Signature: {signature}\n"
        "Example:\n"
        f"Input: {example_input}\n"
        f"Output: {example_output}\n"
        f"Hint: {hint}\n"
        "<PROBLEM_END>"
    )


def _example_block(example: ExampleProblem) -> str:
    return render_problem_block(
        example.title,
        example.description,
        example.signature,
        example.example_input,
        example.example_output,
        example.hint,
    )


def _problem_block(problem: ParsedProblem) -> str:
    return render_problem_block(
        problem.title,
        problem.description or problem.docstring.split("\n\n", 1)[0],
        problem.signature,
        problem.example_input,
        problem.example_output,
        problem.hint,
    )


def _pick_examples(
    rng: random.Random,
    count: int,
    avoid_category: str = "",
    pool: Sequence[ExampleProblem] = TEMPLATE_EXAMPLES,
) -> list[ExampleProblem]:
    """``count`` examples, none of ``avoid_category`` when possible (the model copies a close example)."""
    others = [example for example in pool if example.category != avoid_category]
    source = others if len(others) >= count else list(pool)
    return rng.sample(source, count)


def build_problem_prompt(category: str, seed: int) -> str:
    """Header, three example problems (each after its ``Category:`` line) picked by ``seed``, then
    ``Category: <category>`` and the open template, ending in :data:`PROBLEM_PREFIX`.

    Examples of the same category are avoided; the same arguments always give the same prompt.
    """
    rng = random.Random(seed)
    parts = [PROBLEM_HEADER]
    for example in _pick_examples(rng, EXAMPLES_PER_PROMPT, category):
        parts.append(f"\nCategory: {example.category}\n{_example_block(example)}\n")
    parts.append(f"\nCategory: {category}\n{PROBLEM_PREFIX}")
    return "".join(parts)


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
_DEF_WORD = re.compile(r"(?<![\w.])(?:async\s+)?def\s")
_BARE_CALL = re.compile(r"^\s*[A-Za-z_]\w*\s*\(")

# A template field label at the start of a line, tolerating markdown decoration ("**Title:**", "- Hint:").
_FIELD = re.compile(
    r"^[\s#>*\-]*(title|description|function signature|signature|examples?|input|output|hints?)"
    r"\s*\**\s*:\s*\**\s*(.*)$",
    re.IGNORECASE,
)
_FIELD_NAMES = {
    "title": "title",
    "description": "description",
    "function signature": "signature",
    "signature": "signature",
    "example": "example",
    "examples": "example",
    "input": "input",
    "output": "output",
    "hint": "hint",
    "hints": "hint",
}


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


def _annotation_nodes(func: ast.FunctionDef) -> list[ast.expr]:
    all_args = func.args.posonlyargs + func.args.args
    nodes = [a.annotation for a in all_args if a.annotation is not None]
    if func.returns is not None:
        nodes.append(func.returns)
    return nodes


def _annotation_imports(func: ast.FunctionDef) -> tuple[str, str | None]:
    """The import line the annotations need, or an error naming an unknown name."""
    typing_names: set[str] = set()
    needs_typing_module = False
    for annotation in _annotation_nodes(func):
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


def _header_line(func: ast.FunctionDef) -> str:
    """``def name(args) -> type:`` of ``func``, on one line, without decorators or body."""
    header = ast.FunctionDef(
        name=func.name,
        args=func.args,
        body=[ast.Pass()],
        decorator_list=[],
        returns=func.returns,
        type_comment=None,
    )
    ast.fix_missing_locations(header)
    return ast.unparse(header).split("\n", 1)[0]


def _check_function(func: ast.FunctionDef) -> ProblemRejection | None:
    """The signature rules every problem follows: public name, not a prompt example, positional
    parameters only, at least one."""
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
    if len(args.posonlyargs) + len(args.args) == 0:
        return ProblemRejection("no positional parameter", "parse")
    return None


def _render_checked(signature: str, docstring: str, imports: str) -> tuple[str, ProblemRejection | None]:
    """The rendered skeleton, or why it does not compile or does not keep the docstring intact."""
    prompt = render_skeleton(signature, docstring, imports)
    try:
        check = ast.parse(prompt + "    pass\n")
        compile(check, "<skeleton>", "exec")
    except (SyntaxError, ValueError) as exc:
        return prompt, ProblemRejection(f"skeleton does not compile: {exc}", "compile")
    defined = [node for node in check.body if isinstance(node, ast.FunctionDef)]
    if len(defined) != 1 or ast.get_docstring(defined[0], clean=True) != docstring:
        return prompt, ProblemRejection("docstring does not survive re-rendering", "compile")
    return prompt, None


def _problem_from_function(func: ast.FunctionDef, docstring: str) -> ParsedProblem | ProblemRejection:
    """Check ``func`` and render its skeleton with ``docstring`` (the shared end of both parsers)."""
    rejection = _check_function(func)
    if rejection is not None:
        return rejection
    imports, error = _annotation_imports(func)
    if error is not None:
        return ProblemRejection(error, "compile")
    signature = _header_line(func)
    prompt, rejection = _render_checked(signature, docstring, imports)
    if rejection is not None:
        return rejection
    return ParsedProblem(
        entry_point=func.name,
        signature=signature,
        docstring=docstring,
        prompt=prompt,
        arity=len(func.args.posonlyargs) + len(func.args.args),
        problem_id=problem_id_for(prompt),
    )


def _parse_def(text: str) -> ParsedProblem | ProblemRejection:
    """A bare ``def`` with a docstring (the model skipped the template and wrote code)."""
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
    return _problem_from_function(func, docstring)


def _template_fields(text: str) -> dict[str, str]:
    """The template's fields by name (first occurrence wins); a field runs until the next label."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.split("\n")[:MAX_COMPLETION_LINES]:
        match = _FIELD.match(line)
        if match is not None:
            name = _FIELD_NAMES[match.group(1).lower()]
            if name in fields:
                current = None  # a repeated field (a second example): ignore its lines
                continue
            current = fields[name] = [match.group(2)]
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in fields.items()}


def _one_line(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Whitespace collapsed, markdown bold/backticks dropped, cut to ``limit`` characters."""
    text = " ".join(text.replace("**", "").split())
    if len(text) > 2 and text[0] == text[-1] == "`":
        text = text.strip("`").strip()
    return text[:limit].rstrip()


def _signature_function(text: str) -> ast.FunctionDef | ProblemRejection:
    """The ``def`` of a signature field: the shortest run of lines from ``def`` that parses once a
    colon and a ``pass`` body are added (code fences and backticks are ignored; a bare
    ``name(args) -> type`` gets its ``def``)."""
    lines = [line for line in text.replace("`", "").split("\n") if not line.strip().startswith("~~~")]
    start = None
    for index, line in enumerate(lines):
        match = _DEF_WORD.search(line)
        if match is not None:
            lines[index] = line[match.start() :]
            start = index
            break
        if _BARE_CALL.match(line):
            lines[index] = "def " + line.strip()
            start = index
            break
    if start is None:
        return ProblemRejection("no function signature", "parse")
    for end in range(start + 1, min(len(lines), start + 12) + 1):
        source = "\n".join(lines[start:end]).rstrip()
        # "def f(x: int) -> int: returns x squared": also try without a remark after the last colon
        candidates = [source] if source.endswith(":") else [source + ":", source.rsplit(":", 1)[0] + ":"]
        for candidate in candidates:
            try:
                module = ast.parse(candidate + "\n    pass\n")
            except (SyntaxError, ValueError, MemoryError, RecursionError):
                continue
            if len(module.body) == 1 and isinstance(module.body[0], ast.FunctionDef):
                return module.body[0]
            return ProblemRejection("the signature is not a plain def", "parse")
    return ProblemRejection("function signature does not parse", "compile")


def _parameter_names(func: ast.FunctionDef) -> list[str]:
    return [a.arg for a in func.args.posonlyargs + func.args.args]


def _example_doctest(func: ast.FunctionDef, example_input: str, example_output: str) -> str:
    """``>>> name(args)`` and the output line, when the input is literal arguments matching the
    signature (positional, or ``name=value`` for its parameters) and the output is a literal."""
    if not example_input or not example_output:
        return ""
    source = example_input.strip()
    if source.startswith(func.name + "(") and source.endswith(")"):
        source = source[len(func.name) + 1 : -1]
    try:
        call = ast.parse(f"f({source})", mode="eval").body
        output = ast.parse(example_output.strip(), mode="eval").body
        ast.literal_eval(output)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        return ""
    if not isinstance(call, ast.Call):
        return ""
    names = _parameter_names(func)
    if len(call.args) > len(names) or any(isinstance(a, ast.Starred) for a in call.args):
        return ""
    values: list[ast.expr | None] = [*call.args] + [None] * (len(names) - len(call.args))
    for keyword in call.keywords:
        if keyword.arg not in names or values[names.index(keyword.arg)] is not None:
            return ""
        values[names.index(keyword.arg)] = keyword.value
    # parameters with defaults may be left out at the end, but not skipped before a given one
    given_count = max((i + 1 for i, value in enumerate(values) if value is not None), default=0)
    if given_count < len(names) - len(func.args.defaults) or None in values[:given_count]:
        return ""
    given = [value for value in values[:given_count] if value is not None]
    try:
        for value in given:
            ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return ""
    arguments = ", ".join(ast.unparse(value) for value in given)
    output_text = ast.unparse(output)
    if "\n" in arguments or "\n" in output_text:
        return ""
    return f">>> {func.name}({arguments})\n{output_text}"


def _parse_template(text: str) -> ParsedProblem | ProblemRejection:
    fields = _template_fields(text)
    if "signature" in fields:
        func = _signature_function(fields["signature"])
    elif _DEF_LINE.search(text):
        return _parse_def(text)
    else:
        return ProblemRejection("no function signature", "parse")
    if isinstance(func, ProblemRejection):
        return func
    description = _one_line(fields.get("description", ""), 2000)
    if len(description) < MIN_DOCSTRING_CHARS:
        return ProblemRejection(f"description shorter than {MIN_DOCSTRING_CHARS} characters", "parse")
    example_input = fields.get("input", "")
    example_output = fields.get("output", "")
    if not example_input and fields.get("example"):
        # "Example: f(3) -> 9" on one line
        match = re.match(r"^(.+?)\s*(?:->|==|=>|→|returns)\s*(.+)$", _one_line(fields["example"]))
        if match is not None:
            example_input, example_output = match.group(1), match.group(2)
    example_input, example_output = _one_line(example_input), _one_line(example_output)
    doctest = _example_doctest(func, example_input, example_output)
    docstring = description + ("\n\n" + doctest if doctest else "")
    title = _one_line(fields.get("title", ""), 120).strip("\"'# ") or func.name.replace("_", " ").capitalize()
    result = _problem_from_function(func, docstring)
    if isinstance(result, ProblemRejection):
        return result
    return dataclasses.replace(
        result,
        title=title,
        description=description,
        example_input=example_input,
        example_output=example_output,
        hint=_one_line(fields.get("hint", "")),
        doctest=doctest,
    )


def parse_problem(
    completion: str, prefix: str = PROBLEM_PREFIX, category: str = ""
) -> ParsedProblem | ProblemRejection:
    """Parse ``prefix + completion`` into a problem.

    A completion in the template needs a function signature that parses and a description
    of at least 10 characters; the title defaults to the function name, the example and hint
    may be missing. The example becomes a ``>>>`` line of the docstring when its input is
    literal arguments for the signature and its output a literal. Labels may carry markdown
    decoration; text after ``<PROBLEM_END>`` is ignored.

    Without a ``Function Signature:`` field, the first top-level ``def`` with a docstring is
    taken instead (the model wrote code, not the template). Either way the function needs a
    public name that is not one of the prompt's examples, at least one positional parameter
    and no ``*args``, ``**kwargs`` or keyword-only parameters; annotation names must resolve
    (builtins, or ``typing`` names, for which an import line is added), and the rendered
    skeleton must compile and keep the docstring intact.
    """
    # A prompt ending in a word ("def", "Title:") and a completion starting with one get a space.
    if prefix and not prefix[-1].isspace() and completion and not completion[0].isspace():
        prefix += " "
    text = (prefix + completion).replace("\r\n", "\n")
    text = text.split("<PROBLEM_END>", 1)[0].replace("<PROBLEM_START>", "")
    if _template_fields(text).keys() & {"signature", "description"}:
        result = _parse_template(text)
    else:
        result = _parse_def(text)
    if isinstance(result, ParsedProblem) and category:
        result = dataclasses.replace(result, category=category)
    return result


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


def remove_near_duplicates(
    kept: Sequence[ParsedProblem], new: Sequence[ParsedProblem], threshold: float
) -> tuple[list[ParsedProblem], int]:
    """The new problems whose statement near-duplicates no prompt example, no kept problem and no
    earlier new one (character n-gram Jaccard >= ``threshold``), and how many were removed."""
    examples = [example.description for example in (*TEMPLATE_EXAMPLES, *POOR_EXAMPLES)]
    texts = [*examples, *(p.text for p in kept), *(p.text for p in new)]
    matches = diversity.near_duplicates(texts, threshold)
    offset = len(examples) + len(kept)
    fresh = [problem for problem, match in zip(new, matches[offset:], strict=True) if match is None]
    return fresh, len(new) - len(fresh)


# --- stage 2: the quality oracle -------------------------------------------------------------

#: The score a problem keeps when the model gives no readable rating: the middle of the scale.
NEUTRAL_SCORE = 5.0

#: Scores are on this scale; a score out of 100 ("85/100") is divided by 10.
MAX_SCORE = 10.0

RATING_HEADER = (
    "Programming problems, each followed by a review of its clarity, completeness and quality.\n"
    "Scores go from 1 (unusable) to 10 (excellent).\n"
)

#: What the rating prompt ends with; pass it as ``prefix`` to :func:`parse_rating`.
RATING_PREFIX = "<RATING_START>\nProblem Quality Score:"

RATING_STOP: list[str] = ["<RATING_END>", "<RATING_START>", "<PROBLEM_START>"]

#: Good examples shown in a rating prompt, besides one poor one.
RATED_EXAMPLES_PER_PROMPT = 2

DIFFICULTIES = ("easy", "medium", "hard")


@dataclass(frozen=True)
class Rating:
    """One review by the quality oracle: score in [1, 10]; difficulty in DIFFICULTIES or "";
    category normalised (see :func:`normalise_category`) or ""."""

    score: float
    summary: str = ""
    difficulty: str = ""
    category: str = ""


def _rating_block(score: float | int, summary: str, difficulty: str, category: str) -> str:
    return (
        "<RATING_START>\n"
        f"Problem Quality Score: {score}\n"
        f"Summary: {summary}\n"
        f"Difficulty: {difficulty}\n"
        f"Category: {category}\n"
        "<RATING_END>"
    )


def build_rating_prompt(problem: ParsedProblem, seed: int) -> str:
    """Header, two good and one poor rated example in an order picked by ``seed`` (so the model
    cannot just copy the last score), then the problem and the open review."""
    rng = random.Random(seed)
    shown = [*_pick_examples(rng, RATED_EXAMPLES_PER_PROMPT), rng.choice(POOR_EXAMPLES)]
    rng.shuffle(shown)
    parts = [RATING_HEADER]
    for example in shown:
        review = _rating_block(example.score, example.summary, example.difficulty, example.category)
        parts.append(f"\n{_example_block(example)}\n{review}\n")
    parts.append(f"\n{_problem_block(problem)}\n{RATING_PREFIX}")
    return "".join(parts)


_RATING_FIELD = re.compile(
    r"^[\s#>*\-]*(problem quality score|quality score|score|rating|summary|difficulty|category)"
    r"\s*\**\s*:\s*\**\s*(.*)$",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.\-])(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?")


def _score(text: str) -> float | None:
    """The first number of ``text`` on the 1-10 scale ("8", "8.5", "8/10", "85/100", "4 out of 5")."""
    match = _NUMBER.search(text)
    if match is None:
        return None
    value = float(match.group(1))
    scale = float(match.group(2)) if match.group(2) else MAX_SCORE
    if scale <= 0 or value > scale:
        return None
    value = value * MAX_SCORE / scale
    if not 1.0 <= value <= MAX_SCORE:
        return None
    return round(value, 2)


def _difficulty(text: str) -> str:
    lowered = text.lower()
    found = [(lowered.find(name), name) for name in DIFFICULTIES if name in lowered]
    return min(found)[1] if found else ""


def parse_rating(completion: str, prefix: str = RATING_PREFIX) -> Rating | None:
    """One review, or None when it holds no score in [1, 10] (on a 10- or a stated scale).

    The score field is required; summary, difficulty and category are read when present
    (labels may carry markdown; anything after ``<RATING_END>`` is ignored).
    """
    if prefix and not prefix[-1].isspace() and completion and not completion[0].isspace():
        prefix += " "
    text = (prefix + completion).replace("\r\n", "\n").split("<RATING_END>", 1)[0]
    fields: dict[str, str] = {}
    for line in text.split("\n")[:MAX_COMPLETION_LINES]:
        match = _RATING_FIELD.match(line)
        if match is None:
            continue
        label = match.group(1).lower()
        name = "score" if label in ("problem quality score", "quality score", "score", "rating") else label
        fields.setdefault(name, match.group(2).strip())
    score = _score(fields.get("score", ""))
    if score is None:
        return None
    return Rating(
        score=score,
        summary=_one_line(fields.get("summary", "")),
        difficulty=_difficulty(fields.get("difficulty", "")),
        category=normalise_category(fields.get("category", "")),
    )


def aggregate_ratings(ratings: Iterable[Rating | None]) -> Rating | None:
    """Several reviews of one problem as one: the mean score, the most frequent difficulty and
    category (the earliest on ties; empty ones do not count), the first summary. None when no
    review was readable."""
    readable = [rating for rating in ratings if rating is not None]
    if not readable:
        return None

    def most_common(values: list[str]) -> str:
        counts = collections.Counter(value for value in values if value)
        if not counts:
            return ""
        best = max(counts.values())
        return next(value for value in values if value and counts[value] == best)

    return Rating(
        score=round(sum(rating.score for rating in readable) / len(readable), 2),
        summary=next((rating.summary for rating in readable if rating.summary), ""),
        difficulty=most_common([rating.difficulty for rating in readable]),
        category=most_common([rating.category for rating in readable]),
    )


def apply_rating(problem: ParsedProblem, rating: Rating | None, pool: Sequence[str]) -> ParsedProblem:
    """The problem with its rating (the neutral score when there is none). The oracle's category
    replaces the generation category only when it names a pool category, so that categories stay
    a closed set that coverage and steering can count."""
    if rating is None:
        return dataclasses.replace(problem, quality_score=NEUTRAL_SCORE, rated=False)
    category = rating.category if rating.category in pool else problem.category
    return dataclasses.replace(
        problem,
        quality_score=rating.score,
        difficulty=rating.difficulty,
        rating_summary=rating.summary,
        category=category,
        rated=True,
    )


# --- stage 3: the interface synthesizer -------------------------------------------------------

SKELETON_HEADER = (
    "Programming problems, each followed by the skeleton of its solution: the imports its type "
    "annotations need,\nthen the function signature with a docstring (what it does, Args, Returns, "
    "an example).\n"
)

#: What the skeleton prompt ends with; the completion is the skeleton's source.
SKELETON_PREFIX = "<SKELETON_START>\n"

SKELETON_STOP: list[str] = ["<SKELETON_END>", "<SKELETON_START>", "<PROBLEM_START>", "\nCategory:"]

#: Worked examples in a skeleton prompt.
SKELETONS_PER_PROMPT = 2

#: Modules a skeleton may import from: the ones whose names appear in annotations.
SKELETON_IMPORT_MODULES = frozenset(
    {"typing", "collections", "collections.abc", "fractions", "decimal", "datetime", "dataclasses", "enum"}
)


def example_skeleton(example: ExampleProblem) -> str:
    """The skeleton of a hand-written example: imports, signature, docstring with Args and Returns."""
    args = "\n".join("    " + line for line in example.args_doc)
    docstring = (
        f"{example.description}\n\nArgs:\n{args}\n\nReturns:\n    {example.returns_doc}\n\n"
        f">>> {example_call(example)}\n{example.example_output}"
    )
    return render_skeleton(example.signature, docstring, example.imports)


def build_skeleton_prompt(problem: ParsedProblem, seed: int) -> str:
    """Header, two examples (problem then skeleton) picked by ``seed``, then the problem and
    :data:`SKELETON_PREFIX`."""
    rng = random.Random(seed)
    parts = [SKELETON_HEADER]
    for example in _pick_examples(rng, SKELETONS_PER_PROMPT, problem.category):
        parts.append(
            f"\n{_example_block(example)}\n{SKELETON_PREFIX}{example_skeleton(example)}<SKELETON_END>\n"
        )
    parts.append(f"\n{_problem_block(problem)}\n{SKELETON_PREFIX}")
    return "".join(parts)


def _skeleton_module(lines: list[str]) -> ast.Module | None:
    """Longest prefix of the lines that parses and holds a def."""
    for end in range(len(lines), 0, -1):
        try:
            module = ast.parse("\n".join(lines[:end]))
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            continue
        if any(isinstance(node, ast.FunctionDef) for node in module.body):
            return module
    return None


# Template labels that have no place in a docstring (Example, Input and Output may).
_TEMPLATE_LABEL = re.compile(
    r"^[\s#>*\-]*(title|description|function signature|signature|hints?)\s*\**\s*:", re.I
)


def _bound_names(imports: list[ast.Import | ast.ImportFrom]) -> set[str]:
    names: set[str] = set()
    for node in imports:
        for alias in node.names:
            bound = alias.asname or alias.name
            names.add(bound.split(".", 1)[0])
    return names


def parse_skeleton(completion: str, problem: ParsedProblem) -> ParsedProblem | ProblemRejection:
    """The problem with the model's skeleton, or why that skeleton is unusable.

    Usable: it parses (the longest parsing prefix is taken, code fences dropped), holds only
    imports (from :data:`SKELETON_IMPORT_MODULES`) and exactly one ``def``, which names the
    problem's entry point, has the problem's number of positional parameters (its tests are
    written for that arity), annotates every parameter and the return, and has a docstring
    of at least 10 characters. A body after the docstring is dropped. Annotation names must
    be builtins or bound by the imports; missing ``typing`` imports are added. When the
    docstring has no ``>>>`` example and the problem has one, it is appended, so the
    skeleton keeps the problem's own example test. The skeleton is re-rendered like any other
    (:func:`render_skeleton`) and must compile.
    """
    text = completion.replace("\r\n", "\n").split("<SKELETON_END>", 1)[0]
    lines = [line for line in text.split("\n") if not line.strip().startswith("```")][:MAX_COMPLETION_LINES]
    module = _skeleton_module(lines)
    if module is None:
        return ProblemRejection("skeleton does not parse", "compile")
    imports: list[ast.Import | ast.ImportFrom] = []
    funcs: list[ast.FunctionDef] = []
    for node in module.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                return ProblemRejection("relative import in the skeleton", "parse")
            bad = [name for name in modules if name not in SKELETON_IMPORT_MODULES]
            if bad:
                return ProblemRejection(f"skeleton imports {bad[0]}, not a module for annotations", "parse")
            imports.append(node)
        elif isinstance(node, ast.FunctionDef):
            funcs.append(node)
        else:
            return ProblemRejection(f"skeleton has a top-level {type(node).__name__} statement", "parse")
    if len(funcs) != 1:
        return ProblemRejection(f"skeleton defines {len(funcs)} functions, not one", "parse")
    func = funcs[0]
    if func.name != problem.entry_point:
        return ProblemRejection(f"skeleton defines {func.name}, not {problem.entry_point}", "parse")
    rejection = _check_function(func)
    if rejection is not None:
        return rejection
    arity = len(func.args.posonlyargs) + len(func.args.args)
    if arity != problem.arity:
        return ProblemRejection(f"skeleton has {arity} parameters, the problem {problem.arity}", "parse")
    params = func.args.posonlyargs + func.args.args
    if func.returns is None or any(a.annotation is None for a in params):
        return ProblemRejection("skeleton lacks type annotations", "parse")
    docstring = ast.get_docstring(func, clean=True)
    if docstring is None or len(docstring.strip()) < MIN_DOCSTRING_CHARS:
        return ProblemRejection("skeleton has no docstring", "parse")
    docstring = docstring.strip()
    copied = [line for line in docstring.split("\n") if _TEMPLATE_LABEL.match(line)]
    if copied:
        # The model pasted the problem block into the docstring instead of writing one.
        return ProblemRejection(f"skeleton docstring repeats the template: {copied[0].strip()[:40]}", "parse")
    bound = _bound_names(imports)
    missing_typing: set[str] = set()
    for annotation in _annotation_nodes(func):
        for part in ast.walk(annotation):
            if isinstance(part, ast.Name) and part.id not in bound and part.id not in _BUILTIN_NAMES:
                if part.id not in _TYPING_NAMES:
                    return ProblemRejection(f"annotation uses an undefined name: {part.id}", "compile")
                missing_typing.add(part.id)
    import_lines = [ast.unparse(node) for node in imports]
    if missing_typing:
        import_lines.append("from typing import " + ", ".join(sorted(missing_typing)))
    if problem.doctest and ">>>" not in docstring:
        docstring += "\n\n" + problem.doctest
    signature = _header_line(func)
    prompt, rejection = _render_checked(signature, docstring, "\n".join(import_lines))
    if rejection is not None:
        return rejection
    return dataclasses.replace(
        problem,
        signature=signature,
        docstring=docstring,
        prompt=prompt,
        problem_id=problem_id_for(prompt),
        skeleton_from_model=True,
    )
