"""Cutting a model's continuation of a function skeleton down to the function body.

One rule for sampling candidates (services/sampler) and for evaluating completions
(ucoder_common.evaluation), so a body is cut the same way in training and in evaluation.
"""

from __future__ import annotations


def truncate_body(completion: str) -> str:
    """Keep only the indented function body at the start of ``completion``.

    The body ends at the first non-blank line that starts at column 0 (not indented by a space
    or a tab): ``def``, ``class``, ``if __name__``, ``print(``, ``#`` but also ``assert``,
    ``import`` or any other top-level statement. Blank lines inside the body are kept, trailing
    blank lines are dropped, ``\\r\\n`` becomes ``\\n``. Returns ``""`` when there is no body,
    else the body ending with one newline. (A multi-line string whose continuation lines start at
    column 0 is cut there too; the candidate then fails to compile.)
    """
    kept: list[str] = []
    for line in completion.replace("\r\n", "\n").split("\n"):
        if line.strip() and not line.startswith((" ", "\t")):
            break
        kept.append(line.rstrip("\r"))
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept) + "\n" if kept else ""
