"""Unit tests for services.sampler.core (body truncation, candidate assembly, ids)."""

from __future__ import annotations

import pytest

from services.sampler.core import CANDIDATE_STOP, assemble_candidate, candidate_id, truncate_body

PROMPT = 'def absdiff(a: int, b: int) -> int:\n    """Return |a - b|."""\n'


def test_stop_sequences() -> None:
    assert CANDIDATE_STOP == ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]


def test_simple_body() -> None:
    assert truncate_body("    return abs(a - b)\n") == "    return abs(a - b)\n"


def test_body_without_trailing_newline_gets_one() -> None:
    assert truncate_body("    return abs(a - b)") == "    return abs(a - b)\n"


def test_nested_blocks_and_blank_lines_inside_body_are_kept() -> None:
    body = "    if a > b:\n        return a - b\n\n    for _ in range(1):\n\n        pass\n    return b - a\n"
    assert truncate_body(body) == body


def test_stops_at_following_top_level_statement() -> None:
    completion = "    return abs(a - b)\n\n\nprint(absdiff(1, 2))\n    return 0\n"
    assert truncate_body(completion) == "    return abs(a - b)\n"


def test_stops_at_next_def_and_comment() -> None:
    assert truncate_body("    x = 1\n    return x\ndef other():\n    pass\n") == "    x = 1\n    return x\n"
    assert truncate_body("    return 1\n# tests\n") == "    return 1\n"


def test_trailing_whitespace_lines_dropped() -> None:
    assert truncate_body("    return 1\n    \n\n  \n") == "    return 1\n"


def test_tab_indentation_counts_as_body() -> None:
    assert truncate_body("\treturn 1\nx = 2\n") == "\treturn 1\n"


def test_empty_or_unindented_completion_gives_empty_body() -> None:
    assert truncate_body("") == ""
    assert truncate_body("\n\n") == ""
    assert truncate_body("return 1\n    return 2\n") == ""


def test_leading_blank_line_kept_inside_body() -> None:
    assert truncate_body("\n    return 1\nfoo\n") == "\n    return 1\n"


def test_crlf() -> None:
    assert truncate_body("    return 1\r\n\r\nx = 1\r\n") == "    return 1\n"


def test_assemble_candidate_runs() -> None:
    code = assemble_candidate(PROMPT, "    return abs(a - b)\n\n\nassert absdiff(1, 3) == 2\nprint('hi')")
    assert code == PROMPT + "    return abs(a - b)\n"
    namespace: dict[str, object] = {}
    exec(compile(code, "<candidate>", "exec"), namespace)
    func = namespace["absdiff"]
    assert callable(func)
    assert func(1, 3) == 2


def test_assemble_with_empty_body_is_prompt_only() -> None:
    code = assemble_candidate(PROMPT, "print('no body')\n")
    assert code == PROMPT
    assert code.endswith("\n")


def test_assemble_adds_newline_after_prompt() -> None:
    code = assemble_candidate(PROMPT.rstrip("\n"), "    return 0")
    assert code == PROMPT + "    return 0\n"


def test_assemble_keeps_broken_body_for_the_executor() -> None:
    code = assemble_candidate(PROMPT, "    return (a -\n")
    assert code.endswith("    return (a -\n")
    with pytest.raises(SyntaxError):
        compile(code, "<candidate>", "exec")


def test_candidate_id() -> None:
    assert candidate_id("abc123", 7) == "abc123-c0007"
    assert candidate_id("abc123", 12345) == "abc123-c12345"
    assert candidate_id("p", 1) != candidate_id("p", 2)
    assert sorted(candidate_id("p", i) for i in (10, 2, 100)) == ["p-c0002", "p-c0010", "p-c0100"]
    with pytest.raises(ValueError, match="index"):
        candidate_id("p", -1)


def test_candidate_prompt_ends_with_the_skeleton_after_solved_examples() -> None:
    import ast

    from services.sampler.core import SOLVED_EXAMPLES, candidate_prompt

    skeleton = 'def f(x: int) -> int:\n    """Return x doubled."""'
    prompt = candidate_prompt(skeleton)
    assert prompt.startswith(SOLVED_EXAMPLES)
    assert prompt.endswith(skeleton + "\n")
    # The solved examples are complete, valid functions (the model imitates them).
    module = ast.parse(SOLVED_EXAMPLES)
    assert [type(node).__name__ for node in module.body] == ["FunctionDef", "FunctionDef"]
    assert all(isinstance(fn, ast.FunctionDef) and isinstance(fn.body[-1], ast.Return) for fn in module.body)
