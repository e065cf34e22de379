"""Hand-written, self-made few-shot material for problem probing (no external data).

Twelve good problems in the paper's template, each with the review the quality oracle
prompt shows for it and the skeleton the interface-synthesizer prompt shows; two poor
problems with low scores (shown to the oracle only, as the low end of the scale); and
the built-in categories that open the category prompt and top up a small pool.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["POOR_EXAMPLES", "SEED_CATEGORIES", "TEMPLATE_EXAMPLES", "ExampleProblem"]


@dataclass(frozen=True)
class ExampleProblem:
    """A self-made problem in the template, with its review and skeleton (the few-shot material).

    ``args_doc`` documents each parameter for the skeleton's Args section; ``imports`` are
    the skeleton's import lines for its annotations.
    """

    category: str
    title: str
    description: str
    signature: str
    example_input: str
    example_output: str
    hint: str
    args_doc: tuple[str, ...]
    returns_doc: str
    score: int
    summary: str
    difficulty: str
    imports: str = ""

    @property
    def entry_point(self) -> str:
        return self.signature.removeprefix("def ").split("(", 1)[0]


TEMPLATE_EXAMPLES: tuple[ExampleProblem, ...] = (
    ExampleProblem(
        category="string processing",
        title="Count Vowels",
        description="Return how many vowels (a, e, i, o, u, in either case) occur in a piece of text.",
        signature="def count_vowels(text: str) -> int:",
        example_input='"Hello World"',
        example_output="3",
        hint='Lower-case the text once, then test each character for membership in "aeiou".',
        args_doc=("text: the text to scan.",),
        returns_doc="The number of vowel characters in text.",
        score=8,
        summary="Clear and complete; the example is correct. A short warm-up task.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="list processing",
        title="Running Maximum",
        description="Given a list of integers, return a list whose i-th item is the largest of the first "
        "i + 1 items of the input.",
        signature="def running_max(values: List[int]) -> List[int]:",
        example_input="[3, 1, 4, 1, 5]",
        example_output="[3, 3, 4, 4, 5]",
        hint="Keep the largest value seen so far while walking the list once.",
        args_doc=("values: the numbers to scan, from left to right.",),
        returns_doc="The running maximum, one item per item of values.",
        score=8,
        summary="Precise statement and a correct example; empty input is implied to give an empty list.",
        difficulty="easy",
        imports="from typing import List",
    ),
    ExampleProblem(
        category="number theory",
        title="Digit Sum",
        description="Return the sum of the decimal digits of an integer, ignoring its sign.",
        signature="def digit_sum(n: int) -> int:",
        example_input="-472",
        example_output="13",
        hint="Work on abs(n); n % 10 is the last digit and n // 10 drops it.",
        args_doc=("n: the integer whose digits are added; may be negative.",),
        returns_doc="The sum of the digits of abs(n).",
        score=9,
        summary="Unambiguous, and the example covers the negative case.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="dictionaries and counting",
        title="Word Lengths",
        description="Map each distinct word of a space-separated sentence to its number of characters.",
        signature="def word_lengths(sentence: str) -> dict[str, int]:",
        example_input='"hi there hi"',
        example_output="{'hi': 2, 'there': 5}",
        hint="Split on whitespace and build the dictionary with a comprehension.",
        args_doc=("sentence: words separated by spaces.",),
        returns_doc="A dictionary from each distinct word to its length.",
        score=7,
        summary="Clear; could say whether case matters, but the example shows repeated words.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="sorting and searching",
        title="Second Largest",
        description="Return the second largest distinct value in a list of integers, or None when there are "
        "fewer than two distinct values.",
        signature="def second_largest(nums: List[int]) -> Optional[int]:",
        example_input="[4, 1, 4, 3]",
        example_output="3",
        hint="Remove duplicates with a set before sorting, or track the two largest values in one pass.",
        args_doc=("nums: the values, possibly with repeats.",),
        returns_doc="The second largest distinct value, or None if it does not exist.",
        score=9,
        summary="Well specified, including the edge case of too few distinct values.",
        difficulty="medium",
        imports="from typing import List, Optional",
    ),
    ExampleProblem(
        category="arrays",
        title="Rotate Left",
        description="Rotate a list to the left by k positions and return the new list; k may be larger "
        "than the length of the list.",
        signature="def rotate_left(items: list[int], k: int) -> list[int]:",
        example_input="[1, 2, 3, 4, 5], 2",
        example_output="[3, 4, 5, 1, 2]",
        hint="Reduce k modulo the length first, then join two slices.",
        args_doc=("items: the list to rotate.", "k: how many positions to rotate by; k >= 0."),
        returns_doc="A new list, items rotated left by k.",
        score=8,
        summary="Clear, with the large-k case stated; an empty list is the one case left open.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="string encoding",
        title="Run-Length Encoding",
        description="Compress a string by writing each run of equal characters as the character followed "
        "by the length of the run.",
        signature="def run_length_encode(s: str) -> str:",
        example_input='"aaabcc"',
        example_output="'a3b1c2'",
        hint="Walk the string and count while the character stays the same.",
        args_doc=("s: the text to compress.",),
        returns_doc="The encoded string; the empty string for empty input.",
        score=8,
        summary="Clear rule and a correct example.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="hashing",
        title="Pairs With Sum",
        description="Return all index pairs (i, j) with i < j whose values add up to target, ordered by "
        "i and then by j.",
        signature="def pairs_with_sum(nums: List[int], target: int) -> List[Tuple[int, int]]:",
        example_input="[1, 3, 2, 2], 4",
        example_output="[(0, 1), (2, 3)]",
        hint="Two nested loops are fine for short lists; a dictionary of positions is faster.",
        args_doc=("nums: the values.", "target: the sum a pair must reach."),
        returns_doc="The matching index pairs in increasing order.",
        score=8,
        summary="Precise about the order of the output, which makes it checkable.",
        difficulty="medium",
        imports="from typing import List, Tuple",
    ),
    ExampleProblem(
        category="matrices",
        title="Transpose",
        description="Return the transpose of a rectangular matrix given as a list of rows.",
        signature="def transpose(matrix: list[list[int]]) -> list[list[int]]:",
        example_input="[[1, 2, 3], [4, 5, 6]]",
        example_output="[[1, 4], [2, 5], [3, 6]]",
        hint="Row i of the result holds item i of every input row.",
        args_doc=("matrix: rows of equal length.",),
        returns_doc="The columns of matrix, as rows.",
        score=8,
        summary="Standard task, clearly stated; the example is correct.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="dates and times",
        title="Minutes Between",
        description='Given two times of the same day as "HH:MM" strings, return how many minutes pass from '
        "the first to the second.",
        signature="def minutes_between(start: str, end: str) -> int:",
        example_input='"09:15", "10:45"',
        example_output="90",
        hint="Convert each time to minutes after midnight, then subtract.",
        args_doc=('start: the earlier time, "HH:MM".', 'end: the later time, "HH:MM".'),
        returns_doc="The number of minutes from start to end.",
        score=7,
        summary="Clear format; it does not say what happens when end is before start.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="geometry",
        title="Manhattan Distance",
        description="Return the Manhattan distance between two points on a grid, the sum of the absolute "
        "differences of their coordinates.",
        signature="def manhattan_distance(a: Tuple[int, int], b: Tuple[int, int]) -> int:",
        example_input="(1, 2), (4, -2)",
        example_output="7",
        hint="abs(x1 - x2) + abs(y1 - y2).",
        args_doc=("a: the first point (x, y).", "b: the second point (x, y)."),
        returns_doc="|ax - bx| + |ay - by|.",
        score=8,
        summary="Fully defined by the formula; the example is correct.",
        difficulty="easy",
        imports="from typing import Tuple",
    ),
    ExampleProblem(
        category="simulation",
        title="Robot Moves",
        description="A robot starts at (0, 0) and follows a string of moves U, D, L and R (up, down, left, "
        "right by one step). Return its final position.",
        signature="def final_position(moves: str) -> tuple[int, int]:",
        example_input='"UURDL"',
        example_output="(0, 1)",
        hint="Keep x and y counters and update them for each character.",
        args_doc=("moves: a string of the letters U, D, L and R.",),
        returns_doc="The final (x, y) position.",
        score=9,
        summary="Complete and precise; the example traces a full path.",
        difficulty="easy",
    ),
)

#: Poor problems with low scores: the quality oracle's prompt shows one, so the model has
#: an example of what a low score is for (never used as a generation example).
POOR_EXAMPLES: tuple[ExampleProblem, ...] = (
    ExampleProblem(
        category="list processing",
        title="Process Data",
        description="Process the data and return the result.",
        signature="def process(data: list) -> list:",
        example_input="[1, 2]",
        example_output="[2, 1]",
        hint="Think about it.",
        args_doc=("data: the data.",),
        returns_doc="The result.",
        score=2,
        summary="Vague: it never says what processing is wanted, and the example fits many rules.",
        difficulty="easy",
    ),
    ExampleProblem(
        category="math",
        title="Sum of Squares",
        description="Return the sum of the squares of the numbers in nums.",
        signature="def sum_squares(nums: list[int]) -> int:",
        example_input="[1, 2, 3]",
        example_output="6",
        hint="Add up the numbers.",
        args_doc=("nums: the numbers.",),
        returns_doc="The sum of squares.",
        score=3,
        summary="The example contradicts the description: 1 + 4 + 9 is 14, not 6; the hint is wrong too.",
        difficulty="easy",
    ),
)

#: Built-in categories: three of them open the category prompt, and they top up a pool
#: the model filled with too few categories of its own.
SEED_CATEGORIES: tuple[str, ...] = (
    "string processing",
    "list processing",
    "number theory",
    "dictionaries and counting",
    "sorting and searching",
    "recursion",
    "dynamic programming",
    "geometry",
    "dates and times",
    "simulation",
    "bit manipulation",
    "matrices",
    "parsing text formats",
    "combinatorics",
    "graphs",
    "stacks and queues",
)
