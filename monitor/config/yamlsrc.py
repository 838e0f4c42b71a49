"""YAML loading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from monitor.config.links import link_said
from monitor.errors import ConfigError, ConfigIssue
from monitor.keylike import shown_name
from monitor.written_int import WrittenInt

# libyaml's composer when PyYAML was built with it: the pure-Python reader allocates an object per character,
# and a 500-canary probe folder then grows the daemon's heap by ~10 MB that is never given back.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_MERGE = "tag:yaml.org,2002:merge"
# Values an alias may add by repeating what its anchor holds. Nested aliases multiply ("billion laughs"): a few
# hundred bytes would otherwise expand into billions of values and take the daemon's memory with them.
MAX_ALIAS_VALUES = 100_000
# Lists and mappings nested deeper are refused: building them (here, then in pydantic and jsonschema) recurses, and
# a few hundred levels, well within libyaml's own limit, ran out of Python's stack (RecursionError)
MAX_DEPTH = 64


# An int past Python's limit on converting ints to text (4,300 digits by default): hex, octal and binary literals
# convert to one, and then nothing can show it (pydantic's messages printed "Exception ignored" tracebacks)
_MAX_INT_BITS = int(sys.get_int_max_str_digits() * 3.3219) if sys.get_int_max_str_digits() else 1 << 62


class _TooBig(Exception):
    """Aliases expanded past MAX_ALIAS_VALUES: stop building the file."""


@dataclass
class Located:
    """A parsed YAML document plus the line of every path in it (path = tuple of keys and indexes)."""

    path: str
    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    # With load_yaml(keep_going=True): the problems of values it built around, where a value stands in for one it
    # could not build (None, or "" for an unset variable), and mappings that lost a key it could not build
    problems: list[ConfigIssue] = field(default_factory=list)
    stand_ins: set[tuple[Any, ...]] = field(default_factory=set)
    lost_keys: set[tuple[Any, ...]] = field(default_factory=set)
    # Values taken from the environment (${NAME} -> its value): a message shows the reference, never the value
    from_env: dict[str, str] = field(default_factory=dict)
    # The values written with a ${NAME} that names no default (or an empty one): a credential header's value must
    # be one of them (its secret comes from the environment, not the config text)
    referenced: set[tuple[Any, ...]] = field(default_factory=set)
    # The values written with any ${NAME} (a default or not): an alert sink's `url: ${HOOK_URL}` is a secret URL
    interpolated: set[tuple[Any, ...]] = field(default_factory=set)
    # Plain scalars YAML 1.1 reads as booleans (on, off, yes, no, true...), as written: a text field given one says so
    booleans: dict[tuple[Any, ...], str] = field(default_factory=dict)
    # ... and those it reads as numbers (content: 1984, value: 3.10), as written
    numbers: dict[tuple[Any, ...], str] = field(default_factory=dict)
    # The line of each mapping key written: `lines` has its value's, which for a block value is the line below
    key_lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Return the line of the deepest known prefix of `loc`."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def written(self, *loc: Any) -> Any:
        """Return the value at `loc` as written: None where there is none, or where a stand-in holds its place."""
        if any(loc[:len(bad)] == bad for bad in self.stand_ins):
            return None
        return at(self.data, *loc)

    def follows_from_problems(self, loc: tuple[Any, ...], error_type: str) -> bool:
        """Tell whether a validation error at `loc` may come from a value this file's problems left out or replaced
        (it is at or under a stand-in, a missing key of a mapping that lost one, or a check of what encloses them)."""
        for bad in self.stand_ins:
            if loc[:len(bad)] == bad:
                return True
        for bad in self.lost_keys:
            if loc == bad or (loc[:-1] == bad and error_type == "missing"):
                return True
        for bad in self.stand_ins | self.lost_keys:
            if loc and len(loc) < len(bad) and bad[:len(loc)] == loc and error_type != "extra_forbidden":
                return True  # e.g. a schedule's `every`, replaced by "", failing the schedule's own check
        return False

    def as_written(self, issue: ConfigIssue) -> ConfigIssue:
        """Return `issue` with each value the environment gave this file shown as its ${NAME}: a variable may hold a
        secret (a token in a header), and a message shows what the files say, not what they were given. Issues of
        other files too: a probe file's "unknown target" lists the target ids monitor.yaml writes."""
        if not self.from_env:
            return issue
        reason, value = issue.reason, issue.value
        for ref, secret in sorted(self.from_env.items(), key=lambda kv: -len(kv[1])):
            reason = reason.replace(secret, ref)
            value = value.replace(secret, ref) if isinstance(value, str) else value
        return replace(issue, reason=reason, value=value)

    def line_of_field(self, field: str) -> int | None:
        """Return the line of a dotted field name (``models.m.phases[0].voice``), or of its deepest known parent."""
        known = {_dotted(loc): line for loc, line in self.lines.items() if loc}
        while field:
            if field in known:
                return known[field]
            cut = max(field.rfind("."), field.rfind("["))
            field = field[:cut] if cut > 0 else ""
        return None


