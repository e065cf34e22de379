"""Lexical entropy of problem texts (ucoder_common.diversity)."""

from __future__ import annotations

import math

import pytest

from ucoder_common.diversity import lexical_entropy, lexical_tokens, mean_lexical_entropy, shannon_entropy


def test_tokens_are_lower_cased_words_without_punctuation() -> None:
    assert lexical_tokens("Return the SUM of a_list, e.g. sum([1, 2]) == 3.") == [
        "return",
        "the",
        "sum",
        "of",
        "a_list",
        "e",
        "g",
        "sum",
        "1",
        "2",
        "3",
    ]
    assert lexical_tokens("  ... !! ") == []


@pytest.mark.parametrize(
    ("counts", "bits"),
    [
        ([], 0.0),
        ([0, 0], 0.0),
        ([7], 0.0),
        ([1, 1], 1.0),
        ([2, 1, 1], 1.5),
        ([1] * 8, 3.0),
        ([3, 0, 1], 0.75 * math.log2(4 / 3) + 0.25 * 2),
    ],
)
def test_shannon_entropy_in_bits(counts: list[int], bits: float) -> None:
    assert shannon_entropy(counts) == pytest.approx(bits)


def test_one_repeated_word_has_no_entropy_and_distinct_words_have_log2_n() -> None:
    assert lexical_entropy("sort sort SORT, sort.") == 0.0
    assert lexical_entropy("") == 0.0
    assert lexical_entropy("reverse the words of a sentence") == pytest.approx(math.log2(6))
    # Case and punctuation do not make tokens different.
    assert lexical_entropy("Sum, sum; the SUM") == lexical_entropy("sum sum the sum")


def test_repetition_lowers_entropy() -> None:
    varied = "Return the largest prime factor of a positive integer n."
    repetitive = "Return the the the the list list list of the list."
    assert lexical_entropy(repetitive) < lexical_entropy(varied)


def test_mean_over_texts() -> None:
    assert mean_lexical_entropy([]) == 0.0
    assert mean_lexical_entropy(["a b", "c c", "a b c d"]) == pytest.approx((1.0 + 0.0 + 2.0) / 3)
