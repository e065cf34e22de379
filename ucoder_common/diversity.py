"""Diversity of generated problems, measured on their text.

Lexical entropy is the Shannon entropy, in bits, of the distribution of a text's word tokens: a
text that repeats a few words scores low, one of n different words scores log2(n). The paper
reports a mean of 3.64 bits (sd 0.69) over its generated problems; here it is computed per problem
description and averaged over an iteration's problems (the orchestrator exports it as a gauge).

Also here: near-duplicate detection (Jaccard similarity of character n-grams of the normalised
text), distinct-n (share of word n-grams that are distinct), and the category measures of an
iteration (coverage of the category pool, entropy of the category distribution, the largest
category's share). All pure functions.
"""

from __future__ import annotations

import collections
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


# --- near-duplicates ------------------------------------------------------------------------------
#
# Two problems are near-duplicates when the Jaccard similarity of their sets of character n-grams
# (over the normalised text) reaches a threshold. Character n-grams rather than word n-grams: problem
# descriptions are one or two sentences, where a reworded phrase or a changed article already removes
# most word trigrams, while character 5-grams still overlap on the unchanged words.

#: Default shingle length in characters.
SHINGLE_CHARS = 5

#: Default Jaccard similarity at or above which two texts are near-duplicates.
NEAR_DUPLICATE_JACCARD = 0.7


def normalise_text(text: str) -> str:
    """The lower-cased word tokens of `text` joined by single spaces (case, punctuation and spacing
    do not make two texts different)."""
    return " ".join(lexical_tokens(text))


def char_shingles(text: str, n: int = SHINGLE_CHARS) -> frozenset[str]:
    """The set of character n-grams of the normalised text; a shorter non-empty text is one shingle."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    norm = normalise_text(text)
    if len(norm) <= n:
        return frozenset({norm}) if norm else frozenset()
    return frozenset(norm[i : i + n] for i in range(len(norm) - n + 1))


def jaccard(a: frozenset[str] | set[str], b: frozenset[str] | set[str]) -> float:
    """Size of the intersection over size of the union; two empty sets are identical (1.0)."""
    if not a and not b:
        return 1.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def near_duplicates(
    texts: Sequence[str], threshold: float = NEAR_DUPLICATE_JACCARD, n: int = SHINGLE_CHARS
) -> list[int | None]:
    """For each text, the index of an earlier *kept* text it near-duplicates, or None when it is kept.

    Greedy in order: the first of a group of near-duplicates is kept and the later ones point at it.
    Exact (every pair that shares a shingle is compared, found through an inverted index), so the
    result does not depend on hashing luck.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    shingles = [char_shingles(text, n) for text in texts]
    index: dict[str, list[int]] = collections.defaultdict(list)  # shingle -> kept texts having it
    empty_kept: int | None = None
    result: list[int | None] = []
    for i, current in enumerate(shingles):
        match: int | None = None
        if not current:
            match = empty_kept  # empty texts are identical to each other
        else:
            shared: collections.Counter[int] = collections.Counter()
            for shingle in current:
                shared.update(index.get(shingle, ()))
            for j, inter in sorted(shared.items()):
                if inter / (len(current) + len(shingles[j]) - inter) >= threshold:
                    match = j
                    break
        result.append(match)
        if match is None:
            if current:
                for shingle in current:
                    index[shingle].append(i)
            else:
                empty_kept = i
    return result


# --- diversity of a set of problems ------------------------------------------------------------------


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct word n-grams over all n-grams of `texts` (within each text), in [0, 1]; 0.0 for none.

    Low values mean the texts reuse the same phrases (mode collapse); 1.0 means no n-gram repeats.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = lexical_tokens(text)
        for i in range(len(tokens) - n + 1):
            seen.add(tuple(tokens[i : i + n]))
            total += 1
    return len(seen) / total if total else 0.0


def category_counts(categories: Iterable[str]) -> dict[str, int]:
    """How many problems each (non-empty) category has, most frequent first, ties by name."""
    counts = collections.Counter(category for category in categories if category)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def category_coverage(categories: Iterable[str], pool: Iterable[str]) -> float:
    """Share of the pool's categories that at least one problem has (0.0 for an empty pool)."""
    pool_set = set(pool)
    if not pool_set:
        return 0.0
    return len(pool_set & set(categories)) / len(pool_set)


def max_category_share(categories: Sequence[str]) -> float:
    """The largest share of the problems one category holds (0.0 for none). The paper: none above 20%."""
    counts = category_counts(categories)
    total = sum(counts.values())
    return max(counts.values()) / total if total else 0.0


@dataclass(frozen=True)
class DiversityReport:
    """Diversity of one iteration's problems (see ProblemDiversity in problemgen.proto)."""

    problems: int
    mean_lexical_entropy: float
    distinct_1: float
    distinct_2: float
    category_coverage: float
    category_entropy: float
    max_category_share: float
    pool_size: int
    category_counts: dict[str, int]


def diversity_report(
    descriptions: Sequence[str], categories: Sequence[str], pool: Sequence[str]
) -> DiversityReport:
    """All diversity measures of a set of problems: their descriptions, their categories, the pool."""
    counts = category_counts(categories)
    return DiversityReport(
        problems=len(descriptions),
        mean_lexical_entropy=mean_lexical_entropy(descriptions),
        distinct_1=distinct_n(descriptions, 1),
        distinct_2=distinct_n(descriptions, 2),
        category_coverage=category_coverage(categories, pool),
        category_entropy=shannon_entropy(counts.values()),
        max_category_share=max_category_share(categories),
        pool_size=len(set(pool)),
        category_counts=counts,
    )
