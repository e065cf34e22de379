"""Checks of request fields that every service shares: ids, and how a bad value is quoted.

An error names its field and quotes at most a short prefix of the bad value: a value echoed whole
into a gRPC status message above ~8 KB reaches the caller as RESOURCE_EXHAUSTED (the metadata
limit) instead of the INVALID_ARGUMENT it should see.
"""

from __future__ import annotations

import string

from ucoder_common.errors import InvalidArgument

# Ids are NATS subject tokens and KV keys (``pr.<iteration>.<problem>``), so ASCII only: the KV
# client refuses other characters (``InvalidKeyError``), and '.', '*', '>' would split or widen
# a subject.
ID_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_")
MAX_ID_LENGTH = 128
# The most candidates one problem may have in an iteration (IterationSpec.samples_per_problem);
# the clusterer bounds its tau and budget by it too.
MAX_SAMPLES_PER_PROBLEM = 1_024
# The most tokens one completion may ask for (the sampler's limit; every max_tokens is bounded by it).
MAX_COMPLETION_TOKENS = 4_096
# How much of a bad value an error message quotes.
SHOWN_CHARACTERS = 40


def shown(value: object, limit: int = SHOWN_CHARACTERS) -> str:
    """``repr(value)``, cut to ``limit`` characters of the value with its full length said."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return repr(text) if isinstance(value, str) else text
    prefix = text[:limit]
    return f"{prefix!r}... ({len(text)} characters)"


def id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id (None when it is): the one rule of every id field."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_ID_LENGTH or not set(value) <= ID_CHARACTERS:
        return f"must be at most {MAX_ID_LENGTH} ASCII letters, digits, '-' or '_', got {shown(value)}"
    return None


def check_id(field: str, value: str, *, optional: bool = False) -> str:
    """``value`` when it is a valid id (or empty and ``optional``); else InvalidArgument naming ``field``."""
    if optional and not value:
        return value
    problem = id_problem(value)
    if problem is not None:
        raise InvalidArgument(f"{field}: {problem}")
    return value
