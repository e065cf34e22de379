"""The problem generator's stages 1-3 over real NATS, with the model played by this test.

The played sampler answers on `ucoder.rpc.sampler.generate` as the real one does; what it
writes depends on the prompt (which stage asks, which category, which problem), so every
path of one request is taken for real: the category pool, a malformed completion, a
near-duplicate, a low rating, an unreadable rating, a usable and an unusable model skeleton,
steering once one category dominates, and the diversity of what is returned. The real model
on this path is checked by tests/e2e/test_iteration.py.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from nats.aio.msg import Msg

from services.problemgen import core
from services.problemgen.app import ProblemGenConfig, ProblemGenerator
from ucoder_common import subjects
from ucoder_common.bus import Bus
from ucoder_common.errors import InvalidArgument
from ucoder_common.pb import problemgen_pb2, sampler_pb2

# The played model's answers. Each problem completion is keyed by the category the prompt asks for.
PROBLEMS = {
    "graph walks": """ Count Reachable
Description: Given an adjacency list, return how many nodes can be reached from node 0.
Function Signature: def count_reachable(adj: List[List[int]]) -> int:
Example:
Input: [[1], [2], []]
Output: 3
Hint: Keep a set of visited nodes and a stack.
""",
    "bit tricks": """ Count Set Bits
Description: Return how many bits are set in the binary form of a non-negative integer.
Function Signature: def count_bits(n: int) -> int:
Example:
Input: 13
Output: 3
Hint: n & (n - 1) clears the lowest set bit.
""",
    # A near-duplicate of a prompt example (its description with one word changed), under another name.
    "binary numbers": """ Vowel Count
Description: Return how many vowels (a, e, i, o, u, in either case) occur in a text.
Function Signature: def vowel_count(text: str) -> int:
Example:
Input: "abc"
Output: 1
Hint: Use a set.
""",
    # Rated low by the played oracle.
    "vague tasks": """ Do It
Description: Handle the input in the usual way and return it.
Function Signature: def handle_input(data: str) -> str:
Example:
Input: "x"
Output: "x"
Hint: None.
""",
    # The played oracle writes no score for it: kept with the neutral score.
    "word games": """ Is Anagram
