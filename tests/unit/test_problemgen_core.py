"""Unit tests for services.problemgen.core: problem space probing, stages 1-3.

Categories, the template prompt and its parsing, the quality oracle's prompt and rating
parser, the interface synthesizer's skeleton check, exact and near-duplicate removal,
category steering, and the service's configuration checks. Model output is written here
by hand, malformed on purpose where the parser must cope with it.
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib

import pytest

from services.problemgen import core
from services.problemgen.app import ProblemGenConfig, diversity_proto, to_proto
from services.problemgen.core import (
    NEUTRAL_SCORE,
    PROBLEM_PREFIX,
    PROBLEM_STOP,
    RATING_STOP,
    SEED_CATEGORIES,
    SKELETON_PREFIX,
    TEMPLATE_EXAMPLES,
    ParsedProblem,
    ProblemRejection,
    Rating,
    aggregate_ratings,
    apply_rating,
    build_category_prompt,
    build_problem_prompt,
    build_rating_prompt,
    build_skeleton_prompt,
    category_pool,
    dedupe_problems,
    normalise_category,
    normalise_prompt,
    parse_categories,
    parse_problem,
    parse_rating,
    parse_skeleton,
    plan_categories,
    remove_near_duplicates,
    render_skeleton,
    split_samples,
)
from ucoder_common.config import ConfigError, load_config

# --- helpers --------------------------------------------------------------------------------

#: A completion of the problem prompt (which ends in "<PROBLEM_START>\nTitle:").
TEMPLATE = """ Longest Word
Description: Return the longest word of a sentence; on ties, the first one.
Function Signature: def longest_word(sentence: str) -> str:
Example:
Input: "a bb ccc dd"
Output: "ccc"
Hint: Split the sentence on spaces and compare lengths.
<PROBLEM_END>

Category: graphs
<PROBLEM_START>
Title: Something else
"""

#: A bare def (the model skipped the template), parsed with the prefix "def".
GOOD = '''sum_even(nums: list[int]) -> int:
    """Return the sum of the even numbers in nums.

    >>> sum_even([1, 2, 3, 4])
    6
    """
'''


def ok(completion: str, prefix: str = PROBLEM_PREFIX, category: str = "") -> ParsedProblem:
    result = parse_problem(completion, prefix, category)
    assert isinstance(result, ParsedProblem), result
    return result


def rejected(completion: str, prefix: str = PROBLEM_PREFIX) -> ProblemRejection:
    result = parse_problem(completion, prefix)
    assert isinstance(result, ProblemRejection), result
    return result


def template(
    title: str = "Longest Word",
    description: str = "Return the longest word of a sentence; on ties, the first one.",
    signature: str = "def longest_word(sentence: str) -> str:",
    example_input: str = '"a bb ccc dd"',
    example_output: str = '"ccc"',
    hint: str = "Split the sentence.",
) -> str:
    """A completion of the problem prompt with these fields."""
    block = core.render_problem_block(title, description, signature, example_input, example_output, hint)
    return block.removeprefix(PROBLEM_PREFIX)


def run_skeleton(problem: ParsedProblem, arguments: tuple[object, ...], body: str) -> object:
    """Execute a problem's skeleton completed with ``body`` and call it."""
    namespace: dict[str, object] = {}
    exec(compile(problem.prompt + body, "<skeleton>", "exec"), namespace)
    function = namespace[problem.entry_point]
    assert callable(function)
    return function(*arguments)


# --- categories -------------------------------------------------------------------------------


def test_category_prompt_is_an_open_python_list_of_three_seed_categories() -> None:
    prompt = build_category_prompt(0)
    assert prompt.startswith("# Categories of small")
    assert prompt.endswith('\n    "')
    shown = [line.strip().strip('",') for line in prompt.splitlines()[2:-1]]
    assert len(shown) == 3 and set(shown) <= set(SEED_CATEGORIES)
    assert build_category_prompt(0) == prompt
    assert len({build_category_prompt(seed) for seed in range(20)}) >= 10


def test_parse_categories_reads_quoted_lines_and_skips_the_rest() -> None:
    completion = (
        'graph traversal",\n'
        '    "Bit  Manipulation",  # popular\n'
        "    # a comment\n"
        "    x = 1\n"
        '    "x",\n'  # too short
        '    "graph traversal",\n'  # repeated
        "    'string processing'\n"
        '    "an overly long category name that goes on and on and on",\n'
        '    "unterminated\n'
    )
    assert parse_categories(completion) == ["graph traversal", "bit manipulation", "string processing"]
    assert parse_categories("") == []
    assert parse_categories("]\n") == []


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("  Dynamic Programming ", "dynamic programming"),
        ("**Graphs**", "graphs"),
        ("string-processing", "string-processing"),
        ("C++ templates", "c++ templates"),
        ("ab", ""),
        ("42 things", ""),
        ("one two three four five six seven", ""),
        ("", ""),
    ],
)
def test_normalise_category(raw: str, name: str) -> None:
    assert normalise_category(raw) == name


