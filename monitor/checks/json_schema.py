"""json_schema: the completion is JSON that validates against a JSON Schema.

`jsonschema` (with referencing, rpds and attrs: ~2.6 MB resident) is imported when a canary uses this check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, field_validator

from monitor.checks import patterns
from monitor.checks.base import BaseCheck, Context, Verdict
from monitor.checks.json_valid import parse_json
from monitor.checks.schema_refs import check_refs
from monitor.checks.schema_timed import timed
from monitor.checks.schema_walk import under
from monitor.domain import Observation
from monitor.errors import shown


class JsonSchemaCheck(BaseCheck):
    """Pass when the completion parses as JSON and validates against ``schema`` (checked on load: every ``$ref``,
    and the ``$dynamicRef`` of 2020-12 or ``$recursiveRef`` of 2019-09, resolves within it, or to a meta-schema
    jsonschema ships (drafts 3 to 2020-12: ``$ref: https://json-schema.org/draft/2020-12/schema`` for an answer that
    is a schema; nothing is fetched over the network), and never comes back to where it started without reading
    deeper into the answer). Only what validation can follow is read: the subschemas each part's dialect applies from
    the root or from a ``$defs`` or ``definitions`` entry, and what references reach; one under a keyword that dialect
    ignores (``dependentSchemas`` in draft 7, ``dependencies`` in 2019-09, ``then`` without ``if``, any beside a
    ``$ref`` in drafts 3 to 7) is read only when a reference reaches it.

    A ``$schema`` must name a dialect jsonschema knows (drafts 3, 4, 6, 7, 2019-09 and 2020-12); without one,
    the schema is read as 2020-12. One beside an embedded resource's ``$id`` (a bundle) must too: that resource is
    read, and checked on load, by its own dialect, its references too (a ``$recursiveRef`` in a 2019-09 resource of a
    2020-12 schema is followed, a ``$dynamicRef`` there ignored, as jsonschema does). jsonschema switches dialect at a
    subschema's own ``$schema`` only: a reference into such a resource must reach its root (or another subschema
    with its own ``$schema``), as one reaching a subschema below it has it validated by the dialect of the reference
    (draft 7's tuple ``items`` crashed under 2020-12, its ``dependencies`` were ignored), unless what it reaches means
    the same in both (every keyword validation goes on to is run by the same jsonschema function, beside a ``$ref``
    too, ``type`` telling integers apart the same way, and no ``$id`` below it: a draft-07 ``definitions`` entry of
    ``type``, ``properties`` and ``required`` from a 2020-12 schema).

    Every pattern in it (``pattern``, a ``patternProperties`` key) must be a regular expression the ``regex`` module
    compiles, in drafts 3 and 4 too, whose meta-schemas do not ask it of a ``patternProperties`` key. Every key in it
    must be a string, as every key is in JSON: YAML reads ``1:``, ``yes:`` and ``~:`` as a number, a
    boolean and null, which no answer's key equals; quote them (``'1':``).

    ``schema`` may be written ``json_schema`` (its name in the code) instead, not both.
    """

    type: Literal["json_schema"]
    json_schema: dict[str, Any] = Field(alias="schema")
    allow_fenced: bool = True

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_schema(v)


SHOWN_ERRORS = 10  # a schema's problems an error names at most


def check_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Raise ValueError naming every problem (up to ``SHOWN_ERRORS``) when ``schema`` is not a valid JSON Schema,
    as `check-config` names every other problem in one run (the validator's own check_schema names one)."""
    _check_keys(schema, [])
    _check_pattern_lengths(schema)  # before the meta-schemas compile them
    regions = _dialects(schema)
    cls = regions[0][2]
    problems = [problem for region in regions for problem in _meta_problems(region, regions)]
    problems = list(dict.fromkeys([*problems, *_pattern_problems(schema)]))
    if problems:
        more = f"; and {len(problems) - SHOWN_ERRORS} more" if len(problems) > SHOWN_ERRORS else ""
        raise ValueError(f"invalid JSON Schema {'; '.join(problems[:SHOWN_ERRORS])}{more}")
    check_refs(schema, cls)
    return schema


_Region = tuple[tuple[str, ...], dict[str, Any], Any]  # where a dialect's part of a schema starts, it, its validator


def _dialects(schema: dict[str, Any]) -> list[_Region]:
    """The parts of `schema` each dialect reads, the whole first: a subschema with a `$schema` (an embedded
    resource's, beside its `$id`, as 2019-09 on allow) is validated by that dialect down to the next `$schema`
    (jsonschema switches validators there), and so checked against its meta-schema. Raise ValueError for a `$schema`
    naming no dialect jsonschema knows, at any depth: jsonschema would validate by the latest draft (at the root) or
    the parent's (below it), silently."""
    import jsonschema

    regions: list[_Region] = []

    def walk(node: Any, path: tuple[str, ...], schema: bool = True) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, (*path, str(i)))
            return
        if not isinstance(node, dict):
            return
        uri = node.get("$schema") if schema else None  # a map's `$schema` (`properties`, `$defs`) is a name
        if isinstance(uri, str):
            cls = jsonschema.validators.validator_for(node, default=None)
            if cls is None:
                known = ", ".join(repr(uri) for uri in known_dialects())
                raise ValueError(f"invalid JSON Schema at {'/'.join((*path, '$schema'))}: {shown(uri)} is no dialect "
                                 f"jsonschema knows (known: {known})")
            regions.append((path, node, cls))
        elif not path:
            # a $schema that is no string is read by the latest dialect's meta-schema, which names it (jsonschema's
            # own lookup of it raised AttributeError or TypeError)
            regions.append((path, node, jsonschema.validators.validator_for({})))
        for key, value, subschema in under(node, schema):
            walk(value, (*path, key), subschema)

    walk(schema, ())
    return regions


