"""Turn one completion into a sparse feature vector: hand-written cue features plus hashed word n-grams.

The layout is ``[dense cue features | 2**HASH_BITS hashed buckets]``. Dense features carry the language-
independent signal (``cues.CUES`` groups seen in the opening, the head, anywhere and the tail, structure, and
-- when the prompt is known -- whether the answer's first sentence echoes the prompt while negating it). Hashed
n-grams of the opening and of the body add phrasing. CJK characters are single tokens, so their bigrams act as
words. Hashing uses CRC-32, which is stable across processes (Python's ``hash`` is salted).
"""

from __future__ import annotations

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
MAX_CHARS = 4000  # longer completions are judged on their first part and their tail
HEAD_TOKENS = 48
BODY_TOKENS = 400

_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u00b4": "'", "`": "'"})
_SPACES = re.compile(r"[ \t\r\f\v\u00a0\u3000]+")
_SENTENCE_END = re.compile(r"[.!?。！？\n]")
_GROUPS = CUES.names


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
    names += ["prompt_known", "prompt_echo_negated", "prompt_echo_plain", "bias"]
    return names


DENSE_NAMES: list[str] = _dense_names()
N_DENSE = len(DENSE_NAMES)
N_FEATURES = N_DENSE + (1 << HASH_BITS)
_MASK = (1 << HASH_BITS) - 1
_POS = {name: i for i, name in enumerate(DENSE_NAMES)}


def _bucket(key: str) -> int:
    return N_DENSE + (zlib.crc32(key.encode("utf-8")) & _MASK)


def _content(tokens: list[str]) -> set[str]:
    return {w for w in tokens if len(w) > 3 or (len(w) == 1 and ord(w) > 0x3000)}


def _prompt_features(dense: list[float], prompt: str, t: str, first_toks: list[str]) -> None:
    p_toks = tokenize(normalise(prompt))
    p_content = _content(p_toks)
    dense[_POS["prompt_known"]] = 1.0
    if not p_content:
        return
    echo = len(p_content & _content(first_toks)) / len(p_content)
    more_neg = sum(w in NEGATION or w.endswith("n't") for w in first_toks) > sum(
        w in NEGATION or w.endswith("n't") for w in p_toks
    )
    dense[_POS["prompt_echo_negated" if more_neg else "prompt_echo_plain"]] = echo


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
    dense[_POS["bias"]] = 1.0
    if prompt is not None:
        m = _SENTENCE_END.search(t, 1)
        end = m.start() if m else len(t)
        _prompt_features(dense, prompt, t, [w for w, s in zip(toks, starts, strict=True) if s < end][:40])
    idx = [j for j, v in enumerate(dense) if v]
    val = [dense[j] for j in idx]

    head = toks[:HEAD_TOKENS]
    grams = {f"h1:{w}" for w in head} | {f"h2:{a} {b}" for a, b in zip(head, head[1:], strict=False)}
    if head:
        grams |= {f"s1:{head[0]}", f"s2:{' '.join(head[:2])}", f"s3:{' '.join(head[:3])}"}
    grams |= {f"b1:{w}" for w in toks[:BODY_TOKENS]}
    buckets = sorted({_bucket(g) for g in grams})
    if buckets:
        scale = 1.0 / math.sqrt(len(buckets))
        idx += buckets
        val += [scale] * len(buckets)
    return idx, val