def test_category_pool_merges_caps_and_tops_up_from_the_seeds() -> None:
    pool, proposed = category_pool([["graphs", "Recursion"], ["recursion", "trees"]], 10, 2)
    assert (pool, proposed) == (["graphs", "recursion", "trees"], 3)
    pool, proposed = category_pool([["a b c", "d e f", "g h i"]], 2, 1)
    assert (pool, proposed) == (["a b c", "d e f"], 2)
    # Too few proposals: built-in categories fill the pool up to min_categories, without repeats.
    pool, proposed = category_pool([[SEED_CATEGORIES[0]]], 10, 4)
    assert proposed == 1 and pool == list(SEED_CATEGORIES[:4])
    pool, proposed = category_pool([], 10, 3)
    assert (pool, proposed) == (list(SEED_CATEGORIES[:3]), 0)


# --- steering ----------------------------------------------------------------------------------

POOL = ["strings", "lists", "math", "graphs", "dates", "geometry"]


def test_plan_without_history_is_a_seeded_sample_of_the_pool() -> None:
    plan = plan_categories(POOL, {}, 4, seed=1)
    assert not plan.steered and len(plan.categories) == 4 and len(set(plan.categories)) == 4
    assert set(plan.categories) <= set(POOL)
    assert plan_categories(POOL, {}, 4, seed=1) == plan
    assert len({tuple(plan_categories(POOL, {}, 4, seed=s).categories) for s in range(10)}) > 1


def test_plan_is_not_steered_while_diversity_holds() -> None:
    counts = {"strings": 2, "lists": 2, "math": 2, "graphs": 1, "dates": 2, "geometry": 1}
    assert not plan_categories(POOL, counts, 3, seed=0).steered


def test_plan_steers_away_from_a_category_above_the_max_share() -> None:
    counts = {"strings": 4, "lists": 1, "math": 1, "graphs": 1, "dates": 1, "geometry": 1}  # 4/9 > 20%
    plan = plan_categories(POOL, counts, 3, seed=0, max_share=0.2)
    assert plan.steered and "strings" in plan.reason
    assert "strings" not in plan.categories
    # A looser limit leaves it alone.
    assert not plan_categories(POOL, counts, 3, seed=0, max_share=0.5).steered


def test_plan_steers_toward_uncovered_categories_when_coverage_is_low() -> None:
    counts = {"strings": 2, "lists": 2}  # 2 of 4 reachable categories covered < 0.75
    plan = plan_categories(POOL, counts, 4, seed=3, max_share=1.0, min_coverage=0.75)
    assert plan.steered and "covered" in plan.reason
    assert set(plan.categories) == {"math", "graphs", "dates", "geometry"}


def test_plan_does_not_judge_the_share_of_a_handful_of_problems() -> None:
    # Two problems of one category: 100% share, but fewer than 1/max_share problems.
    plan = plan_categories(POOL, {"strings": 2}, 2, seed=0, max_share=0.2, min_coverage=0.5)
    assert not plan.steered


def test_plan_repeats_a_small_pool_and_handles_empty_input() -> None:
    plan = plan_categories(["a b c", "d e f"], {}, 5, seed=0)
    assert len(plan.categories) == 5 and set(plan.categories) == {"a b c", "d e f"}
    assert plan_categories([], {}, 3, seed=0).categories == []
    assert plan_categories(POOL, {}, 0, seed=0).categories == []


def test_steering_spreads_a_skewed_run_over_the_pool() -> None:
    # Simulate rounds where every asked category yields one problem, starting from a skewed state.
    counts = {"strings": 6}
    for round_index in range(6):
        plan = plan_categories(POOL, counts, 2, seed=round_index)
        for name in plan.categories:
            counts[name] = counts.get(name, 0) + 1
    assert all(counts.get(name, 0) >= 1 for name in POOL)
    assert max(counts.values()) == 6  # the over-represented category was never asked again


@pytest.mark.parametrize(
    ("total", "parts", "shares"), [(8, 4, [2, 2, 2, 2]), (7, 3, [3, 2, 2]), (2, 4, [1, 1, 0, 0]), (5, 0, [])]
)
def test_split_samples(total: int, parts: int, shares: list[int]) -> None:
    assert split_samples(total, parts) == shares


