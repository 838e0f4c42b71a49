"""The README's configuration reference table names every monitor.yaml field, only real ones, with their defaults.

Users configure the daemon from that table alone. A row may cover a nested model as a whole (`targets[].params`,
`alerts.retry`, `alerts.sinks[]`): then each of its fields must be named in the row. Defaults written as code
(backticked) must equal the model's; words ("none", "off", "shipped table") are not compared.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from monitor.config.models import MonitorFile
from monitor.durations import parse_duration

README = Path(__file__).resolve().parent.parent / "README.md"


def _models(annotation: Any) -> Iterator[tuple[type[BaseModel], bool]]:
    """The pydantic models a field's annotation holds, each with whether it sits in a list."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, False
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _models(typing.get_args(annotation)[0])
    elif origin is list:
        for arg in typing.get_args(annotation):
            yield from ((model, True) for model, _ in _models(arg))
    elif origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            yield from _models(arg)


def fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every field path of the config (`targets[].params.seed`) with its default (Ellipsis when required)."""
    for name, info in model.model_fields.items():
        if info.exclude:
            continue
        path = prefix + (info.alias or name)
        yield path, (... if info.is_required() else info.default)
        for sub, in_list in _models(info.annotation):
            yield from fields(sub, path + ("[]." if in_list else "."))


def rows() -> dict[str, tuple[str, str]]:
    """README table rows: key -> (default cell, whole row). `a.b` / `c` shorthand expands to `a.c`."""
    section = README.read_text(encoding="utf-8").split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    out: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        key_cell, default_cell = (c.strip() for c in line.strip("|").split(" | ")[:2])
        keys = re.findall(r"`([^`]+)`", key_cell)
        parent = keys[0].rpartition(".")[0]
        for key in keys:
            full = (key if "." in key or not parent else f"{parent}.{key}").removesuffix("[]")  # a list's row
            assert full not in out, f"{full} has two rows"
            out[full] = (default_cell, line)
    return out


def _same(written: Any, default: Any) -> bool:
    if isinstance(default, BaseModel):
        return type(default).model_validate(written) == default
    if isinstance(default, float) and isinstance(written, str):
        return parse_duration(written) == default
    if isinstance(default, tuple):
        return tuple(written) == default
    return bool(written == default)


def test_every_config_field_is_documented_and_every_documented_key_exists() -> None:
    documented = rows()
    paths = dict(fields(MonitorFile))
    assert not set(documented) - set(paths), f"documented keys the config does not have: {set(documented) - set(paths)}"
    missing = []
    for path in paths:
        if path in documented or any(other.startswith(path + ".") or other.startswith(path + "[].")
                                     for other in documented):
            continue  # its own row, or a section whose fields have rows
        covering = [p for p in documented if path.startswith(p + ".") or path.startswith(p + "[].")]
        name = path.rpartition(".")[2]
        if not covering or not re.search(rf"\b{re.escape(name)}\b", documented[max(covering, key=len)][1]):
            missing.append(path)
    assert missing == [], f"config fields missing from README's Configuration reference: {missing}"


def test_documented_defaults_match_the_models() -> None:
    paths = dict(fields(MonitorFile))
    documented = rows()
    wrong = []
    for key, (cell, line) in documented.items():
        default = paths[key]
        if cell == "required":
            if default is not ...:
                wrong.append((key, cell, default))
            continue
        if default is ...:
            wrong.append((key, cell, "required"))
            continue
        values = re.findall(r"`([^`]+)`", cell)
        if not values or not cell.startswith("`"):
            continue  # in words
        keys = [k for k, (_, other) in documented.items() if other == line]  # `a` / `b` | `1` / `2`
        written = values[keys.index(key)] if len(values) == len(keys) else values[0]
        if not _same(yaml.safe_load(written), default):
            wrong.append((key, written, default))
    assert wrong == [], f"README defaults that differ from the config models: {wrong}"
