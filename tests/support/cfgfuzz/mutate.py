"""Mutations of a config folder (`make_case`): of the parsed documents (keys removed, nulled, renamed or added,
values of the wrong type or range, odd text, durations, crons, regexes and schemas that do not hold, ids made
duplicate or unknown) and of their text (YAML broken by tabs, quotes, aliases, tags or nesting; bytes that are not
UTF-8; empty files; duplicate keys; numbers too long to convert)."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from typing import Any

import yaml

from tests.support.cfgfuzz import seeds
from tests.support.cfgfuzz.case import BIG, CRONS, DURATIONS, MONITOR, ODD_VALUES, REGEXES, SCHEMAS, WEB, Case

_DURATION_KEYS = {"every", "jitter", "cooldown", "group_wait", "resend_interval", "initial", "max", "give_up_after",
                  "max_retry_after", "timeout", "grace_period", "max_start_delay"}
_REF_KEYS = {"judge_target", "target", "targets", "sinks", "canary"}
Path_ = tuple[Any, ...]


def dump(data: Any) -> str:
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)


def _paths(data: Any, here: Path_ = ()) -> list[Path_]:
    out: list[Path_] = []
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for k, v in items:
        out.append(here + (k,))
        out += _paths(v, here + (k,))
    return out


def _parent(data: Any, path: Path_) -> Any:
    for p in path[:-1]:
        data = data[p]
    return data


def _field(path: Path_) -> str:
    return next((str(p) for p in reversed(path) if isinstance(p, str)), "")


def _contextual(rng: random.Random, data: Any, path: Path_) -> tuple[Any, str] | None:
    """A value that fails in the way this field can fail, or None when the field has no such value."""
    name = _field(path)
    if name in _DURATION_KEYS:
        return rng.choice(DURATIONS), "duration"
    if name == "cron":
        return rng.choice(CRONS), "cron"
    if name == "pattern" or name == "patterns":
        return rng.choice(REGEXES), "regex"
    if name == "schema":
        return copy.deepcopy(rng.choice(SCHEMAS)), "schema"
    if name in _REF_KEYS:
        return rng.choice(["nope", ["nope"], ["gpt", "nope"], "gpt "]), "unknown reference"
    if name == "id" and isinstance(data, dict) and "canaries" in data:
        ids = [c.get("id") for c in data["canaries"] if isinstance(c, dict)]
        return (rng.choice(ids) if ids else "x"), "duplicate id"
    if name.endswith("_env"):
        return rng.choice([seeds.ENV["FUZZ_OPENAI_KEY"], "lower case", "9NAME", "FUZZ_UNSET_NAME"]), "env name"
    if name.endswith("_file"):
        return rng.choice(["/nonexistent/x", "", ".", "keys", "../" * 40, "a\x00b", "x" * 300]), "file"
    return None


def mutate_data(rng: random.Random, data: Any) -> tuple[Any, str]:
    """Apply one mutation to a parsed document; return it and what was done."""
    data = copy.deepcopy(data)
    paths = _paths(data)
    if not paths or rng.random() < 0.03:
        new = rng.choice([[], "text", 5, None, [data]])
        return new, f"whole file -> {new!r:.40}"
    path = rng.choice(paths)
    parent, key = _parent(data, path), path[-1]
    op = rng.choice(["remove", "null", "odd", "odd", "context", "context", "context", "unknown", "wrap", "numstr",
                     "dup", "big", "rename"])
    where = ".".join(map(str, path))
    if op == "context":
        found = _contextual(rng, data, path)
        if found is not None:
            parent[key] = found[0]
            return data, f"{where} -> {found[1]} {found[0]!r:.40}"
        op = "odd"
    if op == "remove":
        del parent[key]
        return data, f"removed {where}"
    if op == "null":
        parent[key] = None
        return data, f"{where} -> null"
    if op == "unknown" and isinstance(parent, dict):
        parent[rng.choice(["fuzz_unknown", str(key) + "s", str(key).upper(), "api_key", "url", "routing_key", 7,
                           True, None])] = rng.choice(ODD_VALUES)
        return data, f"unknown key beside {where}"
    if op == "rename" and isinstance(parent, dict) and isinstance(key, str):
        parent[key[:-1] or "x"] = parent.pop(key)
        return data, f"renamed {where}"
    if op == "wrap":
        parent[key] = rng.choice([[parent[key]], {"value": parent[key]}])
        return data, f"{where} wrapped"
    if op == "numstr" and isinstance(parent[key], int | float) and not isinstance(parent[key], bool):
        parent[key] = rng.choice([str(parent[key]), -parent[key], parent[key] * 10**12, str(parent[key]) + "%"])
        return data, f"{where} -> {parent[key]!r}"
    if op == "dup" and isinstance(parent, list):
        parent.insert(key, copy.deepcopy(parent[key]))
        return data, f"duplicated {where}"
    if op == "big":
        parent[key] = rng.choice(["x", "é", "\u202e", "😀"]) * BIG
        return data, f"{where} -> 1M characters"
    value = rng.choice(ODD_VALUES)
    parent[key] = copy.deepcopy(value)
    return data, f"{where} -> {value!r:.40}"


def _lines(rng: random.Random, text: str, f: Callable[[list[str], int], None]) -> str:
    lines = text.split("\n")
    f(lines, rng.randrange(len(lines)))
    return "\n".join(lines)


def _value_line(rng: random.Random, text: str, value: str) -> str:
    """Replace the value of a random `key: value` line with `value` (text as YAML reads it)."""
    lines = text.split("\n")
    keyed = [i for i, ln in enumerate(lines) if ": " in ln and not ln.lstrip().startswith("#")]
    if not keyed:
        return text + "\nx: " + value
    i = rng.choice(keyed)
    lines[i] = lines[i].split(": ", 1)[0] + ": " + value
    return "\n".join(lines)


def _deep(n: int, kind: str) -> str:
    if kind == "flow":
        return "[" * n + "]" * n
    return "\n" + "\n".join("  " * (i + 1) + f"k{i}:" for i in range(n)) + " 1"


# nested aliases expanding to 10**8 values ("billion laughs"), ahead of the file's own text
_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True))


def _tab(lines: list[str], i: int) -> None:
    lines[i] = "\t" + lines[i].lstrip(" ")


def _quote(lines: list[str], i: int) -> None:
    lines[i] = lines[i] + ' "unclosed'


def _dup_key(lines: list[str], i: int) -> None:
    keyed = [j for j, ln in enumerate(lines) if ": " in ln and not ln.lstrip().startswith(("#", "-"))]
    if keyed:
        j = keyed[i % len(keyed)]
        lines.insert(j + 1, lines[j])


TEXT: dict[str, Callable[[random.Random, str], str | bytes]] = {
    "empty": lambda r, t: "",
    "blank": lambda r, t: r.choice(["\n\n", "# only a comment\n", "---\n", "~\n", "...\n", " "]),
    "tab": lambda r, t: _lines(r, t, _tab),
    "quote": lambda r, t: _lines(r, t, _quote),
    "dup key": lambda r, t: _lines(r, t, _dup_key),
    "truncated": lambda r, t: t[: r.randrange(len(t) + 1)],
    "alias unknown": lambda r, t: _value_line(r, t, "*nope"),
    "alias self": lambda r, t: _value_line(r, t, "&a [1, *a]"),
    "anchor merge": lambda r, t: _value_line(r, t, r.choice(["{<<: 5}", "{<<: [1, 2]}", "{<<: *nope}", "&m {<<: *m}"])),
    "laughs": lambda r, t: _LAUGHS + t,
    "deep": lambda r, t: _value_line(r, t, _deep(r.choice([100, 300, 600, 900, 5000]), "flow")),
    "deep block": lambda r, t: _value_line(r, t, _deep(r.choice([200, 600, 1200]), "block")),
    "tag": lambda r, t: _value_line(r, t, r.choice(["!!python/object/apply:os.system ['true']", "!custom 3",
                                                    "!!binary '%%%'", "!!int abc", "!!float x", "!!timestamp 2020-13-45",
                                                    "!!set {a, b}", "!!omap [a, b]", "2020-01-01", "!!str", "!!null 5",
                                                    "!!map [1]"])),
    "huge int": lambda r, t: _value_line(r, t, r.choice(["1" * 5000, "0x" + "f" * 5000, "-" + "9" * 4400, "1" * 4301,
                                                         "1" * 5000 + ".5", "1e99999", "0o" + "7" * 6000,
                                                         "1_" * 3000 + "1", "1:" * 2000 + "1"])),
    "huge key": lambda r, t: r.choice(["1" * 5000, "0b" + "1" * 20000]) + ": 1\n" + t,
    "complex key": lambda r, t: _value_line(r, t, r.choice(["{[a, b]: 1}", "{? {a: 1} : 2}", "{null: 1}", "{1: 2}"])),
    "multi doc": lambda r, t: t + "\n---\nx: 1\n",
    "newlines": lambda r, t: t.replace("\n", r.choice(["\r\n", "\r", "\u2028", "\x85"])),
    "bom": lambda r, t: "\ufeff" + t,
    "nul": lambda r, t: _lines(r, t, lambda ls, i: ls.__setitem__(i, ls[i] + "\x00")),
    "control": lambda r, t: _lines(r, t, lambda ls, i: ls.__setitem__(i, ls[i] + r.choice(["\x07", "\x1b", "\ud800", "\ufffe"]))),
    "long line": lambda r, t: t + "\n# " + "y" * BIG + "\n",
    "unset var": lambda r, t: _value_line(r, t, r.choice(['"${FUZZ_UNSET}"', "${FUZZ_UNSET}", '"${FUZZ_UNSET:-}"',
                                                         '"${9BAD}"', '"${FUZZ_OPENAI_KEY"', "{a: ${X}}",
                                                         '"${FUZZ_ORG_TOKEN}x${FUZZ_UNSET}"'])),
}
BYTES: dict[str, Callable[[random.Random, bytes], bytes]] = {
    "not utf-8": lambda r, b: b[: (i := r.randrange(len(b) + 1))] + r.choice([b"\xff", b"\xc3\x28", b"\xe9", b"\x80"])
    + b[i:],
    "utf-16": lambda r, b: b.decode("utf-8", "replace").encode("utf-16"),
    "latin-1": lambda r, b: b.decode("utf-8", "replace").encode("latin-1", "replace") + "é".encode("latin-1"),
}


def make_case(rng: random.Random, n: int, base: dict[str, str]) -> Case:
    """Case `n`: monitor.yaml, the web config file, the fuzz probe file and two library files, one of them mutated."""
    library = sorted(k for k in base if k.startswith("probes/") and k != "probes/fuzz.yaml")
    names = [MONITOR, WEB, "probes/fuzz.yaml", *rng.sample(library, 2)]
    target = rng.choices(names, weights=[5, 2, 2, 1, 1])[0]
    files = {k: base[k].encode() for k in names}
    case = Case(f"case{n}", files, target, web_flag=rng.random() < 0.1)
    text: str | bytes = base[target]
    if rng.random() < 0.65:
        data = yaml.safe_load(base[target])
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            data, what = mutate_data(rng, data)
            case.mutations.append(what)
        text = dump(data)
    if not case.mutations or rng.random() < 0.15:
        kind = rng.choice([*TEXT, *BYTES])
        if kind in TEXT:
            text = TEXT[kind](rng, text)
        else:
            text = BYTES[kind](rng, text.encode("utf-8", "surrogatepass"))
        case.mutations.append(kind)
    case.files[target] = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return case


def base_files() -> dict[str, str]:
    """The valid files cases start from (relative path -> text)."""
    files = {MONITOR: dump(seeds.MONITOR), WEB: dump(seeds.WEB), "probes/fuzz.yaml": dump(seeds.FUZZ_PROBES)}
    for p in seeds.LIBRARY:
        files[f"probes/{p.name}"] = p.read_text()
    return files