# --- stage 1: the problem prompt --------------------------------------------------------------


def test_problem_prompt_shape() -> None:
    prompt = build_problem_prompt("graphs", 0)
    assert prompt.startswith("Self-contained Python programming problems")
    assert prompt.endswith("\nCategory: graphs\n<PROBLEM_START>\nTitle:")
    assert prompt.count("<PROBLEM_START>") == 4 and prompt.count("<PROBLEM_END>") == 3
    assert prompt.count("Function Signature: def ") == 3
    # Every field of the paper's template appears in every example.
    for label in ("Title:", "Description:", "Example:", "Input:", "Output:", "Hint:"):
        assert prompt.count(label) == 3 + (label == "Title:")


def test_problem_prompt_avoids_examples_of_the_target_category() -> None:
    for example in TEMPLATE_EXAMPLES:
        prompt = build_problem_prompt(example.category, 5)
        assert f"Category: {example.category}\n<PROBLEM_START>\nTitle: {example.title}" not in prompt


def test_problem_prompt_is_deterministic_per_seed_and_varies_across_seeds() -> None:
    assert build_problem_prompt("math", 3) == build_problem_prompt("math", 3)
    assert len({build_problem_prompt("math", seed) for seed in range(20)}) >= 10


def test_stop_sequences_cut_the_completion_at_the_end_of_the_block() -> None:
    cut = min(TEMPLATE.find(stop) for stop in PROBLEM_STOP if stop in TEMPLATE)
    assert TEMPLATE[:cut].rstrip().endswith("Hint: Split the sentence on spaces and compare lengths.")


def test_every_example_parses_back_with_its_fields_and_example() -> None:
    names = set()
    for example in TEMPLATE_EXAMPLES:
        block = core.render_problem_block(
            example.title,
            example.description,
            example.signature.replace(example.entry_point, "my_" + example.entry_point),
            example.example_input,
            example.example_output,
            example.hint,
        )
        parsed = ok(block.removeprefix(PROBLEM_PREFIX), category=example.category)
        assert parsed.title == example.title and parsed.description == example.description
        assert parsed.hint == example.hint and parsed.category == example.category
        assert parsed.doctest.startswith(f">>> my_{example.entry_point}(")
        # The example is a true example: the docstring's expected output is the literal written.
        assert parsed.doctest.endswith("\n" + repr(ast.literal_eval(example.example_output)))
        names.add(example.entry_point)
    assert len(names) == len(TEMPLATE_EXAMPLES) >= 12


def test_a_copied_example_is_rejected() -> None:
    example = TEMPLATE_EXAMPLES[0]
    r = rejected(template(signature=example.signature, description=example.description))
    assert r.reason.startswith("copy of a prompt example")


# --- stage 1: parsing the template -------------------------------------------------------------


def test_parse_template() -> None:
    p = ok(TEMPLATE, category="string processing")
    assert (p.entry_point, p.arity, p.category) == ("longest_word", 1, "string processing")
    assert p.title == "Longest Word"
    assert p.description == "Return the longest word of a sentence; on ties, the first one."
    assert (p.example_input, p.example_output) == ('"a bb ccc dd"', '"ccc"')
    assert p.hint == "Split the sentence on spaces and compare lengths."
    assert p.signature == "def longest_word(sentence: str) -> str:"
    assert p.doctest == ">>> longest_word('a bb ccc dd')\n'ccc'"
    assert p.docstring == p.description + "\n\n" + p.doctest
    assert p.prompt == render_skeleton(p.signature, p.docstring)
    assert p.problem_id == hashlib.sha256(normalise_prompt(p.prompt).encode()).hexdigest()[:12]
    assert not p.skeleton_from_model and not p.rated
    assert run_skeleton(p, ("x yy",), "    return max(sentence.split(), key=len)\n") == "yy"


def test_parse_template_tolerates_markdown_fences_and_crlf() -> None:
    completion = (
        " **Longest Word**\r\n"
        "**Description:** Return the longest word of a sentence;\r\n"
        "on ties, the first one.\r\n"
        "**Function Signature:**\r\n"
        "```python\r\n"
        "def longest_word(sentence: str) -> str:\r\n"
        "```\r\n"
        '- Input: `"a bb ccc dd"`\r\n'
        '- Output: `"ccc"`\r\n'
    )
    p = ok(completion)
    assert p.title == "Longest Word"
    assert p.description == "Return the longest word of a sentence; on ties, the first one."
    assert p.doctest == ">>> longest_word('a bb ccc dd')\n'ccc'"
    assert p.hint == ""


