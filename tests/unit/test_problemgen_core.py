"""Unit tests for services.problemgen.core (prompt building, parsing, dedupe)."""

from __future__ import annotations

import ast
import hashlib

import pytest

from services.problemgen.core import (
    EXAMPLE_SKELETONS,
    PROBLEM_PREFIX,
    PROBLEM_STOP,
    ParsedProblem,
    ProblemRejection,
    build_problem_prompt,
    dedupe_problems,
    normalise_prompt,
    parse_problem,
    render_skeleton,
)

GOOD = '''sum_even(nums: list[int]) -> int:
    """Return the sum of the even numbers in nums.

    >>> sum_even([1, 2, 3, 4])
    6
    """
'''


def ok(completion: str, prefix: str = PROBLEM_PREFIX) -> ParsedProblem:
    result = parse_problem(completion, prefix)
    assert isinstance(result, ParsedProblem), result
    return result


def rejected(completion: str, prefix: str = PROBLEM_PREFIX) -> ProblemRejection:
    result = parse_problem(completion, prefix)
    assert isinstance(result, ProblemRejection), result
    return result


# --- prompt ---------------------------------------------------------------------------


def test_prompt_shape() -> None:
    prompt = build_problem_prompt(0)
    assert prompt.startswith("# Small, self-contained Python programming exercises.")
    assert prompt.endswith("\n\ndef")
    # exactly three example skeletons plus the open "def" at the end (no trailing space)
    assert prompt.count("\ndef ") == 3
    assert prompt.count(">>> ") == 3


def test_prompt_examples_are_valid_skeletons_without_bodies() -> None:
    prompt = build_problem_prompt(7)
    module = ast.parse(prompt[: -len("def")])
    funcs = [n for n in module.body if isinstance(n, ast.FunctionDef)]
    assert len(funcs) == 3
    for func in funcs:
        assert ast.get_docstring(func) is not None
        # only the docstring: no body statements after it
        assert len(func.body) == 1
        assert func.returns is not None
        assert all(a.annotation is not None for a in func.args.args)


def test_prompt_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    assert build_problem_prompt(3) == build_problem_prompt(3)
    prompts = {build_problem_prompt(seed) for seed in range(20)}
    assert len(prompts) >= 10


def test_prompt_stop_sequences_absent_inside_examples() -> None:
    # The examples region must not contain the stop sequences the completion is cut on,
    # other than the separators between the defs themselves.
    prompt = build_problem_prompt(1)
    body = prompt.split("\n\n\ndef ", 1)[1]
    assert "\nclass " not in body and "\nif __name__" not in body
    assert PROBLEM_STOP[0] == "\ndef "


def test_builtin_examples_are_distinct_and_copies_are_rejected() -> None:
    assert len(EXAMPLE_SKELETONS) >= 12
    names = set()
    for signature, docstring in EXAMPLE_SKELETONS:
        text = render_skeleton(signature, docstring)
        # A base model often repeats a few-shot example verbatim: that is no new problem.
        copy = rejected(text[len("def ") :])
        assert copy.reason.startswith("copy of a prompt example")
        names.add(signature.split("(")[0])
    assert len(names) == len(EXAMPLE_SKELETONS)


def test_renamed_example_parses_back() -> None:
    signature, docstring = EXAMPLE_SKELETONS[0]
    renamed = "def my_" + signature.removeprefix("def ")
    text = render_skeleton(renamed, docstring)
    parsed = ok(text[len("def ") :])
    assert parsed.signature == renamed
    assert parsed.docstring == docstring
    assert parsed.prompt == text


# --- parse: good completions ------------------------------------------------------------


def test_parse_good_completion() -> None:
    p = ok(GOOD)
    assert p.entry_point == "sum_even"
    assert p.signature == "def sum_even(nums: list[int]) -> int:"
    assert p.docstring == "Return the sum of the even numbers in nums.\n\n>>> sum_even([1, 2, 3, 4])\n6"
    assert p.arity == 1
    assert p.prompt == (
        "def sum_even(nums: list[int]) -> int:\n"
        '    """Return the sum of the even numbers in nums.\n'
        "\n"
        "    >>> sum_even([1, 2, 3, 4])\n"
        "    6\n"
        '    """\n'
    )
    expected_id = hashlib.sha256(normalise_prompt(p.prompt).encode()).hexdigest()[:12]
    assert p.problem_id == expected_id
    assert len(p.problem_id) == 12


def test_prompt_compiles_and_defines_function() -> None:
    p = ok(GOOD)
    namespace: dict[str, object] = {}
    exec(compile(p.prompt + "    return 0\n", "<t>", "exec"), namespace)
    assert callable(namespace["sum_even"])


def test_parse_tolerates_body_and_trailing_code() -> None:
    completion = GOOD + "    return sum(n for n in nums if n % 2 == 0)\n\nprint(sum_even([2]))\nGarbage (\n"
    p = ok(completion)
    assert p.prompt == ok(GOOD).prompt
    assert "return" not in p.prompt


def test_parse_truncated_body_still_ok() -> None:
    p = ok(GOOD + "    total = 0\n    for n in nums:\n        if n % 2 == (")
    assert p.entry_point == "sum_even"


def test_parse_single_quote_docstring_and_one_line() -> None:
    p = ok("shout(text: str) -> str:\n    '''Return text upper-cased with a bang.'''\n")
    assert p.docstring == "Return text upper-cased with a bang."
    assert p.prompt == 'def shout(text: str) -> str:\n    """Return text upper-cased with a bang."""\n'


def test_parse_ignores_garbage_and_decorators_before_def() -> None:
    text = "Here is a new exercise!\n\n@functools.cache\ndef " + GOOD
    p = ok(text, prefix="")
    assert p.entry_point == "sum_even"
    assert "@" not in p.prompt and "functools" not in p.prompt


