"""Turn one completion into a sparse feature vector: hand-written cue features plus hashed word n-grams.

The layout is ``[dense cue features | 2**HASH_BITS hashed buckets]``. Dense features carry the language-
independent signal: ``cues.CUES`` groups seen in the opening, the head, anywhere and the tail; structure; the
share of sentences that refuse or lecture and how much substance follows the first decline; pairwise products
of the opening cues; and -- when the prompt is known -- whether the answer's first sentence echoes the prompt
while negating it (premise rejection) and how much of the prompt the rest addresses. Hashed n-grams of the
opening add phrasing (body words are left out: they name the topic, which does not transfer between prompts).
Text beyond ``MAX_CHARS`` is cut to its opening and tail, which carry the refusal signal and bound the cost. CJK characters are single tokens, so their bigrams act as
words. Hashing uses CRC-32, which is stable across processes (Python's ``hash`` is salted).
"""

from __future__ import annotations

import bisect
import math
import re
import unicodedata
import zlib

from monitor.refusal.cues import CODE, CUES, LIST_ITEM, NEGATION
from monitor.refusal.phrases import TOKEN, tokenize

HASH_BITS = 18
OPEN_CHARS = 70  # the very first clause
HEAD_CHARS = 220  # the opening, where a refusal announces itself
TAIL_CHARS = 300
MAX_CHARS = 2000  # longer completions are judged on their opening and their tail (bounds the cost)
HEAD_TOKENS = 48

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'", "`": "'"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_GROUPS = CUES.names
_REFUSING = ("decline", "lecture", "premise", "apology")
_HEAD_CUES = [
    f"head:{g}"
    for g in ("decline", "apology", "lecture", "premise", "noaccess", "fiction", "pivot", "comply")
]
_CONTEXT = ["all:lecture", "all:pivot", "refusal_sent_share", "substantive_share_after_decline", "list_items",
            "prompt_why", "prompt_echo_negated", "prompt_body_echo", "short"]  # fmt: skip
_PAIRS = [(a, b) for i, a in enumerate(_HEAD_CUES) for b in _HEAD_CUES[i + 1 :] + _CONTEXT]
_WHY = frozenset(["why", "为什么", "warum", "pourquoi", "なぜ"])


def normalise(text: str) -> str:
    """Return the text NFKC-folded, lower-cased, with straight quotes and single spaces (newlines kept)."""
    t = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    return _SPACES.sub(" ", t).strip()


def _dense_names() -> list[str]:
    names = []
    for g in _GROUPS:
        names += [f"open:{g}", f"head:{g}", f"all:{g}", f"tail:{g}"]
    names += ["log_len", "short", "list_items", "code", "paragraphs", "empty"]
    names += ["open_decline_no_sympathy", "head_apology_sympathy", "head_decline_then_comply"]
    names += ["head_decline_then_list", "head_decline_then_pivot", "no_refusal_cue_in_head"]
    names += ["log_sents", "refusal_sent_share", "first_decline_rel", "substantive_after_decline"]
    names += ["substantive_share_after_decline", "list_after_decline", "ends_with_question"]
    names += ["prompt_known", "prompt_echo_negated", "prompt_echo_plain", "prompt_why", "why_echo_negated"]
    names += ["prompt_body_echo", "prompt_body_echo_after_decline", "bias"]
    names += [f"x:{a}*{b}" for a, b in _PAIRS]
    return names


DENSE_NAMES: list[str] = _dense_names()
N_DENSE = len(DENSE_NAMES)
N_FEATURES = N_DENSE + (1 << HASH_BITS)
_MASK = (1 << HASH_BITS) - 1
_POS = {name: i for i, name in enumerate(DENSE_NAMES)}
_PAIR_POS = [(_POS[a], _POS[b], _POS[f"x:{a}*{b}"]) for a, b in _PAIRS]


def _bucket(key: str) -> int:
    return N_DENSE + (zlib.crc32(key.encode("utf-8")) & _MASK)


def _content(tokens: list[str]) -> set[str]:
    return {w for w in tokens if len(w) > 3 or (len(w) == 1 and ord(w) > 0x3000)}


def _prompt_features(
    dense: list[float],
    prompt: str,
    first_toks: list[str],
    body_toks: list[str],
    after_decline: list[str] | None,
) -> None:
    p_toks = tokenize(normalise(prompt))
    p_content = _content(p_toks)
    dense[_POS["prompt_known"]] = 1.0
    why = bool(p_toks) and (p_toks[0] in _WHY or p_toks[:2] == ["por", "qué"])
    dense[_POS["prompt_why"]] = float(why)
    if not p_content:
        return
    echo = len(p_content & _content(first_toks)) / len(p_content)
    more_neg = sum(w in NEGATION or w.endswith("n't") for w in first_toks) > sum(
        w in NEGATION or w.endswith("n't") for w in p_toks
    )
    dense[_POS["prompt_echo_negated" if more_neg else "prompt_echo_plain"]] = echo
    if more_neg and why:
        dense[_POS["why_echo_negated"]] = echo
    dense[_POS["prompt_body_echo"]] = len(p_content & _content(body_toks)) / len(p_content)
    if after_decline is not None:
        dense[_POS["prompt_body_echo_after_decline"]] = len(p_content & _content(after_decline)) / len(
            p_content
        )