def at(data: Any, *loc: Any) -> Any:
    """Return the value at `loc` (keys and list indexes) in plain YAML data, or None where there is none."""
    for p in loc:
        if isinstance(data, dict):
            data = data.get(p)
        elif isinstance(data, list) and isinstance(p, int) and 0 <= p < len(data):
            data = data[p]
        else:
            return None
    return data


def load_yaml(path: Path, *, environ: dict[str, str] | None = None, interpolate: bool = True,
              keep_going: bool = False) -> Located:
    """Parse a YAML file, interpolating ${VAR} and ${VAR:-default} in string values (unless `interpolate` is off).

    A file that cannot be read or parsed raises ConfigError. So do values it cannot build (an unset variable, a
    tag, an alias inside its anchor), unless `keep_going`: then they are in `problems`, and the document holds a
    stand-in for each (see `stand_ins` and `lost_keys`), so that the rest of the file can still be checked."""
    env = os.environ if environ is None else environ
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError([ConfigIssue(str(path), "(file)", f"cannot read: {_unreadable(path, e)}")]) from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError([ConfigIssue(str(path), "(file)", f"not UTF-8 text: byte 0x{raw[e.start]:02x} at offset "
                                       f"{e.start} (save the file as UTF-8)",
                                       raw[:e.start].count(b"\n") + 1)]) from None
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(e, "problem", None) or str(e)
        if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
            reason += " (a tab: YAML indents with spaces)"
        if mark is not None and mark.column > 0 and _char_at(text, mark.line, mark.column - 1) == "$" \
                and _char_at(text, mark.line, mark.column) == "{":
            reason += (' (a ${VAR} inside {...} or [...] must be quoted, e.g. "${VAR:-default}": unquoted, YAML '
                       "reads its braces as its own)")
        context = getattr(e, "context_mark", None)
        if context is not None and mark is not None and context.line != mark.line:
            reason += f" (in the block starting at line {context.line + 1})"
        raise ConfigError([ConfigIssue(str(path), "(syntax)", f"invalid YAML: {reason}", line)]) from e
    located = Located(str(path), None)
    issues: list[ConfigIssue] = []
    builder = _Builder(located, env, issues, interpolate=interpolate)
    try:
        located.data = builder.build(node, ()) if node is not None else {}
    except _TooBig:
        raise ConfigError([ConfigIssue(str(path), "(file)", f"its aliases (*name) expand to more than "
                                       f"{MAX_ALIAS_VALUES:,} values; write the values out or use fewer nested "
                                       "aliases", builder.too_big_at)]) from None
    if issues and not keep_going:
        raise ConfigError(issues)
    located.problems = issues
    return located


def _unreadable(path: Path, e: OSError) -> str:
    """Why `path` cannot be read: a symbolic link that leads nowhere says where it leads (monitor.config.links)."""
    return link_said(path, e.errno) or e.strerror or str(e)


