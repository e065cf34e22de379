"""Diversity of problem texts (ucoder_common.diversity): lexical entropy, near-duplicates,
distinct-n and the category measures."""

from __future__ import annotations

import math

import pytest

from ucoder_common.diversity import (
    category_counts,
    category_coverage,
    char_shingles,
    distinct_n,
    diversity_report,
    jaccard,
    lexical_entropy,
    lexical_tokens,
    max_category_share,
    mean_lexical_entropy,
    near_duplicates,
    normalise_text,
    shannon_entropy,
)


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


# --- near-duplicates ---------------------------------------------------------------------------

STATEMENT = "Return the sum of the even numbers in a list of integers."


def test_normalised_text_ignores_case_punctuation_and_spacing() -> None:
    assert normalise_text("  Return THE sum,\tof  evens!  ") == "return the sum of evens"
    assert char_shingles("Ab-c", 3) == char_shingles("ab c", 3) == frozenset({"ab ", "b c"})
    assert char_shingles("ab", 5) == frozenset({"ab"})  # shorter than n: one shingle
    assert char_shingles("...", 5) == frozenset()
    with pytest.raises(ValueError):
        char_shingles("abc", 0)


def test_jaccard() -> None:
    assert jaccard({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert jaccard({"a"}, {"a"}) == 1.0
    assert jaccard(set(), set()) == 1.0
    assert jaccard({"a"}, set()) == 0.0


def test_identical_texts_are_near_duplicates() -> None:
    assert near_duplicates([STATEMENT, STATEMENT]) == [None, 0]
    # Identical after normalisation, at the strictest threshold too.
    assert near_duplicates([STATEMENT, STATEMENT.upper().replace(" ", "  ") + "!!"], threshold=1.0) == [
        None,
        0,
    ]


def test_reworded_texts_are_near_duplicates() -> None:
    reworded = "return the sum of ALL the even numbers in a list of integers!"
    assert jaccard(char_shingles(STATEMENT), char_shingles(reworded)) >= 0.7
    assert near_duplicates([STATEMENT, reworded]) == [None, 0]
    # ...but not at a threshold above their similarity.
    assert near_duplicates([STATEMENT, reworded], threshold=0.95) == [None, None]


def test_different_texts_are_not_near_duplicates() -> None:
    texts = [
        STATEMENT,
        "Reverse the order of the words in a sentence.",
        "Count how many vowels occur in a string, ignoring case.",
        "Return the product of the odd numbers in a list of integers.",  # same frame, other task
    ]
    assert near_duplicates(texts) == [None, None, None, None]


def test_near_duplicates_point_at_the_first_kept_text() -> None:
    a = STATEMENT
    b = "Reverse the order of the words in a sentence."
    texts = [a, b, a + " ", b.lower(), "", "", a]
    assert near_duplicates(texts) == [None, None, 0, 1, None, 4, 0]


def test_near_duplicates_rejects_a_bad_threshold() -> None:
    for threshold in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError):
            near_duplicates(["a"], threshold=threshold)


def test_near_duplicates_agree_with_pairwise_jaccard() -> None:
    # The inverted index must find exactly what comparing every pair finds.
    words = ["sum", "even", "odd", "list", "string", "count", "words", "vowels", "sort", "reverse", "digit"]
    texts = [" ".join(words[(i * 7 + j) % len(words)] for j in range(3 + i % 4)) for i in range(40)]
    found = near_duplicates(texts, threshold=0.5)
    kept: list[int] = []
    for i, text in enumerate(texts):
        match = next((j for j in kept if jaccard(char_shingles(texts[j]), char_shingles(text)) >= 0.5), None)
        assert found[i] == match
        if match is None:
            kept.append(i)


# --- distinct-n and categories ------------------------------------------------------------------


def test_distinct_n() -> None:
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["a"], 2) == 0.0  # no bigram at all
    assert distinct_n(["a b c", "d e"], 1) == 1.0
    assert distinct_n(["a b a b"], 1) == 0.5
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)
    # n-grams do not span two texts.
    assert distinct_n(["a b", "b a"], 2) == 1.0
    assert distinct_n(["x y"] * 4, 2) == 0.25
    with pytest.raises(ValueError):
        distinct_n(["a"], 0)


def test_category_measures() -> None:
    categories = ["graphs", "math", "graphs", "", "strings", "graphs"]
    assert category_counts(categories) == {"graphs": 3, "math": 1, "strings": 1}
    assert list(category_counts(["b", "a", "c", "a", "b"])) == ["a", "b", "c"]  # ties by name
    assert category_coverage(categories, ["graphs", "math", "dates", "geometry"]) == 0.5
    assert category_coverage(categories, []) == 0.0
    assert max_category_share(categories) == 0.6  # empty categories are not counted
    assert max_category_share([]) == 0.0


def test_diversity_report() -> None:
    report = diversity_report(
        ["reverse the words", "count the vowels", "sort the list"],
        ["strings", "strings", "lists"],
        ["strings", "lists", "math", "graphs"],
    )
    assert report.problems == 3
    assert report.mean_lexical_entropy == pytest.approx(math.log2(3))
    assert report.distinct_1 == pytest.approx(7 / 9)
    assert report.distinct_2 == 1.0
    assert report.category_coverage == 0.5
    assert report.category_entropy == pytest.approx(shannon_entropy([2, 1]))
    assert report.max_category_share == pytest.approx(2 / 3)
    assert report.pool_size == 4
    assert report.category_counts == {"strings": 2, "lists": 1}
    empty = diversity_report([], [], [])
    assert (empty.problems, empty.mean_lexical_entropy, empty.category_coverage) == (0, 0.0, 0.0)
