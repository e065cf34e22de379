"""Type-preserving mutations of literal argument tuples (input fuzzing, no external data).

:func:`fuzz_inputs` derives more argument tuples from a few literal ones: numbers nudged,
strings and lists edited, bools flipped. The consensus benchmark uses it on HumanEval's hidden
inputs; test synthesis uses it to top up the model's own test inputs when the model writes
fewer than asked (``TestSynthConfig.mutation_fill``).
"""

from __future__ import annotations

import ast
import random
from collections.abc import Sequence
from typing import Any

__all__ = ["fuzz_inputs"]


def _mutate_value(value: Any, rng: random.Random) -> Any:
    """One random type-preserving change of ``value`` (nested values recursively); values of
    other types (None, dicts' keys, ...) come back unchanged."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        return not value
    if isinstance(value, int | float):
        return rng.choice((value + 1, value - 1, value * 2, -value, type(value)(0)))
    if isinstance(value, str):
        n = len(value)
        choices = ["reverse", "empty"] + (["drop", "duplicate"] if n else []) + (["swap"] if n > 1 else [])
        how = rng.choice(choices)
        i = rng.randrange(n) if n else 0
        if how == "drop":
            return value[:i] + value[i + 1 :]
        if how == "duplicate":
            return value[: i + 1] + value[i:]
        if how == "swap":
            i = min(i, n - 2)
            return value[:i] + value[i + 1] + value[i] + value[i + 2 :]
        return value[::-1] if how == "reverse" else ""
    if isinstance(value, list | tuple):
        items = list(value)
        n = len(items)
        choices = ["empty"] + (["drop", "duplicate", "element"] if n else []) + (["shuffle"] if n > 1 else [])
        how = rng.choice(choices)
        i = rng.randrange(n) if n else 0
        if how == "drop":
            del items[i]
        elif how == "duplicate":
            items.insert(i, items[i])
        elif how == "element":
            items[i] = _mutate_value(items[i], rng)
        elif how == "shuffle":
            rng.shuffle(items)
        else:
            items = []
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        return {**value, key: _mutate_value(value[key], rng)}
    return value


def fuzz_inputs(inputs: Sequence[str], seed: str, limit: int) -> list[str]:
    """Up to ``limit`` argument tuples (``repr`` strings): ``inputs`` first, then mutations of them.

    Each new tuple takes one of ``inputs`` and changes one or two of its arguments by a
    type-preserving mutation: numbers +-1, x2, negated or 0; bools flipped; strings with a
    character dropped, duplicated or swapped with the next, reversed or emptied; lists and tuples
    with an element dropped, duplicated or mutated (recursively), shuffled or emptied; dict values
    mutated. Duplicates are dropped (first kept), so a problem with few distinct mutations gets
    fewer tuples. The same arguments give the same list (``seed``, e.g. the task id, seeds the
    choices). A mutation may break the problem's precondition: the caller keeps only the tuples on
    which the reference solution returns.
    """
    if limit <= 0:
        return []
    bases: list[tuple[Any, ...]] = []
    out: dict[str, None] = {}
    for text in inputs:
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        if isinstance(value, tuple):
            bases.append(value)
            out.setdefault(text, None)
    rng = random.Random(f"fuzz:{seed}")
    # Bounded attempts: a problem whose inputs allow few distinct mutations (one bool) stops early.
    for _ in range(limit * 20):
        if len(out) >= limit or not bases:
            break
        args = list(rng.choice(bases))
        if not args:
            continue
        for _ in range(rng.choice((1, 1, 2))):
            i = rng.randrange(len(args))
            args[i] = _mutate_value(args[i], rng)
        text = repr(tuple(args))
        try:
            ast.literal_eval(text)  # inf/nan have no literal: the executor could not read them
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            continue
        out.setdefault(text, None)
    return list(out)[:limit]
