"""The json_schema check's load-time checks of a schema's references, read as jsonschema's validators read them:
each resolves (nothing is fetched), reaches a subschema of its own dialect (or one with its own `$schema`, or one
that means the same in both), and none comes back to where it started without reading deeper into the answer."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from monitor.checks.schema_apply import IN_PLACE, REFERENCES, applied, entered_by, subschemas
from monitor.checks.schema_walk import under


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
        registry = SHIPPED.with_resource(uri, resource)
        # referencing reads draft 3's `extends` as a list of schemas only, and crashes on one of a single schema;
        # jsonschema crawls only when a lookup needs it, which then crashes as its validation does (_Index.lookups)
        with contextlib.suppress(AttributeError, TypeError):
            registry = registry.crawl()
        self.root = registry.resolver(uri)

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


# a subschema, the validator class running it (its part's, or the reference's that reached it below its part's
# `$schema`) and the one that entered it (see schema_apply.entered_by)
_Step = tuple[dict[str, Any], Any, Any]


class _Index:
    """Every subschema of a schema, and map of them (`properties`), in document order, each by identity with its path,
    the resolver of its references, the validator class reading it and the path of the `$schema` that chose that class
    (the root's, stated or not); and the entries of every `$defs` and `definitions` map."""

    def __init__(self, schema: dict[str, Any], cls: Any) -> None:
        scopes = _Scopes(schema, cls)
        self.where: dict[int, list[str]] = {}
        self.resolvers: dict[int, Any] = {}
        self.classes: dict[int, Any] = {}
        self.entries: dict[int, Any] = {}  # the class of the parent, which enters it
        self.parts: dict[int, list[str]] = {}
        self.nodes: list[dict[str, Any]] = []
        self.definitions: list[dict[str, Any]] = []

        def index(node: Any, path: list[str], resolver: Any, cls: Any, part: list[str], schema: bool = True,
                  defs: bool = False) -> None:
            if isinstance(node, list):
                for i, item in enumerate(node):
                    index(item, [*path, str(i)], resolver, cls, part)
            elif isinstance(node, dict):
                self.entries.setdefault(id(node), cls)
                if schema:
                    resolver, cls = scopes.within(resolver, cls, node)
                    part = path if isinstance(node.get("$schema"), str) else part
                self.where.setdefault(id(node), path)
                self.resolvers.setdefault(id(node), resolver)
                self.classes.setdefault(id(node), cls)
                self.parts.setdefault(id(node), part)
                self.nodes.append(node)
                for key, value, subschema in under(node, schema):
                    if defs and isinstance(value, dict):
                        self.definitions.append(value)
                    index(value, [*path, key], resolver, cls, part, subschema,
                          schema and key in ("$defs", "definitions"))

        index(schema, [], scopes.root, cls, [])

    def applied(self, step: _Step) -> list[str]:
        """The keywords its validator runs in a subschema entered so (see schema_apply.applied)."""
        node, cls, entry = step
        return applied(node, cls, entry)

    def lookups(self, step: _Step) -> Iterator[tuple[str, str, Any]]:
        """Each reference its validator follows in a subschema entered so: its keyword, its value and what it reaches
        (`_NOWHERE` when nothing, `_CRASHES` when the lookup crashes: referencing crawls the schema for it)."""
        from referencing.exceptions import Unresolvable

        node = step[0]
        for keyword in (key for key in self.applied(step) if key in REFERENCES):
            ref = node.get(keyword)
            if isinstance(ref, str):
                try:
                    yield keyword, ref, self.resolvers[id(node)].lookup(_target(keyword, ref)).contents
                except Unresolvable:
                    yield keyword, ref, _NOWHERE
                except (AttributeError, TypeError):
                    yield keyword, ref, _CRASHES

    def path(self, node: dict[str, Any]) -> str:
        return "/".join(self.where[id(node)]) or "(root)"

    def pointer(self, node: dict[str, Any]) -> str:
        return "#" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in self.where[id(node)])


_NOWHERE = object()
_CRASHES = object()


def _dialect(cls: Any) -> str:
    return str(cls.ID_OF(cls.META_SCHEMA))


