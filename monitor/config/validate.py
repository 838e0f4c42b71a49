"""Validate a parsed config file against its model, turning each pydantic error into a ConfigIssue that names
the file, line, field and value as written (secrets never echoed)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from monitor.config.nearest_key import nearest_key
from monitor.config.yamlsrc import Located, at, dotted
from monitor.errors import ConfigIssue
from monitor.keyed_error import KEYED
from monitor.keylike import shown_name
from monitor.literal_secrets import LITERAL_SECRET
from monitor.not_bool import NOT_BOOL

M = TypeVar("M", bound=BaseModel)
# "token" but not "tokens": max_tokens, min_tokens are counts, and a string refused there (max_tokens: lots) is shown
_SECRETISH = re.compile(r"key|secret|token(?!s)|password", re.I)
_URL_PASSWORD = re.compile(r"(://[^/@:\s]*:)[^/@\s]+@")
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.I)
_QUERY_VALUE = re.compile(r"([?&][^=&#\s]*=)[^&#\s]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_LABELISH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a mapping key shown when refused (a Prometheus label name)
# pydantic's tag of a plain union's member in an error's loc (value: str | list[str] -> 'str', 'list[str]')
_MEMBER = re.compile(r"(?:str|int|float|bool|(?:list|dict|tuple|set)\[.+\])")
_MEMBER_SAID = {"str": "a string", "list[str]": "a list of strings", "int": "a whole number", "float": "a number",
                "bool": "true or false"}
_UNION_MISMATCH = "union_mismatch"  # every member of a plain union refused the value's type: one issue, not one each
_TYPE_SAID = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean", int: "a number", type(None): "null",
              float: "a number"}


def validate(model: type[M], src: Located, issues: list[ConfigIssue],
              context: dict[str, Any] | None = None) -> M | None:
    """Validate a parsed file, adding an issue per error (none for errors its YAML problems explain)."""
    try:
        return model.model_validate(src.data if src.data is not None else {}, context=context)
    except ValidationError as e:
        for err in _plain_unions(e.errors()):
            loc = _strip_union_tags(tuple(err["loc"]))
            if err["type"] == LITERAL_SECRET:  # the model's error, about one of its keys: name that key
                loc += (err.get("ctx", {}).get("key", ""),)
            elif err["type"] == KEYED:  # a cross-field check's error about one key: name it, with its value
                loc += tuple(str(err.get("ctx", {}).get("key", "")).split("."))
            where = loc = _in_document(src.data, loc)  # shown as the YAML's own path, not pydantic's
            if src.follows_from_problems(where, err["type"]):
                continue  # e.g. "" given for an unset ${VAR}: the variable is the problem, already reported
            reason = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                near = nearest_key(model, tuple(err["loc"]))  # a typo's key named: tag -> tags
                reason = "unknown key" + (f"; did you mean {near}?" if near else "")
                if len(loc) == 1 and hasattr(model, "UNECHOED") and not _NAME.fullmatch(str(loc[0])):
                    # a file named as this one may be any readable file: a line of a password file ending in
                    # ':' parses as a key, and is not shown
                    loc, reason = (), f"unknown key, not a name (not shown); expected {_keys(model)}"
            elif not loc and err["type"] in ("model_type", "dict_type"):  # a list or a scalar as the whole file
                reason = f"expected a mapping at the top level (keys {_keys(model)}), got a " \
                         f"{type(err.get('input')).__name__}"
            value = err.get("input") if err["type"] not in ("missing", LITERAL_SECRET) else None
            if err["type"] == NOT_BOOL and where in src.booleans:
                value = src.booleans[where]  # the word written (yes, on), not the boolean YAML made of it
            if err["type"] == "string_type" and type(value) is bool and where in src.booleans:
                value = src.booleans[where]  # `id: on`: YAML 1.1 read the text as a boolean
                reason = f"{reason}: YAML reads {value} as the boolean {str(err['input']).lower()}; quote it ('{value}')"
            if err["type"] == KEYED:  # as written, else the default the check read
                written = at(src.data, *where)
                value = written if written is not None else err.get("ctx", {}).get("value")
            if err["type"] == _UNION_MISMATCH and loc and not _SECRETISH.search(str(loc[-1])) \
                    and not str(loc[-1]).endswith("_env"):
                pass  # a mapping written for a string or a list of strings (contains value): shown, cut short
            elif isinstance(value, dict | list) or not loc:  # the whole file is never quoted: a web config file
                # option may name any readable file (a key, a password file), whose first line this would show
                if loc and err["type"].endswith(("_type", "_parsing")):  # what was written instead, by its kind
                    reason = f"{reason}, got a {'list' if isinstance(value, list) else 'mapping'}"
                value = None
            elif loc and loc[0] in getattr(model, "UNECHOED", ()):
                value = value if loc[-1] == "[key]" else "<redacted>"  # a user name is no secret; its hash may be
            elif loc[-1] == "[key]":  # a mapping's key refused (alerts.external_labels): the reason names it,
                value = None  # unless it is no name: then nowhere, as it may be a secret written in its place
                if len(loc) > 1 and not _LABELISH.fullmatch(str(loc[-2])):
                    loc = (*loc[:-2], "[key]")
            elif isinstance(value, str) and loc and (_SECRETISH.search(str(loc[-1])) or str(loc[-1]).endswith("_env")):
                # never echo something that may be a secret (a number, e.g. max_token: 5, is not); a *_env value
                # refused is most often the secret itself (a Slack URL given to url_env)
                value = "<redacted>"
            elif isinstance(value, str):
                value = redact_url(value)
                if loc[-1] == "base_url":  # a query refused there may hold a key (an Azure-style ?api-key=)
                    value = _QUERY_VALUE.sub(r"\1<redacted>", value)
            if err["type"] == "string_type" and where in src.numbers and value == err.get("input"):
                # as written: a ${VAR} is interpolated into a text, never read as a number, so no secret is here
                value = src.numbers[where]  # `content: 1984`: YAML read the text as a number
                reason = f"{reason}: YAML reads {value} as a number; quote it ('{value}')"
            line = src.key_lines.get(where) if err["type"] == "extra_forbidden" else None  # the key, not its value
            issues.append(ConfigIssue(src.path, dotted(_shown(loc)), reason, line or src.line_of(where), value))
        return None


def _plain_unions(errors: list[Any]) -> list[Any]:
    """pydantic's errors with a plain union's (value: str | list[str]) told as the document has them: the errors of
    the member the value's type chose (a list's item value[1]), without the other members' "should be a valid
    string" at the option; a value no member takes (a mapping) is one error at the option naming what it takes,
    where each member's was its own, under a path of its tag (value.str, value.list[str])."""
    sites: dict[tuple[Any, ...], list[tuple[int, Any]]] = {}
    out: list[Any] = []  # in pydantic's order: a union's errors where its first one was
    for err in errors:
        loc = tuple(err["loc"])
        i = next((i for i, p in enumerate(loc) if isinstance(p, str) and _MEMBER.fullmatch(p)
                  and (i < len(loc) - 1 or err["type"] not in ("missing", "extra_forbidden"))), None)
        if i is None:
            out.append(err)
        else:
            if loc[:i] not in sites:
                out.append(loc[:i])
            sites.setdefault(loc[:i], []).append((len(loc) - i - 1, err))
    return [e for item in out for e in (_told(item, sites[item]) if isinstance(item, tuple) else [item])]


