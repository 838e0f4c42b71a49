"""YAML loading that remembers where every value came from, so errors can name the line."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError, ConfigIssue

# libyaml's composer when PyYAML was built with it: the pure-Python reader allocates an object per character,
# and a 500-canary probe folder then grows the daemon's heap by ~10 MB that is never given back.
_COMPOSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class Located:
    """A parsed YAML document plus the line of every path in it (path = tuple of keys and indexes)."""

    path: str
    data: Any
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def line_of(self, loc: tuple[Any, ...]) -> int | None:
        """Return the line of the deepest known prefix of `loc`."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.lines:
                return self.lines[loc[:n]]
        return None

    def line_of_field(self, field: str) -> int | None:
        """Return the line of a dotted field name (``models.m.phases[0].voice``), or of its deepest known parent."""
        known = {_dotted(loc): line for loc, line in self.lines.items() if loc}
        while field:
            if field in known:
                return known[field]
            cut = max(field.rfind("."), field.rfind("["))
            field = field[:cut] if cut > 0 else ""
        return None


def load_yaml(path: Path, *, environ: dict[str, str] | None = None, interpolate: bool = True) -> Located:
    """Parse a YAML file, interpolating ${VAR} and ${VAR:-default} in string values (unless `interpolate` is off)."""
    env = os.environ if environ is None else environ
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([ConfigIssue(str(path), "(file)", f"cannot read: {e.strerror or e}")]) from e
    try:
        node = yaml.compose(text, Loader=_COMPOSER)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(e, "problem", None) or str(e)
        context = getattr(e, "context_mark", None)
        if context is not None and mark is not None and context.line != mark.line:
            reason += f" (in the block starting at line {context.line + 1})"
        raise ConfigError([ConfigIssue(str(path), "(syntax)", f"invalid YAML: {reason}", line)]) from e
    located = Located(str(path), None)
    issues: list[ConfigIssue] = []
    builder = _Builder(located, env, issues, interpolate=interpolate)
    located.data = builder.build(node, ()) if node is not None else {}
    if issues:
        raise ConfigError(issues)
    return located


class _Builder:
    """Turns composed YAML nodes into Python values, recording lines and interpolating the environment."""

    def __init__(self, out: Located, env: Any, issues: list[ConfigIssue], *, interpolate: bool = True):
        self.out, self.env, self.issues, self.interpolate = out, env, issues, interpolate
        self.scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, loc: tuple[Any, ...]) -> Any:
        self.out.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.scalars.construct_object(key_node, deep=True)
                if key in result:
                    self.issues.append(ConfigIssue(self.out.path, _dotted(loc + (key,)), "duplicate key",
                                                   key_node.start_mark.line + 1))
                result[key] = self.build(value_node, loc + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(v, loc + (i,)) for i, v in enumerate(node.value)]
        value = self.scalars.construct_object(node, deep=True)
        if self.interpolate and isinstance(value, str) and "${" in value:
            value = _ENV.sub(lambda m: self._lookup(m, loc, node.start_mark.line + 1), value)
        return value

    def _lookup(self, m: re.Match[str], loc: tuple[Any, ...], line: int) -> str:
        name, default = m.group(1), m.group(2)
        if name in self.env:
            return str(self.env[name])
        if default is not None:
            return default
        self.issues.append(ConfigIssue(self.out.path, _dotted(loc), f"environment variable {name} is not set",
                                       line, f"${{{name}}}"))
        return ""


def _dotted(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        parts.append(f"[{p}]" if isinstance(p, int) else ("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


dotted = _dotted