def check_refs(schema: dict[str, Any], cls: Any) -> None:
    """Raise ValueError for a reference (`$ref`, or its part's dialect's $dynamicRef or $recursiveRef) of `schema`
    (read by the validator class `cls`) that does not resolve within the schema (there is no network to fetch one
    from: it would fail every observation's check with a crash instead of naming the schema), that reaches a
    subschema of a part of another dialect without a `$schema` of its own where that subschema, or one validation goes
    on to from it, means otherwise in the reference's dialect (jsonschema switches dialect at a subschema's own
    `$schema` only, so it validates that subschema by the reference's: draft 7's tuple `items` crashed 2020-12's, its
    `dependencies` were ignored), or that loops. Only the references validation can follow are read: those of the
    subschemas its validators apply from the root or from a `$defs` or `definitions` entry (each meant to be referred
    to), and from what references reach, each by the dialect validating it there; a subschema under a keyword its
    dialect does not run (`dependentSchemas` in draft 7, `dependencies` in 2019-09, `then` without `if`, any beside a
    `$ref` in drafts 3 to 7) is read only when one reaches it."""
    index = _Index(schema, cls)
    live = _live(index)
    for step in live:
        node, run = step[0], step[1]
        for keyword, ref, target in index.lookups(step):
            if target is _NOWHERE:
                raise ValueError(f"invalid JSON Schema at {index.path(node)}: {keyword} {ref!r} does not resolve within "
                                 "the schema nor to a meta-schema jsonschema ships (nothing is fetched over the "
                                 "network)")
            if target is _CRASHES:
                raise ValueError(f"invalid JSON Schema at {index.path(node)}: {keyword} {ref!r} makes jsonschema's lookup "
                                 "crash (AttributeError), as it reads draft 3's `extends` of one schema as a list: write "
                                 "it `extends: [...]`")
            if isinstance(target, dict) and id(target) in index.classes and not isinstance(target.get("$schema"), str) \
                    and index.classes[id(target)] is not run and (otherwise := _otherwise(index, target, run)):
                raise ValueError(
                    f"invalid JSON Schema at {index.path(node)}: {keyword} {ref!r} leads into a subschema "
                    f"({index.pointer(target)}) of the {_dialect(index.classes[id(target)])} part at "
                    f"{'/'.join(index.parts[id(target)]) or '(root)'} without a $schema of its own: jsonschema "
                    f"validates it by the dialect of the reference, {_dialect(run)}; refer to that part's root, or "
                    f"give the subschema its own $schema (beside an $id, below the root); {otherwise}")
    _check_cycles(index, live)


def _otherwise(index: _Index, target: dict[str, Any], cls: Any) -> str | None:
    """What, validated by the class `cls` from `target` on (a subschema of a part of another dialect, reached by a
    reference of `cls`'s), means otherwise than in the dialect it is written in, as shown; None when nothing does, so
    that validation goes as written: each subschema it goes on to without a `$schema` of its own runs the keywords it
    would in its own dialect (beside a `$ref` too), each by the same function of jsonschema's, and `type` with the same
    type checker (the dialects' checkers differ in `integer`, and draft 3's `any`, which no other keyword asks); one with its own `$schema` (run by its dialect) runs the same keywords however entered; and none below
    `target` has an id, which another dialect could read otherwise (`$id` or `id`), moving the base URI."""
    todo: list[_Step] = [(target, cls, cls)]
    seen = {id(target)}
    while todo:
        step = todo.pop()
        node, run, entry = step
        written = index.classes[id(node)]
        if node is not target and any(isinstance(node.get(key), str) for key in ("$id", "id")):
            return f"there the id at {index.pointer(node)} could be read otherwise"
        keys = applied(node, run, entry)
        if isinstance(node.get("$schema"), str):
            if any(applied(node, run, other) != keys for other in (run, index.entries[id(node)])):
                return f"there what runs beside the $ref at {index.pointer(node)} depends on the dialect entering it"
            continue  # its own dialect runs it, and what it goes on to, as written
        if keys != applied(node, written, written):
            return (f"there {index.pointer(node)} runs {', '.join(keys)}, in its own dialect "
                    f"{', '.join(applied(node, written, written))}")
        differ = [key for key in node if run.VALIDATORS.get(key) is not written.VALIDATORS.get(key)]
        if differ:
            return f"there {', '.join(differ)} at {index.pointer(node)} means otherwise"
        if "type" in keys and written.TYPE_CHECKER != run.TYPE_CHECKER:
            return f"there the types at {index.pointer(node)} are told apart otherwise"
        for nxt, _ in _steps(index, step, in_place=False):
            if id(nxt[0]) not in seen:
                seen.add(id(nxt[0]))
                todo.append(nxt)
    return None


