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
from monitor.domain import Observation
from monitor.errors import shown


class JsonSchemaCheck(BaseCheck):
    """Pass when the completion parses as JSON and validates against ``schema`` (checked on load: every ``$ref``,
    and the ``$dynamicRef`` of 2020-12 or ``$recursiveRef`` of 2019-09, resolves within it, or to a meta-schema
    jsonschema ships (drafts 3 to 2020-12: ``$ref: https://json-schema.org/draft/2020-12/schema`` for an answer that
    is a schema; nothing is fetched over the network), and never comes back to where it started without reading
    deeper into the answer).

    A ``$schema`` must name a dialect jsonschema knows (drafts 3, 4, 6, 7, 2019-09 and 2020-12); without one,
    the schema is read as 2020-12. One beside an embedded resource's ``$id`` (a bundle) must too: that resource is
    read, and checked on load, by its own dialect, its references too (a ``$recursiveRef`` in a 2019-09 resource of a
    2020-12 schema is followed, a ``$dynamicRef`` there ignored, as jsonschema does).

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
    _check_pattern_lengths(schema, [])  # before the meta-schemas compile them
    regions = _dialects(schema)
    cls = regions[0][2]
    problems = list(dict.fromkeys(problem for region in regions for problem in _meta_problems(region, regions)))
    if problems:
        more = f"; and {len(problems) - SHOWN_ERRORS} more" if len(problems) > SHOWN_ERRORS else ""
        raise ValueError(f"invalid JSON Schema {'; '.join(problems[:SHOWN_ERRORS])}{more}")
    _check_refs(schema, _Scopes(schema, cls))
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
        for key, value, subschema in _under(node, schema):
            walk(value, (*path, key), subschema)

    walk(schema, ())
    return regions


def _meta_problems(region: _Region, regions: list[_Region]) -> list[str]:
    """The problems its dialect's meta-schema finds in `region`, but in the regions of others within it."""
    path, node, cls = region
    inner = [p for p, _, _ in regions if len(p) > len(path) and p[:len(path)] == path]
    meta = cls(cls.META_SCHEMA, format_checker=cls.FORMAT_CHECKER)  # as check_schema: `pattern` must be a regex
    out = []
    for e in meta.iter_errors(node):
        where = (*path, *(str(p) for p in e.path))
        if not any(where[:len(p)] == p for p in inner):
            out.append(f"at {'/'.join(where) or '(root)'}: {e.message}")
    return out


def known_dialects() -> list[str]:
    """The `$schema` URIs of the dialects the installed jsonschema validates, oldest first."""
    import jsonschema

    validators = [v for name, v in vars(jsonschema).items() if name.startswith("Draft") and name.endswith("Validator")]
    return [str(v.ID_OF(v.META_SCHEMA)) for v in validators]


_DATA_KEYWORDS = frozenset({"const", "enum", "default", "examples"})  # hold instances, not subschemas
# hold subschemas by name (a property may be called `$schema`); `dependencies` (draft 7) also lists of names
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas",
                          "dependencies"})


def _under(node: dict[str, Any], schema: bool) -> Iterator[tuple[str, Any, bool]]:
    """What to walk under `node` for subschemas: each key, value and whether the value is a schema (else a map of
    them by name). A schema's keywords holding instances are left out; a map's entries are all schemas, whatever
    their names (a property may be called `enum` or `default`)."""
    for key, value in node.items():
        if not schema:
            yield key, value, True
        elif key not in _DATA_KEYWORDS:
            yield key, value, key not in _SCHEMA_MAPS
# The references of a dialect beside $ref: validators of other dialects ignore them as unknown keywords
_DIALECT_REFS = {"https://json-schema.org/draft/2020-12/schema": ("$dynamicRef",),
                 "https://json-schema.org/draft/2019-09/schema": ("$recursiveRef",)}


def _references(cls: Any) -> tuple[str, ...]:
    """The reference keywords the validator class `cls` follows: `$ref`, and its dialect's own."""
    return ("$ref", *_DIALECT_REFS.get(str(cls.META_SCHEMA.get("$id", "")).rstrip("#"), ()))


def _target(keyword: str, ref: str) -> str:
    """Where a reference is looked up: jsonschema reads every $recursiveRef as '#' (the only one 2019-09 allows),
    and looks a $dynamicRef up as a $ref (the outermost dynamic anchor of one resource is its own)."""
    return "#" if keyword == "$recursiveRef" else ref