def _sentence_features(dense: list[float], t: str, cue_pos: dict[str, list[int]], lists: int) -> None:
    ends = [m.end() for m in _SENTENCE_END.finditer(t)] or [len(t)]
    if ends[-1] < len(t):
        ends.append(len(t))
    n = len(ends)
    refusing = {bisect.bisect_right(ends, p) for g in _REFUSING for p in cue_pos[g]}
    dense[_POS["log_sents"]] = math.log1p(n) / 3.0
    dense[_POS["refusal_sent_share"]] = len(refusing) / n
    dense[_POS["ends_with_question"]] = float(t.rstrip().endswith(("?", "？")))
    decl = cue_pos["decline"]
    if not decl or not t:
        return
    first = bisect.bisect_right(ends, decl[0])
    dense[_POS["first_decline_rel"]] = decl[0] / len(t)
    after = [i for i in range(first + 1, n) if i not in refusing]
    dense[_POS["substantive_after_decline"]] = math.log1p(len(after))
    dense[_POS["substantive_share_after_decline"]] = len(after) / max(1, n - first - 1)
    cut = ends[first] if first < n else len(t)
    dense[_POS["list_after_decline"]] = math.log1p(len(LIST_ITEM.findall(t, cut))) if lists else 0.0


def extract(text: str, prompt: str | None = None) -> tuple[list[int], list[float]]:
    """Return (indices, values) of the non-zero features of one completion (and its prompt, if known)."""
    t = normalise(text)
    if len(t) > MAX_CHARS:
        t = t[: MAX_CHARS - TAIL_CHARS] + "\n" + t[-TAIL_CHARS:]
    matches = list(TOKEN.finditer(t))
    toks = [m.group() for m in matches]
    starts = [m.start() for m in matches]
    tail_from = max(0, len(t) - TAIL_CHARS)
    dense = [0.0] * N_DENSE
    found: dict[str, tuple[bool, bool, bool]] = {}
    cue_pos: dict[str, list[int]] = {}
    for gi, hits in enumerate(CUES.find(toks)):
        g = _GROUPS[gi]
        pos = [starts[i] for i in hits]
        o = bool(pos) and pos[0] < OPEN_CHARS
        h = bool(pos) and pos[0] < HEAD_CHARS
        rest = any(p >= HEAD_CHARS for p in pos)
        dense[_POS[f"open:{g}"]] = float(o)
        dense[_POS[f"head:{g}"]] = float(h)
        dense[_POS[f"all:{g}"]] = math.log1p(len(pos))
        dense[_POS[f"tail:{g}"]] = float(bool(pos) and pos[-1] >= tail_from)
        found[g] = (o, h, rest)
        cue_pos[g] = pos
    lists = len(LIST_ITEM.findall(t))
    decl_head = found["decline"][1]
    dense[_POS["log_len"]] = math.log1p(len(t)) / 8.0
    dense[_POS["short"]] = float(len(t) < 160)
    dense[_POS["list_items"]] = math.log1p(lists)
    dense[_POS["code"]] = float(CODE.search(t) is not None)
    dense[_POS["paragraphs"]] = math.log1p(t.count("\n\n"))
    dense[_POS["empty"]] = float(not toks)
    dense[_POS["open_decline_no_sympathy"]] = float(
        (found["decline"][0] or found["apology"][0]) and not found["sympathy"][1]
    )
    dense[_POS["head_apology_sympathy"]] = float(found["apology"][1] and found["sympathy"][1])
    dense[_POS["head_decline_then_comply"]] = float(decl_head and found["comply"][2])
    dense[_POS["head_decline_then_list"]] = float(decl_head and lists >= 2)
    dense[_POS["head_decline_then_pivot"]] = float(decl_head and found["pivot"][2])
    dense[_POS["no_refusal_cue_in_head"]] = float(
        not any(found[g][1] for g in ("decline", "lecture", "premise", "apology"))
    )
    _sentence_features(dense, t, cue_pos, lists)
    dense[_POS["bias"]] = 1.0
    if prompt is not None:
        m = _SENTENCE_END.search(t, 1)
        end = m.start() if m else len(t)
        n_first = bisect.bisect_left(starts, end)
        decl = cue_pos["decline"]
        after = None
        if decl:
            m2 = _SENTENCE_END.search(t, decl[0])
            after = toks[bisect.bisect_left(starts, m2.end() if m2 else len(t)) :]
        _prompt_features(dense, prompt, toks[: min(n_first, 40)], toks[n_first:], after)
    for ia, ib, ix in _PAIR_POS:
        if dense[ia]:
            dense[ix] = dense[ia] * dense[ib]
    idx = [j for j, v in enumerate(dense) if v]
    val = [dense[j] for j in idx]

    head = toks[:HEAD_TOKENS]
    grams = {f"h1:{w}" for w in head} | {f"h2:{a} {b}" for a, b in zip(head, head[1:], strict=False)}
    if head:
        grams |= {f"s1:{head[0]}", f"s2:{' '.join(head[:2])}", f"s3:{' '.join(head[:3])}"}
    buckets = sorted({_bucket(g) for g in grams})
    if buckets:
        scale = 1.0 / math.sqrt(len(buckets))
        idx += buckets
        val += [scale] * len(buckets)
    return idx, val