def test_parse_template_signature_variants() -> None:
    # No trailing colon, no "def", a remark after the colon, a signature over several lines.
    assert ok(template(signature="def longest_word(sentence: str) -> str")).arity == 1
    assert ok(template(signature="longest_word(sentence: str) -> str")).entry_point == "longest_word"
    remark = ok(template(signature="`def longest_word(sentence: str) -> str:` returns the word"))
    assert remark.signature == "def longest_word(sentence: str) -> str:"
    multi = ok(
        template(
            signature="\ndef pair(\n    a: int,\n    b: int,\n) -> tuple[int, int]:", example_input="1, 2"
        )
    )
    assert multi.signature == "def pair(a: int, b: int) -> tuple[int, int]:"
    assert multi.arity == 2


def test_parse_template_typing_names_get_an_import() -> None:
    p = ok(
        template(
            signature="def top(xs: List[int], k: Optional[int]) -> Dict[int, int]:", example_input="[1], 1"
        )
    )
    assert p.prompt.startswith("from typing import Dict, List, Optional\n\n\ndef top(")


@pytest.mark.parametrize(
    ("example_input", "example_output", "doctest"),
    [
        ("[3, 1], 2", "[1]", ">>> f([3, 1], 2)\n[1]"),
        ("xs = [3, 1], k = 2", "[1]", ">>> f([3, 1], 2)\n[1]"),  # keyword style, mapped to positions
        ("k=2, xs=[3, 1]", "[1]", ">>> f([3, 1], 2)\n[1]"),
        ("f([3, 1], 2)", "[1]", ">>> f([3, 1], 2)\n[1]"),  # the whole call
        ("[3, 1]", "[3]", ">>> f([3, 1])\n[3]"),  # k has a default
        ("[3, 1], 2, 5", "[1]", ""),  # too many arguments
        ("k=2", "[1]", ""),  # a required argument missing
        ("[3, 1], 2", "the list [1]", ""),  # output is no literal
        ("a list of numbers", "[1]", ""),  # input is no literal
        ("[3, 1], len(x)", "[1]", ""),
        ("", "", ""),
    ],
)
def test_example_becomes_a_doctest_only_when_it_fits_the_signature(
    example_input: str, example_output: str, doctest: str
) -> None:
    p = ok(
        template(
            signature="def f(xs: list[int], k: int = 1) -> list[int]:",
            example_input=example_input,
            example_output=example_output,
        )
    )
    assert p.doctest == doctest
    assert p.example_input == example_input  # the text as written is kept either way
    assert (doctest in p.docstring) if doctest else (">>>" not in p.docstring)


def test_parse_template_one_line_example() -> None:
    completion = (
        " Square\nDescription: Return the square of an integer n.\n"
        "Function Signature: def square(n: int) -> int:\nExample: square(3) -> 9\n"
    )
    p = ok(completion)
    assert p.doctest == ">>> square(3)\n9"


def test_parse_template_missing_title_is_derived_from_the_name() -> None:
    completion = (
        "\nDescription: Return the square of an integer n.\n"
        "Function Signature: def square_of(n: int) -> int:\n"
    )
    p = ok(completion)
    assert p.title == "Square of"


def test_parse_template_ignores_a_second_example_and_text_after_the_end() -> None:
    completion = (template() + "\n<PROBLEM_END>\nFunction Signature: def other(x: int) -> int:\n").replace(
        "Hint:", 'Example:\nInput: "q"\nOutput: "q"\nHint:'
    )
    p = ok(completion)
    assert p.entry_point == "longest_word" and p.doctest == ">>> longest_word('a bb ccc dd')\n'ccc'"


@pytest.mark.parametrize(
    ("completion", "kind", "reason"),
    [
        (template(signature="a function that finds the word"), "parse", "no function signature"),
        (template(signature="def longest_word(sentence str) -> str:"), "compile", "does not parse"),
        (template(description="Short."), "parse", "description shorter"),
        (
            " Title only\nDescription: Return the longest word of a sentence.\n",
            "parse",
            "no function signature",
        ),
        (template(signature="def longest_word(*words: str) -> str:"), "parse", "variadic"),
        (template(signature="def longest_word() -> str:"), "parse", "positional"),
        (template(signature="def _longest(sentence: str) -> str:"), "parse", "private"),
        (template(signature="def walk(root: TreeNode) -> int:"), "compile", "TreeNode"),
        (template(signature="async def fetch(url: str) -> str:"), "parse", "not a plain def"),
        (template(description='Return the word in """quotes"""'), "compile", ""),
    ],
)
def test_parse_template_rejections(completion: str, kind: str, reason: str) -> None:
    r = rejected(completion)
    assert r.kind == kind and reason in r.reason