class _Builder:
    """Turns composed YAML nodes into Python values, recording lines and interpolating the environment."""

    def __init__(self, out: Located, env: Any, issues: list[ConfigIssue], *, interpolate: bool = True):
        self.out, self.env, self.issues, self.interpolate = out, env, issues, interpolate
        self.scalars = yaml.SafeLoader("")
        self._open: set[int] = set()  # nodes being built: meeting one again is an alias inside its own anchor
        self._built: set[int] = set()
        self._repeats = 0  # values built again through an alias
        self.too_big_at: int | None = None

    def build(self, node: yaml.Node, loc: tuple[Any, ...]) -> Any:
        line = node.start_mark.line + 1
        if id(node) in self._open:
            self.issues.append(ConfigIssue(self.out.path, _dotted(loc), "an alias refers to the anchor it is "
                                           "inside (a value cannot contain itself)", line))
            self.out.stand_ins.add(loc)
            return None
        if id(node) in self._built:
            self._repeats += 1
            if self._repeats > MAX_ALIAS_VALUES:
                self.too_big_at = line
                raise _TooBig
        self._built.add(id(node))
        self.out.lines[loc] = line
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and len(loc) >= MAX_DEPTH:
            self.issues.append(ConfigIssue(self.out.path, _dotted(loc[:6]) + "...", f"nested more than {MAX_DEPTH} "
                                           "levels deep (no setting needs that many)", line))
            self.out.stand_ins.add(loc)
            return None
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.SequenceNode):
                    return [self.build(v, loc + (i,)) for i, v in enumerate(node.value)]
                return self._mapping(node, loc)
            finally:
                self._open.discard(id(node))
        value = self._scalar(node, loc)
        if self.interpolate and isinstance(value, str) and "${" in value:
            self.out.interpolated.add(loc)
            if any(not m.group(2) for m in _ENV.finditer(value)):
                self.out.referenced.add(loc)
            value = _ENV.sub(lambda m: self._lookup(m, loc, line), value)
        return value

    def _mapping(self, node: yaml.MappingNode, loc: tuple[Any, ...]) -> dict[Any, Any]:
        """Build a mapping; `<<: *anchor` (or a list of them) merges mappings in, the keys written here winning."""
        result: dict[Any, Any] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        explicit: list[tuple[yaml.Node, yaml.Node]] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged += self._merged(value_node, loc)
            else:
                explicit.append((key_node, value_node))
        for key_node, value_node in merged:  # later ones win, and keys written here win over all of them
            key = self._key(key_node, loc)
            if key is not _BAD_KEY:
                result[key] = (key_node, value_node)
        written: set[Any] = set()
        for key_node, value_node in explicit:
            key = self._key(key_node, loc)
            if key is _BAD_KEY:
                continue
            if key in written:
                shown = shown_name(key) if isinstance(key, str) else key  # a label name may be a token pasted
                self.issues.append(ConfigIssue(self.out.path, _dotted(loc + (shown,)), "duplicate key",
                                               key_node.start_mark.line + 1))
            written.add(key)
            result[key] = (key_node, value_node)
            self.out.key_lines[loc + (key,)] = key_node.start_mark.line + 1
        return {key: self.build(value_node, loc + (key,)) for key, (_, value_node) in result.items()}

    def _merged(self, value: yaml.Node, loc: tuple[Any, ...]) -> list[tuple[yaml.Node, yaml.Node]]:
        """The key/value pairs a merge key brings in (earlier mappings of a list win, as YAML says)."""
        maps = value.value if isinstance(value, yaml.SequenceNode) else [value]
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        for m in reversed(maps):
            if not isinstance(m, yaml.MappingNode):
                self.issues.append(ConfigIssue(self.out.path, _dotted(loc + ("<<",)), "a merge key (<<) takes a "
                                               "mapping or a list of mappings (e.g. <<: *defaults)",
                                               m.start_mark.line + 1))
                self.out.lost_keys.add(loc)
                continue
            if id(m) in self._open:
                self.issues.append(ConfigIssue(self.out.path, _dotted(loc + ("<<",)), "merges the mapping it is "
                                               "inside (a value cannot contain itself)", m.start_mark.line + 1))
                self.out.lost_keys.add(loc)
                continue
            self._open.add(id(m))
            try:
                for k, v in m.value:
                    pairs += self._merged(v, loc) if k.tag == _MERGE else [(k, v)]
            finally:
                self._open.discard(id(m))
        return pairs

    def _key(self, node: yaml.Node, loc: tuple[Any, ...]) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            self.issues.append(ConfigIssue(self.out.path, _dotted(loc), "a key must be a plain value, not a list "
                                           "or a mapping", node.start_mark.line + 1))
            self.out.lost_keys.add(loc)
            return _BAD_KEY
        try:
            key = self.scalars.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError) as e:
            self.issues.append(ConfigIssue(self.out.path, _dotted(loc), f"invalid key: {_problem(e, node)}",
                                           node.start_mark.line + 1))
            self.out.lost_keys.add(loc)
            return _BAD_KEY
        return key

    def _scalar(self, node: yaml.Node, loc: tuple[Any, ...]) -> Any:
        try:
            value = self.scalars.construct_object(node, deep=True)
            if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:  # 0x... converts past int()'s limit
                raise ValueError("integer string conversion")
            if type(value) in (int, float) and isinstance(node, yaml.ScalarNode) and not node.style:
                self.out.numbers[loc] = node.value
            if type(value) is int and isinstance(node.value, str) and node.value != str(value):
                return WrittenInt.of(value, node.value)  # 010 read as 8: a text field shows what was written
            if type(value) is bool and isinstance(node, yaml.ScalarNode) and not node.style:  # plain, not quoted
                self.out.booleans[loc] = node.value
            return value
        # a tag safe YAML does not know (!!python/..., !custom), a bad !!binary; ValueError: a number longer than
        # int() converts, or a value its tag's constructor refuses (!!float x, !!timestamp 2020-13-45)
        except (yaml.YAMLError, ValueError) as e:
            self.issues.append(ConfigIssue(self.out.path, _dotted(loc), f"invalid value: {_problem(e, node)}",
                                           node.start_mark.line + 1))
            self.out.stand_ins.add(loc)
            return None

    def _lookup(self, m: re.Match[str], loc: tuple[Any, ...], line: int) -> str:
        name, default = m.group(1), m.group(2)
        if name in self.env:
            value = str(self.env[name])
            if len(value) >= 6:  # shorter is no secret, and would be replaced wherever it occurs in a message
                self.out.from_env[f"${{{name}}}"] = value
            return value
        if default is not None:
            return default
        self.issues.append(ConfigIssue(self.out.path, _dotted(loc), f"environment variable {name} is not set",
                                       line, f"${{{name}}}"))
        self.out.stand_ins.add(loc)
        return ""


_BAD_KEY = object()


def _char_at(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    return lines[line][column:column + 1] if 0 <= line < len(lines) else ""


def _problem(e: yaml.YAMLError | ValueError, node: yaml.Node) -> str:
    if isinstance(e, yaml.YAMLError):
        return getattr(e, "problem", None) or str(e)
    kind = str(node.tag).rsplit(":", 1)[-1]
    if "integer string conversion" in str(e):
        return f"an {kind} of more than {sys.get_int_max_str_digits():,} digits"
    return f"{str(node.value)[:40]!r} cannot be read as a {kind}"


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


dotted = _dotted