def _steps(index: _Index, step: _Step, in_place: bool) -> Iterator[tuple[_Step, str | None]]:
    """Where validation goes from a subschema run and entered so (only to subschemas applied to its own value when
    `in_place`), each with the reference that leads there, as shown (None: a keyword holding it). A subschema is run
    by its own class where it has a `$schema`, else by the one running the subschema it is reached from."""
    node, cls, _ = step

    def run(child: dict[str, Any]) -> Any:
        return index.classes[id(child)] if isinstance(child.get("$schema"), str) else cls

    for key in index.applied(step):
        if key not in REFERENCES and (key in IN_PLACE or not in_place):
            yield from (((v, run(v), entered_by(key, cls, run(v))), None) for v in subschemas(key, node[key])
                        if id(v) in index.where)
    for keyword, ref, target in index.lookups(step):
        if isinstance(target, dict) and id(target) in index.where:
            yield (target, run(target), entered_by(keyword, cls, run(target))), f"{keyword} {ref!r}"


def _key(index: _Index, step: _Step) -> tuple[int, int, tuple[str, ...]]:
    """A step's identity: its subschema, the class running it and the keywords it runs there (entered by classes that
    list the same, it goes on the same ways)."""
    return id(step[0]), id(step[1]), tuple(index.applied(step))


def _live(index: _Index) -> list[_Step]:
    """The subschemas validation may apply, each with the classes that may run and enter it, in document order: from
    the root and each `$defs` or `definitions` entry (run and entered by their own class), what their validators apply,
    and what references reach."""
    roots = [(node, index.classes[id(node)], index.classes[id(node)]) for node in [index.nodes[0], *index.definitions]]
    seen = {_key(index, step): step for step in roots}
    todo = list(roots)
    while todo:
        for nxt, _ in _steps(index, todo.pop(), in_place=False):
            if _key(index, nxt) not in seen:
                seen[_key(index, nxt)] = nxt
                todo.append(nxt)
    order = {id(node): i for i, node in reversed(list(enumerate(index.nodes)))}
    return sorted(seen.values(), key=lambda step: order[id(step[0])])


def _check_cycles(index: _Index, live: list[_Step]) -> None:
    """Raise ValueError for a reference that comes back to a schema it started from without reading deeper into the
    value (`a: {$ref: b}`, `b: {$ref: a}`; `allOf: [{$ref: '#'}]`), through what the validators apply in place (`allOf`,
    `not`, `if`; draft 3's `type` and `extends`); one through `properties`, `items` and the like is a recursive schema
    (a tree, a linked list), which ends with the value. A subschema is followed as the class entering it lists its
    keywords: a draft-07 one's beside its `$ref` only when a later dialect's validator descends into it."""
    done: set[tuple[int, int, tuple[str, ...]]] = set()
    for start in live:
        if _key(index, start) in done:
            continue
        stack: list[tuple[_Step, str | None]] = [(start, None)]  # the path followed, each with its way in
        todo = [_steps(index, start, in_place=True)]
        on_path = {_key(index, start)}
        while todo:
            nxt = next(todo[-1], None)
            if nxt is None:
                todo.pop()
                step, _ = stack.pop()
                on_path.discard(_key(index, step))
                done.add(_key(index, step))
            elif _key(index, nxt[0]) in on_path:
                first = next(i for i, (s, _) in enumerate(stack) if _key(index, s) == _key(index, nxt[0]))
                loop = [*stack[first:], nxt]
                i, (_, ref) = next((i, step) for i, step in enumerate(loop) if i and step[1] is not None)
                trail = " -> ".join(index.pointer(s[0]) for s, _ in loop)
                raise ValueError(f"invalid JSON Schema at {index.path(loop[i - 1][0][0])}: {ref} comes back to where "
                                 f"it started ({trail}) without reading deeper into the answer: validating it would "
                                 "never end")
            elif _key(index, nxt[0]) not in done:
                stack.append(nxt)
                on_path.add(_key(index, nxt[0]))
                todo.append(_steps(index, nxt[0], in_place=True))


__all__ = ["check_refs"]