def _check_pattern_lengths(node: Any, path: list[str], schema: bool = True) -> None:
    """Raise ValueError for a `pattern` or `patternProperties` key longer than patterns.MAX_PATTERN: compiling one of
    1M characters took about a minute, on load and at every observation."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _check_pattern_lengths(item, [*path, str(i)])
        return
    if not isinstance(node, dict):
        return
    props = node.get("patternProperties") if schema else None
    for where, text in [("pattern", node.get("pattern") if schema else None), *(("patternProperties", k) for k in
                                                            (props if isinstance(props, dict) else ()))]:
        if isinstance(text, str) and len(text) > patterns.MAX_PATTERN:
            raise ValueError(f"invalid JSON Schema at {'/'.join([*path, where])}: a pattern of at most "
                             f"{patterns.MAX_PATTERN:,} characters ({len(text):,} given)")
    for key, value, subschema in _under(node, schema):
        _check_pattern_lengths(value, [*path, key], subschema)


class _Scopes:
    """References read as jsonschema's validators read them, the root's class being `cls`: each subschema by the
    dialect of the nearest `$schema` over it (a validator switches there, at an embedded resource's `$id` or not:
    2019-09's `$recursiveRef` is followed in a 2019-09 part of a 2020-12 document, ignored in a 2020-12 part of a
    2019-09 one), against the base URI of the resource it is in (the root's `$id`, moved by each nested one as the
    dialect of its parent reads ids: `$id` or `id`), every resource of the schema known by its own, and the
    meta-schemas jsonschema ships (its validators look them up offline: nothing else is fetched, as nothing is at
    load, with `Registry`'s default of retrieving nothing)."""

    def __init__(self, schema: dict[str, Any], cls: Any) -> None:
        from jsonschema_specifications import REGISTRY as SHIPPED

        self.cls = cls
        resource = self._spec(cls).create_resource(schema)
        uri = resource.id() or ""
        self.root = SHIPPED.with_resource(uri, resource).crawl().resolver(uri)

    @staticmethod
    def _spec(cls: Any) -> Any:
        import referencing.jsonschema

        return referencing.jsonschema.specification_with(str(cls.ID_OF(cls.META_SCHEMA) or ""),
                                                         default=referencing.jsonschema.DRAFT202012)

    def within(self, resolver: Any, cls: Any, node: dict[str, Any]) -> tuple[Any, Any]:
        """The resolver for the references of `node` and the validator class reading it, reached with `resolver`
        and `cls` (its parent's): the parent's dialect reads its id, as jsonschema's descend does, then a
        `$schema` switches the class."""
        spec = self._spec(cls)
        if isinstance(spec.id_of(node), str):
            resolver = resolver.in_subresource(spec.create_resource(node))
        if isinstance(node.get("$schema"), str):  # _dialects refused one naming no dialect jsonschema knows
            import jsonschema

            cls = jsonschema.validators.validator_for(node, default=cls)
        return resolver, cls


def _check_refs(schema: dict[str, Any], scopes: _Scopes) -> None:
    """Raise ValueError for a reference (`$ref`, or its part's dialect's $dynamicRef or $recursiveRef) that
    does not resolve within the schema (there is no network to fetch one from); else it would fail every
    observation's check with a crash instead of naming the schema."""
    from referencing.exceptions import Unresolvable

    def walk(node: Any, path: list[str], resolver: Any, cls: Any, schema: bool = True) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, [*path, str(i)], resolver, cls)
            return
        if not isinstance(node, dict):
            return
        resolver, cls = scopes.within(resolver, cls, node) if schema else (resolver, cls)
        for keyword in _references(cls) if schema else ():
            ref = node.get(keyword)
            if isinstance(ref, str):
                try:
                    resolver.lookup(_target(keyword, ref))
                except Unresolvable:
                    where = "/".join(path) or "(root)"
                    raise ValueError(f"invalid JSON Schema at {where}: {keyword} {ref!r} does not resolve within the "
                                     "schema nor to a meta-schema jsonschema ships (nothing is fetched over the "
                                     "network)") from None
        for key, value, subschema in _under(node, schema):
            walk(value, [*path, key], resolver, cls, subschema)

    walk(schema, [], scopes.root, scopes.cls)
    _check_cycles(schema, scopes)


# Keywords whose subschemas apply to the very value their schema does (not to a part of it): a $ref that comes back
# through these alone never ends (jsonschema recursed until RecursionError, on every observation)
_IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies"})