def test_parse_multiline_signature_is_normalised_to_one_line() -> None:
    p = ok('pair(\n    a: int,\n    b: int,\n) -> tuple[int, int]:\n    """Return a and b as a pair."""\n')
    assert p.signature == "def pair(a: int, b: int) -> tuple[int, int]:"
    assert p.arity == 2


def test_parse_defaults_and_positional_only_count_towards_arity() -> None:
    p = ok('clip(x: int, /, lo: int, hi: int = 10) -> int:\n    """Clamp x into [lo, hi]."""\n')
    assert p.arity == 3


def test_parse_typing_names_get_an_import() -> None:
    p = ok(
        "head(xs: List[int], d: Optional[Dict[str, int]]) -> typing.Tuple[int, int]:\n"
        '    """First two items."""\n'
    )
    assert p.prompt.startswith("import typing\nfrom typing import Dict, List, Optional\n\n\ndef head(")
    namespace: dict[str, object] = {}
    exec(compile(p.prompt + "    return (0, 0)\n", "<t>", "exec"), namespace)
    assert "head" in namespace


def test_parse_backslashes_survive() -> None:
    p = ok('digits(s: str) -> list[str]:\n    r"""Return matches of \\d+ in s."""\n')
    assert p.docstring == "Return matches of \\d+ in s."
    module = ast.parse(p.prompt)
    func = module.body[0]
    assert isinstance(func, ast.FunctionDef)
    assert ast.get_docstring(func) == p.docstring


def test_crlf_line_endings() -> None:
    assert ok(GOOD.replace("\n", "\r\n")).prompt == ok(GOOD).prompt


# --- parse: rejections -------------------------------------------------------------------


def test_reject_no_def() -> None:
    r = rejected("Sorry, I cannot do that.", prefix="")
    assert r.kind == "parse"
    assert "no function" in r.reason


def test_reject_no_docstring() -> None:
    r = rejected("add(a: int, b: int) -> int:\n    return a + b\n")
    assert (r.kind, r.reason) == ("parse", "no docstring")


def test_reject_comment_instead_of_docstring_with_unparseable_tail() -> None:
    r = rejected("add(a: int, b: int) -> int:\n    # adds\n")
    assert r.kind == "parse"


def test_reject_unterminated_docstring() -> None:
    r = rejected('add(a: int, b: int) -> int:\n    """Add the two numbers a and b.\n    >>> add(1,')
    assert r.kind == "compile"


def test_reject_signature_syntax_error() -> None:
    r = rejected('add(a: int b: int) -> int:\n    """Add the two numbers a and b."""\n')
    assert r.kind == "compile"


def test_reject_short_docstring() -> None:
    r = rejected('add(a: int, b: int) -> int:\n    """Add."""\n')
    assert r.kind == "parse" and "docstring" in r.reason


def test_reject_varargs_kwargs_kwonly() -> None:
    assert "variadic" in rejected('f(*args: int) -> int:\n    """Sum all the arguments."""\n').reason
    assert "variadic" in rejected('f(a: int, **kw: int) -> int:\n    """Sum all the arguments."""\n').reason
    r = rejected('f(a: int, *, b: int) -> int:\n    """Sum all the arguments."""\n')
    assert r.kind == "parse" and "keyword-only" in r.reason


def test_reject_no_parameters() -> None:
    r = rejected('answer() -> int:\n    """Return the answer to everything."""\n')
    assert "positional" in r.reason


def test_reject_private_name() -> None:
    r = rejected('_helper(x: int) -> int:\n    """Double the value of x."""\n')
    assert r.kind == "parse" and "private" in r.reason


def test_reject_undefined_annotation_names() -> None:
    r = rejected('walk(root: TreeNode) -> int:\n    """Count the nodes of a tree."""\n')
    assert r.kind == "compile" and "TreeNode" in r.reason
    r = rejected('mean(xs: np.ndarray) -> float:\n    """Mean of the array values."""\n')
    assert r.kind == "compile"


def test_reject_docstring_that_cannot_be_rerendered() -> None:
    # a one-line docstring ending in a quote would close the triple quotes early
    r = rejected("quote(s: str) -> str:\n    '''Wrap s in quotes like \"this\"'''\n")
    assert r.kind == "compile"


def test_async_def_is_not_a_problem() -> None:
    r = rejected('async def fetch(url: str) -> str:\n    """Fetch the url and return text."""\n', prefix="")
    assert r.kind == "parse"


# --- dedupe -------------------------------------------------------------------------------


def test_dedupe_exact_and_by_name() -> None:
    a = ok(GOOD)
    a_again = ok(GOOD.replace("\n\n", "\n  \n"))  # whitespace-only difference: same id
    assert a_again.problem_id == a.problem_id
    same_name = ok('sum_even(xs: list[int]) -> int:\n    """Sum of the even items of xs."""\n')
    other = ok('sum_odd(xs: list[int]) -> int:\n    """Sum of the odd items of xs."""\n')
    kept, removed = dedupe_problems([a, a_again, same_name, other, other])
    assert kept == [a, other]
    assert removed == 3


def test_dedupe_empty() -> None:
    assert dedupe_problems([]) == ([], 0)


@pytest.mark.parametrize("seed", [0, 1, 2, 99])
def test_prompt_plus_completion_is_a_valid_python_file(seed: int) -> None:
    prompt = build_problem_prompt(seed)
    module = ast.parse(prompt + " " + GOOD)
    last = module.body[-1]
    assert isinstance(last, ast.FunctionDef) and last.name == "sum_even"
    # the parse of the completion alone gives the same skeleton as the last def of the file
    assert ok(GOOD).docstring == ast.get_docstring(last)