def test_parse_template_garbage_is_rejected_not_raised() -> None:
    for text in (
        "",
        "\n\n",
        "<PROBLEM_END>",
        "Title: x\nDescription:\nFunction Signature:",
        "\x00" * 10,
        "def",
    ):
        assert isinstance(parse_problem(text), ProblemRejection)


# --- stage 1: a bare def (the model wrote code instead of the template) -----------------------


def test_parse_bare_def() -> None:
    p = ok(GOOD, prefix="def", category="math")
    assert p.entry_point == "sum_even" and p.category == "math"
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
    assert p.title == "" and p.description == "" and p.text == p.docstring
    # After the template prefix too: the model may skip the fields and write code.
    assert ok("\ndef " + GOOD).prompt == p.prompt


def test_bare_def_tolerates_body_trailing_code_and_truncation() -> None:
    completion = GOOD + "    return sum(n for n in nums if n % 2 == 0)\n\nprint(sum_even([2]))\nGarbage (\n"
    assert ok(completion, prefix="def").prompt == ok(GOOD, prefix="def").prompt
    assert (
        ok(GOOD + "    total = 0\n    for n in nums:\n        if n % 2 == (", prefix="def").entry_point
        == "sum_even"
    )


def test_bare_def_details() -> None:
    one_line = ok("shout(text: str) -> str:\n    '''Return text upper-cased with a bang.'''\n", prefix="def")
    assert one_line.prompt == 'def shout(text: str) -> str:\n    """Return text upper-cased with a bang."""\n'
    decorated = ok("Here is a new exercise!\n\n@functools.cache\ndef " + GOOD, prefix="")
    assert "@" not in decorated.prompt
    clip = ok(
        'clip(x: int, /, lo: int, hi: int = 10) -> int:\n    """Clamp x into [lo, hi]."""\n', prefix="def"
    )
    assert clip.arity == 3
    typed = ok(
        "head(xs: List[int], d: Optional[Dict[str, int]]) -> typing.Tuple[int, int]:\n"
        '    """First two items."""\n',
        prefix="def",
    )
    assert typed.prompt.startswith("import typing\nfrom typing import Dict, List, Optional\n\n\ndef head(")
    backslash = ok('digits(s: str) -> list[str]:\n    r"""Return matches of \\d+ in s."""\n', prefix="def")
    assert backslash.docstring == "Return matches of \\d+ in s."
    assert ok(GOOD.replace("\n", "\r\n"), prefix="def").prompt == ok(GOOD, prefix="def").prompt


@pytest.mark.parametrize(
    ("completion", "kind", "reason"),
    [
        ("add(a: int, b: int) -> int:\n    return a + b\n", "parse", "no docstring"),
        ('add(a: int, b: int) -> int:\n    """Add the two numbers a and b.\n    >>> add(1,', "compile", ""),
        ('add(a: int b: int) -> int:\n    """Add the two numbers a and b."""\n', "compile", ""),
        ('add(a: int, b: int) -> int:\n    """Add."""\n', "parse", "docstring"),
        ('f(a: int, *, b: int) -> int:\n    """Sum all the arguments."""\n', "parse", "keyword-only"),
        ('mean(xs: np.ndarray) -> float:\n    """Mean of the array values."""\n', "compile", "np.ndarray"),
        ("quote(s: str) -> str:\n    '''Wrap s in quotes like \"this\"'''\n", "compile", ""),
    ],
)
def test_bare_def_rejections(completion: str, kind: str, reason: str) -> None:
    r = rejected(completion, prefix="def")
    assert r.kind == kind and reason in r.reason


def test_prose_is_rejected() -> None:
    r = rejected("Sorry, I cannot do that.", prefix="")
    assert (r.kind, r.reason) == ("parse", "no function definition")


# --- exact and near-duplicates -----------------------------------------------------------------


def test_dedupe_exact_and_by_name() -> None:
    a = ok(GOOD, prefix="def")
    a_again = ok(GOOD.replace("\n\n", "\n  \n"), prefix="def")  # whitespace-only difference: same id
    assert a_again.problem_id == a.problem_id
    same_name = ok('sum_even(xs: list[int]) -> int:\n    """Sum of the even items of xs."""\n', prefix="def")
    other = ok('sum_odd(xs: list[int]) -> int:\n    """Sum of the odd items of xs."""\n', prefix="def")
    kept, removed = dedupe_problems([a, a_again, same_name, other, other])
    assert kept == [a, other]
    assert removed == 3
    assert dedupe_problems([]) == ([], 0)


