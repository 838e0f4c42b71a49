"""The classes of characters llm-monitor's text rules are made of, in one place so the rules cannot drift apart:
what is never written raw (`HIDDEN`, monitor.escapes), what no one-line value may hold (`CONTROL`, `UNSEEN`:
monitor.one_line, the config's names, labels and URLs), what an HTTP header can carry (`NOT_IN_HEADER`: a target's
headers and key).

- control characters: C0, DEL, C1 (U+0080 to U+009F, which a ${VAR} read from a Latin-1 file may hold);
- unseen ones, which hide or reorder text without showing: the bidi embeddings, overrides and isolates (U+202A to
  U+202E, U+2066 to U+2069) and marks (U+200E, U+200F, U+061C); the invisible format characters: soft hyphen,
  U+180E, zero-width space (U+200B), word joiner and invisible operators (U+2060 to U+2064), the deprecated format
  characters (U+206A to U+206F), U+FEFF, the interlinear annotation characters (U+FFF9 to U+FFFB), the tags
  (U+E0001, U+E0020 to U+E007F).

Zero-width joiner and non-joiner (U+200D, U+200C) are neither: emoji sequences and Persian or Indic words are written
with them."""

from __future__ import annotations

import re

_C0_BUT_TAB_NEWLINE, _DEL_C1 = r"\x00-\x08\x0b-\x1f", r"\x7f-\x9f"
_UNSEEN = (r"\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c"  # bidi
           r"\u00ad\u180e\u200b\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f")

CONTROL = re.compile(rf"[{_C0_BUT_TAB_NEWLINE}\t\n{_DEL_C1}]")
UNSEEN = re.compile(rf"[{_UNSEEN}]")
HIDDEN = re.compile(rf"[{_C0_BUT_TAB_NEWLINE}{_DEL_C1}{_UNSEEN}]")  # every control character but tab and newline
NOT_IN_HEADER = re.compile(r"[^\t\x20-\x7e]")  # an HTTP field value: printable ASCII and tab (RFC 9110's, obs-text out)


def first(chars: re.Pattern[str], text: str) -> int | None:
    """The position (from 1) of the first of `chars` in `text`; None when it holds none."""
    found = chars.search(text)
    return None if found is None else found.start() + 1
