"""The json_schema check's load-time checks of a schema's references, read as jsonschema's validators read them:
each resolves (nothing is fetched), reaches a subschema of its own dialect (or one with its own `$schema`), and none
comes back to where it started without reading deeper into the answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from monitor.checks.schema_walk import under

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


class _Index:
    """Every subschema of a schema, and map of them (`properties`), in document order, each by identity with its path,
    the resolver of its references, the validator class reading it, the path of the `$schema` that chose that class
    (the root's, stated or not) and the reference keywords the class follows (none for a map)."""

    def __init__(self, schema: dict[str, Any], cls: Any) -> None:
        scopes = _Scopes(schema, cls)
        self.where: dict[int, list[str]] = {}
        self.resolvers: dict[int, Any] = {}
        self.classes: dict[int, Any] = {}
        self.parts: dict[int, list[str]] = {}
        self.references: dict[int, tuple[str, ...]] = {}
        self.nodes: list[dict[str, Any]] = []

        def index(node: Any, path: list[str], resolver: Any, cls: Any, part: list[str], schema: bool = True) -> None:
            if isinstance(node, list):
                for i, item in enumerate(node):
                    index(item, [*path, str(i)], resolver, cls, part)
            elif isinstance(node, dict):
                if schema:
                    resolver, cls = scopes.within(resolver, cls, node)
                    part = path if isinstance(node.get("$schema"), str) else part
                self.where.setdefault(id(node), path)
                self.resolvers.setdefault(id(node), resolver)
                self.classes.setdefault(id(node), cls)
                self.parts.setdefault(id(node), part)
                self.references.setdefault(id(node), _references(cls) if schema else ())
                self.nodes.append(node)
                for key, value, subschema in under(node, schema):
                    index(value, [*path, key], resolver, cls, part, subschema)

        index(schema, [], scopes.root, cls, [])

    def lookups(self, node: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
        """Each reference of `node`: its keyword, its value and what it reaches (`_NOWHERE` when nothing)."""
        from referencing.exceptions import Unresolvable

        for keyword in self.references[id(node)]:
            ref = node.get(keyword)
            if isinstance(ref, str):
                try:
                    yield keyword, ref, self.resolvers[id(node)].lookup(_target(keyword, ref)).contents
                except Unresolvable:
                    yield keyword, ref, _NOWHERE

    def path(self, node: dict[str, Any]) -> str:
        return "/".join(self.where[id(node)]) or "(root)"

    def pointer(self, node: dict[str, Any]) -> str:
        return "#" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in self.where[id(node)])


_NOWHERE = object()


def _dialect(cls: Any) -> str:
    return str(cls.ID_OF(cls.META_SCHEMA))


def check_refs(schema: dict[str, Any], cls: Any) -> None:
    """Raise ValueError for a reference (`$ref`, or its part's dialect's $dynamicRef or $recursiveRef) of `schema`
    (read by the validator class `cls`) that does not resolve within the schema (there is no network to fetch one
    from: it would fail every observation's check with a crash instead of naming the schema), that reaches a
    subschema of a part of another dialect without a `$schema` of its own (jsonschema switches dialect at a
    subschema's own `$schema` only, so it would validate that subschema by the reference's: draft 7's tuple `items`
    crashed 2020-12's, its `dependencies` were ignored), or that loops."""
    index = _Index(schema, cls)
    for node in index.nodes:
        for keyword, ref, target in index.lookups(node):
            if target is _NOWHERE:
                raise ValueError(f"invalid JSON Schema at {index.path(node)}: {keyword} {ref!r} does not resolve within "
                                 "the schema nor to a meta-schema jsonschema ships (nothing is fetched over the "
                                 "network)")
            if isinstance(target, dict) and id(target) in index.classes and not isinstance(target.get("$schema"), str) \
                    and index.classes[id(target)] is not index.classes[id(node)]:
                raise ValueError(
                    f"invalid JSON Schema at {index.path(node)}: {keyword} {ref!r} leads into a subschema "
                    f"({index.pointer(target)}) of the {_dialect(index.classes[id(target)])} part at "
                    f"{'/'.join(index.parts[id(target)]) or '(root)'} without a $schema of its own: jsonschema "
                    f"validates it by the dialect of the reference, {_dialect(index.classes[id(node)])}; refer to that "
                    "part's root, or give the subschema its own $schema (beside an $id, below the root)")
    _check_cycles(index)


# Keywords whose subschemas apply to the very value their schema does (not to a part of it): a $ref that comes back
# through these alone never ends (jsonschema recursed until RecursionError, on every observation)
_IN_PLACE = frozenset({"allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependentSchemas", "dependencies"})


def _check_cycles(index: _Index) -> None:
    """Raise ValueError for a reference that comes back to a schema it started from without reading deeper into the
    value (`a: {$ref: b}`, `b: {$ref: a}`; `allOf: [{$ref: '#'}]`); one through `properties`, `items` and the like is
    a recursive schema (a tree, a linked list), which ends with the value."""
    where = index.where

    def same_value(node: dict[str, Any]) -> list[tuple[dict[str, Any], str | None]]:
        """The subschemas `node` applies to its own value, each with the reference that leads there, as shown
        (None: an in-place keyword)."""
        out: list[tuple[dict[str, Any], str | None]] = []
        for key in _IN_PLACE & node.keys():
            value = node[key]
            items = value if isinstance(value, list) else list(value.values()) \
                if key in ("dependentSchemas", "dependencies") and isinstance(value, dict) else [value]
            out += [(v, None) for v in items if isinstance(v, dict) and id(v) in where]
        out += [(target, f"{keyword} {ref!r}") for keyword, ref, target in index.lookups(node)
                if isinstance(target, dict) and id(target) in where]
        return out

    done: set[int] = set()
    for start in index.nodes:
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
                trail = " -> ".join(index.pointer(n) for n, _ in loop)
                raise ValueError(f"invalid JSON Schema at {index.path(loop[i - 1][0])}: {ref} comes back to where it "
                                 f"started ({trail}) without reading deeper into the answer: validating it would never "
                                 "end")
            elif id(nxt[0]) not in done:
                stack.append(nxt)
                on_path.add(id(nxt[0]))
                todo.append(iter(same_value(nxt[0])))


__all__ = ["check_refs"]