def test_near_duplicates_of_kept_problems_examples_and_each_other_are_removed() -> None:
    kept = [ok(template(signature="def longest_word(sentence: str) -> str:"))]
    reworded = ok(
        template(
            signature="def find_longest(text: str) -> str:",
            description="Return the longest word in a sentence; on ties, the first one.",
        )
    )
    different = ok(
        template(signature="def count_digits(n: int) -> int:", description="Count the decimal digits of n.")
    )
    copied_example = ok(
        template(signature="def my_count(text: str) -> int:", description=TEMPLATE_EXAMPLES[0].description)
    )
    twin = dataclasses.replace(different, entry_point="count_digits_again", problem_id="x")
    fresh, removed = remove_near_duplicates(kept, [reworded, different, copied_example, twin], 0.7)
    assert fresh == [different]
    assert removed == 3
    # Threshold 1.0 only removes identical statements (after normalisation).
    fresh, removed = remove_near_duplicates(kept, [reworded, different, twin], 1.0)
    assert fresh == [reworded, different] and removed == 1


# --- stage 2: the quality oracle ----------------------------------------------------------------


def test_rating_prompt_shape() -> None:
    problem = ok(TEMPLATE)
    prompt = build_rating_prompt(problem, 0)
    assert prompt.endswith(
        core.render_problem_block(
            "Longest Word",
            problem.description,
            problem.signature,
            problem.example_input,
            problem.example_output,
            problem.hint,
        )
        + "\n<RATING_START>\nProblem Quality Score:"
    )
    assert prompt.count("<RATING_START>") == 4 and prompt.count("<RATING_END>") == 3
    scores = [
        int(line.split(":")[1]) for line in prompt.splitlines() if line.startswith("Problem Quality Score: ")
    ]
    assert len(scores) == 3 and min(scores) <= 3 < 7 <= max(scores)  # one poor example, two good ones
    # The order varies with the seed, so the last example's score is not always the same.
    last = {build_rating_prompt(problem, seed).split("Problem Quality Score: ")[-2][:1] for seed in range(12)}
    assert len(last) > 1
    assert "<RATING_END>" in RATING_STOP


def test_rating_prompt_of_a_bare_def_problem_uses_the_docstring() -> None:
    prompt = build_rating_prompt(ok(GOOD, prefix="def"), 1)
    assert "Description: Return the sum of the even numbers in nums.\n" in prompt


def test_parse_rating() -> None:
    completion = (
        " 8\nSummary: Clear and testable.\nDifficulty: Medium\nCategory: String Processing\n<RATING_END>\nx"
    )
    assert parse_rating(completion) == Rating(8.0, "Clear and testable.", "medium", "string processing")


@pytest.mark.parametrize(
    ("completion", "score"),
    [
        (" 7/10\n", 7.0),
        (" 85/100\n", 8.5),
        (" 4 out of 5\n", 8.0),
        (" **9**\n", 9.0),
        (" 6.5 (good)\n", 6.5),
        (" 10\n", 10.0),
        (" 1\n", 1.0),
    ],
)
def test_parse_rating_score_forms(completion: str, score: float) -> None:
    rating = parse_rating(completion)
    assert rating is not None and rating.score == score


@pytest.mark.parametrize(
    "completion",
    [
        "",
        " high\nSummary: fine",
        " 0\n",
        " 11\n",
        " 12/10\n",
        " -3\n",
        " 5/0\n",
        "<RATING_END> 8",
        "\x00\x01",
    ],
)
def test_parse_rating_without_a_usable_score_is_none(completion: str) -> None:
    assert parse_rating(completion) is None


def test_parse_rating_reads_labels_in_any_order_with_markdown_and_missing_fields() -> None:
    completion = "\n**Category:** graphs\n- Score: 6\n**Difficulty**: very hard, not easy\n"
    rating = parse_rating(completion, prefix="<RATING_START>\n")
    assert rating == Rating(6.0, "", "hard", "graphs")
    bare = parse_rating(" 3")
    assert bare == Rating(3.0, "", "", "")


def test_aggregate_ratings() -> None:
    ratings = [
        Rating(8.0, "", "easy", "graphs"),
        None,
        Rating(6.0, "good", "medium", ""),
        Rating(7.0, "fine", "medium", "math"),
    ]
    assert aggregate_ratings(ratings) == Rating(7.0, "good", "medium", "graphs")
    assert aggregate_ratings([None, None]) is None
    assert aggregate_ratings([]) is None