def _told(site: tuple[Any, ...], members: list[tuple[int, Any]]) -> list[Any]:
    """The errors of one plain union at `site` (loc up to its member tag), each with its depth past the tag."""
    deeper = [err for depth, err in members if depth]
    if deeper or len(members) == 1:
        return deeper or [members[0][1]]
    tags = [str(err["loc"][len(site)]) for _, err in members]
    value = members[0][1].get("input")
    said = " or ".join(_MEMBER_SAID.get(t, t) for t in tags)
    got = _TYPE_SAID.get(type(value), type(value).__name__)
    return [{"type": _UNION_MISMATCH, "loc": site, "msg": f"expected {said}, got {got}", "input": value}]


def _shown(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error's path as shown: a label name that looks like a secret (a token of letters, digits and '_' pasted in
    its place is a name) left out."""
    return tuple(shown_name(p) if i and loc[i - 1] == "external_labels" and isinstance(p, str) else p
                 for i, p in enumerate(loc))


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(f"{k}:" for k in model.model_fields if k != "source")


def validate_each(model: type[M], items: Any) -> list[M | None]:
    """Validate each item of a list on its own (None for those that fail): the parts of a failed file that hold."""
    out: list[M | None] = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(model.model_validate(item))
        except ValidationError:
            out.append(None)
    return out


def _in_document(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Return an error's path in the document: its loc without the tags of tagged unions (the sink or check `type`
    pydantic chose, e.g. alerts.sinks[0].slack.url_env -> alerts.sinks[0].url_env)."""
    out: list[Any] = []
    entered = True  # no part of the path read at `data` yet
    for part in loc:
        if entered and isinstance(data, dict) and data.get("type") == part:
            # the tag pydantic puts first in the path of a tagged union's member, before any key of it: a key named
            # as the type (json_schema's schema written json_schema:, an unknown slack: in a Slack sink, whatever
            # it holds) comes after it
            entered = False
            continue
        if isinstance(part, str) and part != "[key]" and data is not None and not isinstance(data, dict):
            continue  # a member's tag of a plain union (value: str | list[str] -> 'str', 'list[str]'): no key
        out.append(part)
        data = at(data, part)
        entered = True
    return tuple(out)


def redact_url(text: str) -> str:
    """Replace the password of a URL (user:PASSWORD@ or ?password=) with <redacted>."""
    text = _URL_PASSWORD.sub(r"\1<redacted>@", text)
    return _QUERY_PASSWORD.sub(r"\1<redacted>", text)


def _strip_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's validator tags ('function-after[...]') from an error path; `_in_document` drops the union
    tags ('contains'), which only the document tells from keys."""
    known = {"function-after", "function-before", "function-wrap"}
    return tuple(p for p in loc if not (isinstance(p, str) and any(p.startswith(k) for k in known)))
