"""Pure logic of solution sampling: stop sequences, body truncation, candidate assembly.

Candidates are sampled as continuations of a problem's skeleton (imports, signature,
docstring). The base model happily keeps writing after the function — another def,
a ``print``, test code — so the completion is cut to the indented function body and
glued back onto the skeleton (``ucoder_common.completions.truncate_body``, shared with
evaluation). No I/O and no third-party imports.
"""

from __future__ import annotations

from ucoder_common.completions import truncate_body

__all__ = [
    "CANDIDATE_STOP",
    "SOLVED_EXAMPLES",
    "assemble_candidate",
    "candidate_id",
    "candidate_prompt",
    "truncate_body",
]

#: Two solved skeletons shown before the problem. Given the bare skeleton, a base model
#: often writes a body of comments (`# print(x)`) that returns None. Measured on the
#: default model, 5 generated problems x 6 samples at T=0.2: bodies without a line of
#: code fell from 10 of 30 to 1 of 30 with these examples (at T=0.8: 1 of 30 either way).
SOLVED_EXAMPLES = '''def count_positive(nums: list[int]) -> int:
    """Return how many numbers in nums are greater than zero.

    >>> count_positive([1, -2, 3])
    2
    """
    count = 0
    for n in nums:
        if n > 0:
            count += 1
    return count


def reverse_words(text: str) -> str:
    """Return text with the order of its words reversed.

    >>> reverse_words("a b c")
    'c b a'
    """
    return " ".join(reversed(text.split()))


'''

#: Stop sequences for candidate sampling: any new top-level statement ends the body.
CANDIDATE_STOP: list[str] = ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert "]


def candidate_prompt(problem_prompt: str) -> str:
    """What the sampler completes for a problem: solved examples, then the skeleton.

    Only the skeleton and the body make up the candidate (and the training example).
    """
    skeleton = problem_prompt if problem_prompt.endswith("\n") else problem_prompt + "\n"
    return SOLVED_EXAMPLES + skeleton


def assemble_candidate(problem_prompt: str, completion: str) -> str:
    """Full candidate source: the skeleton followed by the truncated body, ending with a newline.

    An empty body is not patched up (no ``pass`` is added): the candidate then has
    only a docstring, runs, and returns ``None``, which the consensus treats like any
    other behaviour; broken bodies are left for the executor to report.
    """
    skeleton = problem_prompt if problem_prompt.endswith("\n") else problem_prompt + "\n"
    return skeleton + truncate_body(completion)


def candidate_id(problem_id: str, index: int) -> str:
    """Stable id of the ``index``-th candidate of a problem: ``"<problem_id>-c0007"``."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    return f"{problem_id}-c{index:04d}"
