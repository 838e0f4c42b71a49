"""Which of an OpenAI-style answer's choices is the answer: the one whose `index` is 0.

A server that makes several choices (asked for ``n``, or merging answers) may list them in any order, and a
stream's chunk may carry another choice alone: vLLM and OpenAI stream each choice's deltas in chunks of their own.
The first choice listed was read as the answer, so a chunk of choice 1 was added to it. A choice that gives no
index (a server that leaves it out, there being one choice), or one that is no integer (`"0"`, `true`), is taken
for choice 0 when none gives index 0: the daemon asks for one choice, and failing an answer whose text is there
over the number beside it would report an outage the users of that server do not have.
"""

from __future__ import annotations

from typing import Any

import openai

from monitor.providers.shape import shown


def answer_choice(choices: list[Any]) -> tuple[int | None, set[int]]:
    """The position in `choices` of the answer's choice (None when they hold no choice 0), and the other indexes
    seen before it; raise ValueError naming a choice that is not an object.

    A choice is an object of the answer's JSON (a stream's) or a model the SDK made of one (a whole answer's)."""
    others: set[int] = set()
    unindexed: int | None = None  # the first choice that gives no index
    for i, choice in enumerate(choices):
        if isinstance(choice, dict):
            index = choice.get("index")
        elif isinstance(choice, openai.BaseModel):
            index = getattr(choice, "index", None)
        else:
            raise ValueError(f"choices[{i}] {shown(choice)} is not an object")
        if type(index) is not int:  # None, or no integer: a choice that tells no index
            unindexed = i if unindexed is None else unindexed
            continue
        if index == 0:
            return i, others
        others.add(index)
    return unindexed, others