def test_apply_rating_uses_the_oracle_category_only_from_the_pool() -> None:
    problem = ok(TEMPLATE, category="strings")
    rated = apply_rating(problem, Rating(7.5, "ok", "easy", "graphs"), ["strings", "graphs"])
    assert (rated.quality_score, rated.difficulty, rated.rating_summary, rated.category, rated.rated) == (
        7.5,
        "easy",
        "ok",
        "graphs",
        True,
    )
    outside = apply_rating(problem, Rating(7.5, "ok", "easy", "poetry"), ["strings", "graphs"])
    assert outside.category == "strings"
    unrated = apply_rating(problem, None, ["strings"])
    assert unrated.quality_score == NEUTRAL_SCORE and not unrated.rated
    assert unrated.problem_id == problem.problem_id  # rating never changes the skeleton


# --- stage 3: the interface synthesizer ---------------------------------------------------------

SKELETON = '''from typing import List


def longest_word(sentence: str) -> str:
    """Return the longest word of a sentence.

    Args:
        sentence: words separated by spaces.

    Returns:
        The first of the longest words.
    """
'''


def skeleton(text: str, problem: ParsedProblem | None = None) -> ParsedProblem:
    result = parse_skeleton(text, problem or ok(TEMPLATE))
    assert isinstance(result, ParsedProblem), result
    return result


def unusable(text: str, problem: ParsedProblem | None = None) -> ProblemRejection:
    result = parse_skeleton(text, problem or ok(TEMPLATE))
    assert isinstance(result, ProblemRejection), result
    return result


def test_skeleton_prompt_shape() -> None:
    problem = ok(TEMPLATE, category="string processing")
    prompt = build_skeleton_prompt(problem, 0)
    assert prompt.endswith("<PROBLEM_END>\n" + SKELETON_PREFIX)
    assert prompt.count("<SKELETON_START>") == 3 and prompt.count("<SKELETON_END>") == 2
    assert prompt.count("Args:") == 2 and prompt.count("Returns:") == 2
    assert "Count Vowels" not in prompt  # no example of the problem's own category


def test_example_skeletons_are_valid_model_skeletons() -> None:
    for example in TEMPLATE_EXAMPLES:
        renamed = example.signature.replace(example.entry_point, "my_" + example.entry_point)
        problem = ok(
            template(
                signature=renamed,
                description=example.description,
                example_input=example.example_input,
                example_output=example.example_output,
            )
        )
        text = core.example_skeleton(example).replace(example.entry_point, "my_" + example.entry_point)
        parsed = skeleton(text, problem)
        assert parsed.prompt == text
        assert "Args:" in parsed.docstring and "Returns:" in parsed.docstring


def test_parse_skeleton_replaces_the_problems_skeleton() -> None:
    problem = ok(TEMPLATE)
    p = skeleton(
        SKELETON + "    return max(sentence.split(), key=len)\n<SKELETON_END>\ntrailing text", problem
    )
    assert p.skeleton_from_model
    assert p.prompt.startswith("from typing import List\n\n\ndef longest_word(sentence: str) -> str:\n")
    # The problem's example is appended when the model's docstring has none; the body is dropped.
    assert p.docstring.endswith("Returns:\n    The first of the longest words.\n\n" + problem.doctest)
    assert "return max" not in p.prompt
    assert p.problem_id != problem.problem_id and p.problem_id == core.problem_id_for(p.prompt)
    assert (p.title, p.description, p.category) == (problem.title, problem.description, problem.category)
    assert run_skeleton(p, ("a bbb cc",), "    return max(sentence.split(), key=len)\n") == "bbb"


def test_parse_skeleton_keeps_the_models_own_example_and_adds_missing_typing_imports() -> None:
    text = (
        "```python\n"
        "def longest_word(sentence: str) -> Optional[str]:\n"
        '    """Return the longest word.\n\n    >>> longest_word("a bb")\n    \'bb\'\n    """\n'
        "```\n"
    )
    p = skeleton(text)
    assert p.prompt.startswith("from typing import Optional\n\n\ndef longest_word(")
    assert p.docstring.count(">>>") == 1


