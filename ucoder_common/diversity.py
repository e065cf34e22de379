"""Diversity of generated problems, measured on their text.

Lexical entropy is the Shannon entropy, in bits, of the distribution of a text's word tokens: a
text that repeats a few words scores low, one of n different words scores log2(n). The paper
reports a mean of 3.64 bits (sd 0.69) over its generated problems; here it is computed per problem
description and averaged over an iteration's problems (the orchestrator exports it as a gauge).
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Sequence

# Runs of letters, digits and underscores: words, identifiers and numbers; punctuation is not a token.
_WORD = re.compile(r"\w+")


def lexical_tokens(text: str) -> list[str]:
    """The lower-cased word tokens of `text`, in order."""
    return _WORD.findall(text.lower())


def shannon_entropy(counts: Iterable[int]) -> float:
    """Entropy in bits of the distribution given by `counts` (0.0 when empty or of one kind)."""
    values = [count for count in counts if count > 0]
    total = sum(values)
    # p * log2(1/p) rather than -p * log2(p): one kind gives 0.0, not -0.0.
    return sum(count / total * math.log2(total / count) for count in values)


def lexical_entropy(text: str) -> float:
    """Shannon entropy in bits of the word-token distribution of `text` (0.0 for no tokens)."""
    return shannon_entropy(collections.Counter(lexical_tokens(text)).values())


def mean_lexical_entropy(texts: Sequence[str]) -> float:
    """The mean lexical entropy of `texts` (0.0 for none)."""
    if not texts:
        return 0.0
    return sum(lexical_entropy(text) for text in texts) / len(texts)