def _meta_problems(region: _Region, regions: list[_Region]) -> list[str]:
    """The problems its dialect's meta-schema finds in `region`, but in the regions of others within it: each is read
    as an empty schema, so that one where no schema goes (`allOf: {$schema: ...}`) is still named."""
    path, node, cls = region
    for inner in sorted(p[len(path):] for p, _, _ in regions if len(p) > len(path) and p[:len(path)] == path):
        node = _blanked(node, inner)
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)  # as check_schema: `pattern` must be a regex
    return [f"at {'/'.join((*path, *(str(p) for p in e.path))) or '(root)'}: "
            f"{_BLANK.join(e.message.split(repr({}), 1)) if e.instance is _EMPTY else e.message}"
            for e in meta.iter_errors(node)]


_BLANK = "a subschema with its own $schema"  # how one read as an empty schema is named, where no schema goes
_EMPTY: dict[str, Any] = {}  # the empty schema each is read as (never changed), told apart from one written `{}`


def _blanked(node: Any, path: tuple[str, ...]) -> Any:
    """`node` with the value at `path` an empty schema (copied along the path only; as it was if a part of the path
    is gone, blanked with an outer one)."""
    if not path:
        return _EMPTY
    if isinstance(node, dict) and path[0] in node:
        return {**node, path[0]: _blanked(node[path[0]], path[1:])}
    if isinstance(node, list) and path[0].isdigit() and int(path[0]) < len(node):
        i = int(path[0])
        return [*node[:i], _blanked(node[i], path[1:]), *node[i + 1:]]
    return node


def known_dialects() -> list[str]:
    """The `$schema` URIs of the dialects the installed jsonschema validates, oldest first."""
    import jsonschema

    validators = [v for name, v in vars(jsonschema).items() if name.startswith("Draft") and name.endswith("Validator")]
    return [str(v.ID_OF(v.META_SCHEMA)) for v in validators]


def _check_keys(node: Any, path: list[str]) -> None:
    """Raise ValueError for a key that is no string, anywhere in `node`: YAML reads `1:`, `yes:` and `~:` as a number,
    a boolean and null, where an answer's keys are JSON's strings (a property never matched; a pattern crashed)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_keys(item, [*path, str(i)])
    elif isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise ValueError(f"invalid JSON Schema at {'/'.join(path) or '(root)'}: the key {key!r} is no string, "
                                 f"as every key is in JSON (YAML reads 1, yes or ~ as a number, a boolean or null: "
                                 f"quote it)")
            _check_keys(value, [*path, key])


def _patterns(node: Any, path: list[str], schema: bool = True) -> Iterator[tuple[str, str]]:
    """Each `pattern` and `patternProperties` key of `node`: where it is (as shown) and its text."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _patterns(item, [*path, str(i)])
        return
    if not isinstance(node, dict):
        return
    props = node.get("patternProperties") if schema else None
    for where, text in [("pattern", node.get("pattern") if schema else None), *(("patternProperties", k) for k in
                                                            (props if isinstance(props, dict) else ()))]:
        if isinstance(text, str):
            yield "/".join([*path, where]), text
    for key, value, subschema in under(node, schema):
        yield from _patterns(value, [*path, key], subschema)


def _check_pattern_lengths(schema: dict[str, Any]) -> None:
    """Raise ValueError for a `pattern` or `patternProperties` key longer than patterns.MAX_PATTERN: compiling one of
    1M characters took about a minute, on load and at every observation."""
    for where, text in _patterns(schema, []):
        if len(text) > patterns.MAX_PATTERN:
            raise ValueError(f"invalid JSON Schema at {where}: a pattern of at most "
                             f"{patterns.MAX_PATTERN:,} characters ({len(text):,} given)")


def _pattern_problems(schema: dict[str, Any]) -> list[str]:
    """A problem (as the meta-schemas word it) for each pattern validation would fail to compile: drafts 3 and 4's
    meta-schemas do not check `patternProperties` keys, and validation compiles with `regex`, not `re`."""
    out = []
    for where, text in _patterns(schema, []):
        try:
            patterns.compile_pattern(text)
        except ValueError:
            out.append(f"at {where}: {text!r} is not a 'regex'")
    return out


def schema_errors(instance: Any, schema: dict[str, Any]) -> str | None:
    """Validate ``instance``; return the most relevant error as one line, or None. Raise
    :class:`patterns.PatternTimeout` when a ``pattern`` of the schema backtracks past its time limit."""
    import jsonschema

    validator = timed(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


def json_schema(spec: JsonSchemaCheck, obs: Observation, ctx: Context) -> Verdict:
    """Check the completion against the JSON Schema."""
    value, error = parse_json(obs.call.text, spec.allow_fenced)
    if error:
        return False, error
    try:
        problem = schema_errors(value, spec.json_schema)
    except patterns.PatternTimeout as e:
        return None, f"no verdict: {e}"
    return (False, f"schema violation {problem}") if problem else (True, "matches schema")


__all__ = ["JsonSchemaCheck", "check_schema", "json_schema", "schema_errors"]
