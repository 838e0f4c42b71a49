"""Telling a secret from a name: a key written where the name of its variable or file belongs.

`api_key_env: sk-live-...` (the key, not its variable's name) is refused when the config loads, and
`api_key_file: ${OPENAI_API_KEY}` or `url_file: ${SLACK_WEBHOOK_URL}` (the variable meant for `*_env`) would print
the secret in the "cannot read" error that names the file: `shown_path` leaves such a name out.
"""

from __future__ import annotations

import re
from pathlib import Path

HIDDEN_NAME = "<a name that looks like a secret, not shown>"  # in place of a name an error or warning leaves out
_KEYLIKE = re.compile(r"^(sk-|sk_|sk-ant-|whsec_|xox[bp]-)|[a-z].*[0-9].*[A-Z]|^[A-Za-z0-9+/_-]{32,}$")


def looks_like_a_key(text: str) -> bool:
    """Tell whether `text` (a variable's or a file's name) looks like an API key rather than a name."""
    return bool(_KEYLIKE.search(text))


def shown_name(name: str) -> str:
    """`name` (a mapping's key: a label name) as an error or warning may show it: left out when it looks like a key."""
    return HIDDEN_NAME if looks_like_a_key(name) else name


def shown_path(path: str) -> str:
    """`path` as an error may show it: its name left out when it looks like a key (or a URL: a secret of its own)."""
    if ":/" in path:  # a URL (made a path, its // folded into one): all of it may be the secret
        return HIDDEN_NAME
    if looks_like_a_key(Path(path).name):
        return f"{Path(path).parent}/{HIDDEN_NAME}"
    return path