Description: Return True when two words use exactly the same letters, ignoring case.
Function Signature: def is_anagram(a: str, b: str) -> bool:
Example:
Input: "Listen", "Silent"
Output: True
Hint: Compare sorted lower-case letters.
""",
    # No signature at all: a parse rejection.
    "poetry": " A Poem\nDescription: Write a poem about loops, with feeling.\nHint: Rhyme.\n",
}

CATEGORY_LISTS = [
    'graph walks",\n    "bit tricks",\n    "binary numbers",\n',
    'vague tasks",\n    "word games",\n    "poetry",\n    "x",\n',
]

# Skeletons the played model writes; for problems not listed it writes prose (unusable).
SKELETONS = {
    "count_bits": '''def count_bits(n: int) -> int:
    """Return the number of set bits of n.

    Args:
        n: a non-negative integer.

    Returns:
        How many bits of n are 1.
    """
''',
    # Wrong name: unusable, the rendered skeleton stays.
    "count_reachable": '''def reachable(adj: List[List[int]]) -> int:
    """Count the nodes reachable from node 0."""
''',
}


class PlayedModel:
    """Answers generation requests by stage, and records what each stage was asked."""

    def __init__(self) -> None:
        self.asked: Counter[str] = Counter()
        self.categories_asked: list[str] = []

    def answer(self, request: sampler_pb2.GenerateRequest) -> list[str]:
        prompt = request.prompt
        if list(request.stop) == core.CATEGORY_STOP:
            self.asked["category"] += 1
            return CATEGORY_LISTS[: request.n]
        if list(request.stop) == core.PROBLEM_STOP:
            self.asked["problem"] += request.n
            category = prompt.rsplit("\nCategory: ", 1)[1].split("\n", 1)[0]
            self.categories_asked.append(category)
            return [PROBLEMS.get(category, PROBLEMS["poetry"])] * request.n
        name = re.findall(r"Function Signature: def (\w+)", prompt)[-1]
        if list(request.stop) == core.RATING_STOP:
            self.asked["rating"] += 1
            score = {"handle_input": " 2", "is_anagram": " excellent"}.get(name, " 8")
            return [f"{score}\nSummary: Fine.\nDifficulty: Easy\nCategory: bit tricks\n"] * request.n
        assert list(request.stop) == core.SKELETON_STOP
        self.asked["skeleton"] += 1
        return [SKELETONS.get(name, "Here is the skeleton you asked for.")]


@pytest.fixture
async def played(bus: Bus) -> AsyncIterator[PlayedModel]:
    model = PlayedModel()

    async def reply(msg: Msg) -> None:
        request = sampler_pb2.GenerateRequest.FromString(msg.data)
        texts = model.answer(request)
        response = sampler_pb2.GenerateResponse(completions=[sampler_pb2.Completion(text=t) for t in texts])
        await msg.respond(response.SerializeToString())

    subscription = await bus.nc.subscribe(subjects.SAMPLER_GENERATE, queue="sampler", cb=reply)
    yield model
    await subscription.unsubscribe()


async def test_one_request_through_every_stage(bus: Bus, played: PlayedModel) -> None:
    # One round asks every category of the pool once.
    cfg = ProblemGenConfig(
        category_samples=2,
        samples_per_round=6,
        categories_per_round=6,
        min_categories=2,
        rating_samples=2,
        sampler_timeout_s=10.0,
    )
    generator = ProblemGenerator(cfg, bus)
    response = await generator.generate(
        problemgen_pb2.GenerateProblemsRequest(iteration_id="it-1", count=3, max_rounds=3)
    )

    # The pool is what the played model proposed ("x" is too short to be a category).
    assert list(response.categories) == [
        "graph walks",
        "bit tricks",
        "binary numbers",
        "vague tasks",
        "word games",
        "poetry",
    ]
    assert response.categories_proposed == 6

    problems = {p.entry_point: p for p in response.problems}
    assert sorted(problems) == ["count_bits", "count_reachable", "is_anagram"]
    # Every completion is accounted for; one round was enough.
    assert response.generated == played.asked["problem"] == 6
    assert sorted(played.categories_asked) == sorted(response.categories)
    assert (response.rejected_parse, response.rejected_compile) == (1, 0)  # poetry: no signature
    assert (response.near_duplicates, response.duplicates) == (1, 0)  # the copied example
    assert response.rejected_quality == 1  # the vague task, rated 2
    assert response.unrated == 1  # the anagram: no score in its reviews
    assert response.steered_rounds == 0

    bits = problems["count_bits"]
    assert (
        bits.skeleton_from_model and "Args:" in bits.docstring and ">>> count_bits(13)\n3" in bits.docstring
    )
    assert bits.quality_score == 8.0 and bits.difficulty == "easy" and bits.rating_summary == "Fine."
    assert (bits.title, bits.category, bits.example_input, bits.example_output) == (
        "Count Set Bits",
        "bit tricks",
        "13",
        "3",
    )
    reachable = problems["count_reachable"]
    assert not reachable.skeleton_from_model  # the model's skeleton named another function
    assert reachable.prompt.startswith(
        "from typing import List\n\n\ndef count_reachable(adj: List[List[int]]) -> int:"
    )
    # The oracle said "bit tricks" for every problem, a pool category: it replaces the generation category.
    assert reachable.category == "bit tricks"
    anagram = problems["is_anagram"]
    assert anagram.quality_score == core.NEUTRAL_SCORE and anagram.category == "word games"
    assert (response.skeletons_from_model, response.skeletons_fallback) == (1, 2)
    # Reviews only for problems that passed parsing and both duplicate checks; skeletons only for those kept.
    assert played.asked["rating"] == 4 and played.asked["skeleton"] == 3

    diversity = response.diversity
    assert diversity.problems == 3 and diversity.pool_size == 6
    assert dict(diversity.category_counts) == {"bit tricks": 2, "word games": 1}
    assert diversity.category_coverage == pytest.approx(2 / 6)
    assert diversity.max_category_share == pytest.approx(2 / 3)
    assert diversity.mean_lexical_entropy > 3.0 and diversity.distinct_1 > 0.5


async def test_steering_after_one_category_dominates(bus: Bus, played: PlayedModel) -> None:
    # Every problem is rated into "bit tricks", so it holds all kept problems after a round:
    # the next rounds are steered to the least represented categories.
    cfg = ProblemGenConfig(
        category_samples=2,
        samples_per_round=6,
        categories_per_round=6,
        min_categories=2,
        rating_samples=1,
        skeletons=False,
        max_category_share=0.5,
        sampler_timeout_s=10.0,
    )
    generator = ProblemGenerator(cfg, bus)
    response = await generator.generate(
        problemgen_pb2.GenerateProblemsRequest(iteration_id="it-2", count=50, max_rounds=2)
    )
    assert response.steered_rounds == 1  # the second round; the first had nothing to judge
    assert played.asked["skeleton"] == 0 and response.skeletons_fallback == 0
    assert sorted(p.entry_point for p in response.problems) == ["count_bits", "count_reachable", "is_anagram"]
    assert response.duplicates == 3  # the same problems again in round two
    assert response.generated == 12 and response.diversity.max_category_share == pytest.approx(2 / 3)


async def test_bad_requests_are_invalid_arguments(bus: Bus) -> None:
    generator = ProblemGenerator(ProblemGenConfig(), bus)
    with pytest.raises(InvalidArgument, match=r"^count:"):
        await generator.generate(problemgen_pb2.GenerateProblemsRequest(iteration_id="it", count=0))
    with pytest.raises(InvalidArgument, match="temperature"):
        await generator.generate(
            problemgen_pb2.GenerateProblemsRequest(iteration_id="it", count=1, temperature=-1)
        )