def _check_cycles(schema: dict[str, Any], scopes: _Scopes) -> None:
    """Raise ValueError for a reference (`$ref`, or its part's dialect's $dynamicRef or $recursiveRef) that comes
    back to a schema it started from without reading deeper into the value (`a: {$ref: b}`, `b: {$ref: a}`; `allOf: [{$ref: '#'}]`); one through `properties`, `items` and the like
    is a recursive schema (a tree, a linked list), which ends with the value."""
    from referencing.exceptions import Unresolvable

    where: dict[int, list[str]] = {}  # each subschema's path, by identity
    resolvers: dict[int, Any] = {}  # and the resolver of its references
    references: dict[int, tuple[str, ...]] = {}  # and the reference keywords its dialect follows
    nodes: list[dict[str, Any]] = []

    def index(node: Any, path: list[str], resolver: Any, cls: Any, schema: bool = True) -> None:
        if isinstance(node, list):
            for i, item in enumerate(node):
                index(item, [*path, str(i)], resolver, cls)
        elif isinstance(node, dict):
            resolver, cls = scopes.within(resolver, cls, node) if schema else (resolver, cls)
            where.setdefault(id(node), path)
            resolvers.setdefault(id(node), resolver)
            references.setdefault(id(node), _references(cls) if schema else ())
            nodes.append(node)
            for key, value, subschema in _under(node, schema):
                index(value, [*path, key], resolver, cls, subschema)

    def same_value(node: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        """The subschemas `node` applies to its own value, each with the reference that leads there, as shown
        (None: an in-place keyword)."""
        out: list[tuple[dict[str, Any], str | None]] = []
        for key in _IN_PLACE & node.keys():
            value = node[key]
            items = value if isinstance(value, list) else list(value.values()) \
                if key in ("dependentSchemas", "dependencies") and isinstance(value, dict) else [value]
            out += [(v, None) for v in items if isinstance(v, dict) and id(v) in where]
        for keyword in references[id(node)]:
            ref = node.get(keyword)
            if isinstance(ref, str):
                try:
                    target = resolvers[id(node)].lookup(_target(keyword, ref)).contents
                except Unresolvable:
                    target = None
                if isinstance(target, dict) and id(target) in where:
                    out.append((target, f"{keyword} {ref!r}"))
        return out

    def pointer(node: dict[str, Any]) -> str:
        return "#" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in where[id(node)])

    index(schema, [], scopes.root, scopes.cls)
    done: set[int] = set()
    for start in nodes:
        if id(start) in done:
            continue
        stack: list[tuple[dict[str, Any], str | None]] = [(start, None)]  # the path followed, each with its way in
        todo = [iter(same_value(start))]
        on_path = {id(start)}
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                todo.pop()
                node, _ = stack.pop()
                on_path.discard(id(node))
                done.add(id(node))
            elif id(nxt[0]) in on_path:
                first = next(i for i, (n, _) in enumerate(stack) if n is nxt[0])
                loop = [*stack[first:], nxt]
                i, (_, ref) = next((i, step) for i, step in enumerate(loop) if i and step[1] is not None)
                trail = " -> ".join(pointer(n) for n, _ in loop)
                raise ValueError(f"invalid JSON Schema at {'/'.join(where[id(loop[i - 1][0])]) or '(root)'}: "
                                 f"{ref} comes back to where it started ({trail}) without reading deeper into the "
                                 "answer: validating it would never end")
            elif id(nxt[0]) not in done:
                stack.append(nxt)
                on_path.add(id(nxt[0]))
                todo.append(iter(same_value(nxt[0])))


def schema_errors(instance: Any, schema: dict[str, Any]) -> str | None:
    """Validate ``instance``; return the most relevant error as one line, or None. Raise
    :class:`patterns.PatternTimeout` when a ``pattern`` of the schema backtracks past its time limit."""
    import jsonschema

    validator = _timed(jsonschema.validators.validator_for(schema))(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


_TIMED: dict[type, type] = {}


def _timed(cls: Any) -> Any:
    """The validator class with `pattern` and `patternProperties` matched under a time limit (see patterns)."""
    if cls not in _TIMED:
        import jsonschema
        from jsonschema.exceptions import ValidationError

        def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Any:
            if validator.is_type(instance, "string") and not patterns.search(patterns.compile_pattern(patrn), instance):
                yield ValidationError(f"{instance!r} does not match {patrn!r}")

        def pattern_properties(validator: Any, properties: dict[str, Any], instance: Any, schema: Any) -> Any:
            if not validator.is_type(instance, "object"):
                return
            for patrn, subschema in properties.items():
                rx = patterns.compile_pattern(patrn)
                for k, v in instance.items():
                    if patterns.search(rx, k):
                        yield from validator.descend(v, subschema, path=k, schema_path=patrn)

        _TIMED[cls] = jsonschema.validators.extend(cls, {"pattern": pattern, "patternProperties": pattern_properties})
    return _TIMED[cls]


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