def test_parse_skeleton_accepts_allowed_imports_and_dotted_annotations() -> None:
    text = (
        "import collections.abc\nfrom collections import Counter as C\n\n"
        "def longest_word(sentence: collections.abc.Sequence[str]) -> C:\n"
        '    """Return the longest word."""\n'
    )
    assert skeleton(text).prompt.startswith("import collections.abc\nfrom collections import Counter as C\n")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "does not parse"),
        ("Here is the skeleton: it takes a sentence.", "does not parse"),
        ('def other_name(sentence: str) -> str:\n    """Return the longest word."""\n', "not longest_word"),
        (
            'def longest_word(sentence: str, n: int) -> str:\n    """Return the longest word."""\n',
            "parameters",
        ),
        ('def longest_word(sentence) -> str:\n    """Return the longest word."""\n', "annotations"),
        ('def longest_word(sentence: str):\n    """Return the longest word."""\n', "annotations"),
        (
            'def longest_word(sentence: str) -> str:\n    """Return it.\n'
            '    Function Signature: def longest_word(s)\n    """\n',
            "repeats the template",
        ),
        ("def longest_word(sentence: str) -> str:\n    return sentence\n", "no docstring"),
        ('def longest_word(sentence: str) -> str:\n    """Word."""\n', "no docstring"),
        (
            'import numpy as np\ndef longest_word(sentence: str) -> str:\n    """Return the longest."""\n',
            "numpy",
        ),
        (
            'from . import x\ndef longest_word(sentence: str) -> str:\n    """Return the longest word."""\n',
            "relative",
        ),
        ('def longest_word(sentence: Words) -> str:\n    """Return the longest word."""\n', "Words"),
        ('def longest_word(sentence: str) -> str:\n    """Return the longest word."""\nprint(1)\n', "Expr"),
        (SKELETON + "\n\ndef helper(x: int) -> int:\n    return x\n", "2 functions"),
        ('def longest_word(*words: str) -> str:\n    """Return the longest word."""\n', "variadic"),
        ("def longest_word(sentence: str) -> str:\n    '''Say \"hi\"'''\n", ""),
    ],
)
def test_unusable_skeletons(text: str, reason: str) -> None:
    assert reason in unusable(text).reason


# --- the service's configuration and protos ---------------------------------------------------


def test_config_defaults_are_valid_and_match_the_paper_share() -> None:
    cfg = load_config(ProblemGenConfig, "problemgen", [], {})
    assert cfg.max_category_share == 0.2
    assert cfg.min_quality < NEUTRAL_SCORE  # an unrated problem is kept by default


@pytest.mark.parametrize(
    ("flags", "field"),
    [
        (["--categories-per-round", "0"], "categories_per_round"),
        (["--categories-per-round", "9", "--samples-per-round", "8"], "categories_per_round"),
        (["--min-quality", "11"], "min_quality"),
        (["--min-quality", "-1"], "min_quality"),
        (["--near-duplicate-jaccard", "0"], "near_duplicate_jaccard"),
        (["--near-duplicate-jaccard", "1.5"], "near_duplicate_jaccard"),
        (["--max-category-share", "0"], "max_category_share"),
        (["--min-category-coverage", "2"], "min_category_coverage"),
        (["--min-categories", "17"], "min_categories"),
        (["--min-categories", "8", "--max-categories", "4"], "min_categories"),
        (["--rating-samples", "0"], "rating_samples"),
        (["--rating-temperature", "-0.1"], "rating_temperature"),
        (["--skeleton-max-tokens", "0"], "skeleton_max_tokens"),
        (["--max-parallel-requests", "0"], "max_parallel_requests"),
        (["--sampler-timeout-s", "0"], "sampler_timeout_s"),
    ],
)
def test_bad_config_names_the_field(flags: list[str], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        load_config(ProblemGenConfig, "problemgen", flags, {})


def test_problem_and_diversity_protos_carry_the_new_fields() -> None:
    problem = apply_rating(ok(TEMPLATE, category="strings"), Rating(8.0, "clear", "easy", ""), ["strings"])
    message = to_proto(skeleton(SKELETON, problem))
    assert (message.title, message.category, message.difficulty, message.rating_summary) == (
        "Longest Word",
        "strings",
        "easy",
        "clear",
    )
    assert message.quality_score == 8.0 and message.skeleton_from_model
    assert (message.example_input, message.example_output) == ('"a bb ccc dd"', '"ccc"')
    assert message.description.startswith("Return the longest word") and message.hint
    other = ok(
        template(signature="def count_digits(n: int) -> int:", description="Count the digits of n."),
        category="math",
    )
    report = diversity_proto([problem, other], ["strings", "math", "graphs", "dates"])
    assert report.problems == 2 and report.category_coverage == 0.5
    assert dict(report.category_counts) == {"math": 1, "strings": 1}
    assert report.max_category_share == 0.5 and report.category_entropy == 1.0
    assert report.mean_lexical_entropy > 2.0 and 0 < report.distinct_2 <= 1.0
