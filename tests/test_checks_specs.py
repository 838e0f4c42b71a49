"""Every check type rejects malformed specs at load, naming the field and the value."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from monitor.checks import parse_check, parse_checks


@pytest.mark.parametrize(
    ("spec", "loc", "message"),
    [
        ({"type": "contains", "value": ""}, ("contains", "value"), "non-empty string"),
        ({"type": "contains", "value": "x", "case": True}, ("contains", "case"), "Extra inputs"),
        ({"type": "not_contains", "value": []}, ("not_contains", "value"), "non-empty"),
        ({"type": "regex", "pattern": "(unclosed"}, ("regex", "pattern"), "invalid regular expression '(unclosed'"),
        ({"type": "regex", "pattern": "x", "flags": ["q"]}, ("regex", "flags", 0), "Input should be"),
        ({"type": "equals", "value": ""}, ("equals", "value"), "at least 1 character"),
        ({"type": "one_of", "values": []}, ("one_of", "values"), "at least 1 item"),
        ({"type": "one_of", "values": ["a", " "]}, ("one_of", "values"), "empty strings"),
        ({"type": "starts_with"}, ("starts_with", "value"), "Field required"),
        ({"type": "json_valid", "expect": "dict"}, ("json_valid", "expect"), "'any', 'object' or 'array'"),
        ({"type": "json_schema", "schema": {"type": "objekt"}}, ("json_schema", "schema"), "invalid JSON Schema"),
        ({"type": "json_schema", "schema": {"properties": {"a": {"minimum": "x"}}}},
         ("json_schema", "schema"), "properties/a/minimum"),
        ({"type": "json_schema", "schema": {"properties": {"a": {"$ref": "#/definitions/nope"}}}},
         ("json_schema", "schema"), "at properties/a: $ref '#/definitions/nope' does not resolve within the schema"),
        ({"type": "length", "min": 10, "max": 5}, ("length", "max"), "min (10) must be <= max (5)"),
        ({"type": "length", "min": -1}, ("length", "min"), "greater than or equal to 0"),
        ({"type": "length", "unit": "chars"}, ("length",), "set min, max or both"),
        # no upper bound: any integer loaded (a completion is a few million characters at most)
        ({"type": "length", "max": 10_000_001}, ("length", "max"), "less than or equal to 10000000"),
        ({"type": "length", "min": 10_000_001, "unit": "words"}, ("length", "min"), "less than or equal to 10000000"),
        ({"type": "length", "max": True}, ("length", "max"), "a number, not a boolean"),
        ({"type": "tokens", "min": 500, "max": 100}, ("tokens", "max"), "min (500) must be <= max (100)"),
        # no upper bound before: a bound past the largest max_tokens (1,000,000) is a typo that passes or fails every
        # answer
        ({"type": "tokens", "max": 1_000_001}, ("tokens", "max"), "less than or equal to 1000000"),
        ({"type": "tokens", "min": 10**30}, ("tokens", "min"), "less than or equal to 1000000"),
        ({"type": "tokens", "min": -1}, ("tokens", "min"), "greater than or equal to 0"),
        ({"type": "tokens", "max": True}, ("tokens", "max"), "a number, not a boolean"),
        ({"type": "tokens", "allow_estimated": True}, ("tokens",), "set min, max or both"),
        ({"type": "number", "value": 3, "tolerance": -1}, ("number", "tolerance"), "greater than or equal to 0"),
        ({"type": "number", "value": "nan"}, ("number", "value"), "finite"),
        ({"type": "number"}, ("number", "value"), "Field required"),
        ({"type": "language", "expect": "xx"}, ("language", "expect"), "unsupported language code(s) ['xx']"),
        ({"type": "code_runs", "asserts": ["assert f(1) =="]}, ("code_runs", "asserts"), "not valid Python"),
        ({"type": "code_runs", "timeout_s": 0}, ("code_runs", "timeout_s"), "greater than 0"),
        ({"type": "code_runs", "language": "rust"}, ("code_runs", "language"), "'python'"),
        ({"type": "tool_call", "function": ""}, ("tool_call", "function"), "at least 1 character"),
        ({"type": "latency", "max_s": 0}, ("latency", "max_s"), "greater than 0"),
        ({"type": "ttft", "min_s": 2, "max_s": 1}, ("ttft", "max_s"), "min_s (2.0) must be <= max_s (1.0)"),
        ({"type": "llm_judge", "rubric": "be nice"}, ("llm_judge", "judge_target"), "Field required"),
        ({"type": "refusal", "expect": "maybe"}, ("refusal", "expect"), "'refused' or 'answered'"),
        ({"type": "telepathy"}, (), "does not match any of the expected tags"),
        # a $ref cycle that reads no deeper into the answer: validating raised RecursionError on every observation
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                                            "$ref": "#/$defs/a"}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/a: $ref '#/$defs/b' comes back to where it started "
                                    "(#/$defs/a -> #/$defs/b -> #/$defs/a) without reading deeper into the answer"),
        ({"type": "json_schema", "schema": {"allOf": [{"$ref": "#"}]}}, ("json_schema", "schema"),
         "invalid JSON Schema at allOf/0: $ref '#' comes back to where it started (# -> #/allOf/0 -> #)"),
        ({"type": "json_schema", "schema": {"$defs": {"a": {"anyOf": [{"type": "string"}, {"not": {"$ref": "#/$defs/a"}}]}},
                                            "properties": {"x": {"$ref": "#/$defs/a"}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at $defs/a/anyOf/1/not: $ref '#/$defs/a' comes back to where it started"),
        # $dynamicRef (2020-12) and $recursiveRef (2019-09) come back as $ref does: RecursionError on every observation
        ({"type": "json_schema", "schema": {"$dynamicAnchor": "a", "allOf": [{"$dynamicRef": "#a"}]}},
         ("json_schema", "schema"), "invalid JSON Schema at allOf/0: $dynamicRef '#a' comes back to where it started "
                                    "(# -> #/allOf/0 -> #) without reading deeper into the answer"),
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$dynamicRef": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
                                            "properties": {"x": {"$ref": "#/$defs/a"}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at $defs/a: $dynamicRef '#/$defs/b' comes back to where it started "
         "(#/$defs/a -> #/$defs/b -> #/$defs/a)"),
        ({"type": "json_schema", "schema": {"$schema": "https://json-schema.org/draft/2019-09/schema",
                                            "$recursiveAnchor": True, "anyOf": [{"$recursiveRef": "#"}]}},
         ("json_schema", "schema"), "invalid JSON Schema at anyOf/0: $recursiveRef '#' comes back to where it started"),
        # jsonschema reads every $recursiveRef as '#', whatever it says
        ({"type": "json_schema", "schema": {"$schema": "https://json-schema.org/draft/2019-09/schema",
                                            "not": {"$recursiveRef": "#/nope"}}},
         ("json_schema", "schema"), "invalid JSON Schema at not: $recursiveRef '#/nope' comes back to where it started"),
        # a $dynamicRef that resolves nowhere crashed every observation's check, as a $ref did
        ({"type": "json_schema", "schema": {"properties": {"a": {"$dynamicRef": "#nope"}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at properties/a: $dynamicRef '#nope' does not resolve within the schema"),
        # a loop through a nested $id (a new base URI) went unseen, and validating raised RecursionError every time
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "y", "allOf": [{"$ref": "y"}]}}, "$ref": "#/$defs/a"}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/a/allOf/0: $ref 'y' comes back to where it started "
                                    "(#/$defs/a -> #/$defs/a/allOf/0 -> #/$defs/a) without reading deeper"),
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "y", "$ref": "z"}, "b": {"$id": "z", "$ref": "y"}},
                                            "$ref": "y"}}, ("json_schema", "schema"),
         "invalid JSON Schema at $defs/a: $ref 'z' comes back to where it started (#/$defs/a -> #/$defs/b -> "
         "#/$defs/a)"),
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "http://x/y.json", "not": {"$ref": "#"}}},
                                            "properties": {"p": {"$ref": "http://x/y.json"}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at $defs/a/not: $ref '#' comes back to where it started "
         "(#/$defs/a -> #/$defs/a/not -> #/$defs/a)"),
        # and a reference under a nested $id that resolves nowhere crashed every observation's check
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "y", "properties": {"p": {"$ref": "nope"}}}},
                                            "$ref": "y"}}, ("json_schema", "schema"),
         "invalid JSON Schema at $defs/a/properties/p: $ref 'nope' does not resolve within the schema"),
        # a $schema that is no string: jsonschema's validator_for raised AttributeError or TypeError, a traceback
        ({"type": "json_schema", "schema": {"$schema": 5}}, ("json_schema", "schema"),
         "invalid JSON Schema at $schema: 5 is not of type 'string'"),
        ({"type": "json_schema", "schema": {"$schema": ["a"], "type": "objekt"}}, ("json_schema", "schema"),
         "invalid JSON Schema at $schema: ['a'] is not of type 'string'"),
        # an unknown $schema loaded and was validated as the latest draft, silently
        ({"type": "json_schema", "schema": {"$schema": "https://example.com/my-dialect", "type": "object"}},
         ("json_schema", "schema"), "invalid JSON Schema at $schema: 'https://example.com/my-dialect' is no dialect "
         "jsonschema knows (known: 'http://json-schema.org/draft-03/schema#', 'http://json-schema.org/draft-04/schema#'"),
        ({"type": "json_schema", "schema": {"$schema": "http://json-schema.org/draft-07/schema/"}},
         ("json_schema", "schema"), "'https://json-schema.org/draft/2020-12/schema')"),
        # a nested $schema (an embedded resource's) that names no dialect was validated as its parent's, silently
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "https://x.example/a", "$schema": "https://example.com/d",
                                                            "type": "string"}}, "$ref": "https://x.example/a"}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/a/$schema: 'https://example.com/d' is no dialect "
         "jsonschema knows (known: 'http://json-schema.org/draft-03/schema#'"),
        ({"type": "json_schema", "schema": {"properties": {"p": {"items": [{"$schema": "draft-07"}]}}}},
         ("json_schema", "schema"), "invalid JSON Schema at properties/p/items/0/$schema: 'draft-07' is no dialect"),
        # an embedded resource is checked against its own dialect's meta-schema: a draft-04 document's 2020-12
        # resource with a `prefixItems` that is no list crashed the load with a TypeError (a traceback)
        ({"type": "json_schema", "schema": {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {
            "p": {"id": "http://x.example/p", "$schema": "https://json-schema.org/draft/2020-12/schema",
                  "prefixItems": 5}}}},
         ("json_schema", "schema"), "invalid JSON Schema at properties/p/prefixItems: 5 is not of type 'array'"),
        ({"type": "json_schema", "schema": {"$defs": {"a": {"$id": "http://x.example/a",
                                                            "$schema": "http://json-schema.org/draft-07/schema#",
                                                            "definitions": {"b": {"minLength": -1}}}}}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/a/definitions/b/minLength: -1 is less than the minimum"),
        # a property (or $defs entry) named $schema whose value is a dialect's URI, no schema: the map holding it was
        # read as a subschema of that dialect, the meta-schema's error left out, and the load crashed (AttributeError)
        ({"type": "json_schema", "schema": {"properties": {"$schema": "http://json-schema.org/draft-07/schema#"}}},
         ("json_schema", "schema"), "invalid JSON Schema at properties/$schema: 'http://json-schema.org/draft-07/schema#' "
         "is not of type 'object', 'boolean'"),
        ({"type": "json_schema", "schema": {"$defs": {"$schema": "https://json-schema.org/draft/2020-12/schema"}}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/$schema: 'https://json-schema.org/draft/2020-12/schema' "
         "is not of type 'object', 'boolean'"),
        # a property named as a keyword that holds an instance (enum, const, default, examples) is a subschema all the
        # same: its reference, loop or pattern went unchecked on load, and failed or crashed every observation's check
        ({"type": "json_schema", "schema": {"properties": {"enum": {"$ref": "#/nope"}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at properties/enum: $ref '#/nope' does not resolve within the schema"),
        ({"type": "json_schema", "schema": {"$defs": {"default": {"allOf": [{"$ref": "#/$defs/default"}]}}}},
         ("json_schema", "schema"), "invalid JSON Schema at $defs/default/allOf/0: $ref '#/$defs/default' comes back"),
        ({"type": "json_schema", "schema": {"properties": {"examples": {"pattern": "x" * 10_001}}}},
         ("json_schema", "schema"), "invalid JSON Schema at properties/examples/pattern: a pattern of at most"),
        # a pattern of 1M characters took a minute to compile on load (found by fuzzing)
        ({"type": "regex", "pattern": "x" * 10_001}, ("regex", "pattern"), "at most 10000 characters"),
        ({"type": "json_schema", "schema": {"properties": {"a": {"pattern": "x" * 10_001}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at properties/a/pattern: a pattern of at most 10,000 characters (10,001 given)"),
        ({"type": "json_schema", "schema": {"patternProperties": {"x" * 10_001: {}}}}, ("json_schema", "schema"),
         "invalid JSON Schema at patternProperties: a pattern of at most 10,000 characters (10,001 given)"),
        ({"type": "contains", "value": "x", "name": "n" * 75}, ("contains", "name"), "at most 74 characters"),
    ],
)
def test_malformed_spec_is_rejected(spec: dict, loc: tuple, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_check(spec)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    assert errors[0]["loc"] == loc
    assert message in errors[0]["msg"]
    assert str(info.value).count("input_value") == 1  # the offending value is shown


def test_local_refs_that_resolve_are_accepted() -> None:
    spec = {"type": "json_schema", "schema": {"$defs": {"name": {"type": "string"}}, "type": "object",
                                              "properties": {"a": {"$ref": "#/$defs/name"}, "b": {"$ref": "#"}},
                                              "default": {"$ref": "data, not a reference"}}}
    assert parse_check(spec).type == "json_schema"


def test_a_check_name_of_74_characters_is_accepted() -> None:
    """74 is the longest: `check:NAME` (a drift signal, a metric label, a webhook field) is then 80 characters."""
    assert parse_check({"type": "contains", "value": "x", "name": "n" * 74}).name == "n" * 74


def test_a_recursive_schema_that_reads_deeper_each_time_is_accepted_and_runs() -> None:
    """A linked list (each `next` a node again): its $ref comes back, one level deeper into the answer each time."""
    from monitor.checks.json_schema import schema_errors

    schema = {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}},
                                 "allOf": [{"$ref": "#/$defs/named"}]},
                        "named": {"required": ["name"]}}, "$ref": "#/$defs/node"}
    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"name": "a", "next": {"name": "b", "next": {"name": "c"}}}, schema) is None
    assert schema_errors({"name": "a", "next": {"next": {}}}, schema) == "at next: 'name' is a required property"


TREE = "at children/0: 'name' is a required property"


@pytest.mark.parametrize(("schema", "deep_error"), [
    # the extensible tree of the 2020-12 specification: $dynamicRef reads one level deeper each time
    ({"$dynamicAnchor": "node", "type": "object", "required": ["name"],
      "properties": {"children": {"type": "array", "items": {"$dynamicRef": "#node"}}}}, TREE),
    ({"$schema": "https://json-schema.org/draft/2019-09/schema", "$recursiveAnchor": True, "type": "object",
      "required": ["name"], "properties": {"children": {"type": "array", "items": {"$recursiveRef": "#"}}}}, TREE),
    # no keyword before 2020-12 (and $recursiveRef none after 2019-09): the validator ignores it, so no loop
    ({"$schema": "http://json-schema.org/draft-07/schema#", "required": ["name"], "allOf": [{"$dynamicRef": "#"}]},
     None),
    ({"required": ["name"], "allOf": [{"$recursiveRef": "#"}]}, None),
])
def test_a_dynamic_reference_that_ends_is_accepted_and_runs(schema: dict, deep_error: str | None) -> None:
    """What load accepts, validation finishes (a loop raised RecursionError, quickly: no hang to guard against)."""
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"name": "a", "children": [{"name": "b", "children": [{"name": "c"}]}]}, schema) is None
    assert schema_errors({"name": "a", "children": [{"children": []}]}, schema) == deep_error
    assert schema_errors({}, schema) == "at (root): 'name' is a required property"


@pytest.mark.parametrize("schema", [
    # a recursive schema under a nested $id reads deeper each time: no loop
    {"$defs": {"a": {"$id": "y", "required": ["name"], "properties": {"p": {"$ref": "y"}}}}, "$ref": "y"},
    # references resolve against the base URI of the resource they are in (load refused these, validation ran them)
    {"$id": "http://x/root.json", "$defs": {"a": {"$id": "a.json", "required": ["name"]}},
     "properties": {"p": {"$ref": "a.json"}}, "required": ["name"]},
    {"$id": "http://x/root.json", "$defs": {"a": {"required": ["name"]}},
     "properties": {"p": {"$ref": "root.json#/$defs/a"}}, "required": ["name"]},
    {"$schema": "http://json-schema.org/draft-07/schema#", "definitions": {"a": {"$id": "#named", "required": ["name"]}},
     "properties": {"p": {"$ref": "#named"}}, "required": ["name"]},
])
def test_references_under_an_id_are_accepted_and_run(schema: dict) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"name": "a", "p": {"name": "b"}}, schema) is None
    assert schema_errors({"name": "a", "p": {}}, schema) == "at p: 'name' is a required property"


@pytest.mark.parametrize("dialect", ["http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema",
                                     "https://json-schema.org/draft/2020-12/schema", "http://json-schema.org/draft-04/schema#"])
def test_a_known_schema_dialect_is_accepted(dialect: str) -> None:
    assert parse_check({"type": "json_schema", "schema": {"$schema": dialect, "type": "object"}}).type == "json_schema"


@pytest.mark.parametrize(("schema", "instance", "error"), [
    # a 2020-12 bundle of a draft-07 resource (2019-09 on allow `$schema` beside an embedded resource's `$id`): its
    # array `items` and `additionalItems` are draft 7's, which the 2020-12 meta-schema refused
    ({"$defs": {"pair": {"$id": "https://x.example/pair", "$schema": "http://json-schema.org/draft-07/schema#",
                         "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False}},
      "properties": {"p": {"$ref": "https://x.example/pair"}}}, {"p": ["a", 1, 2]},
     "at p: Additional items are not allowed (2 was unexpected)"),
    # a draft-04 resource's boolean exclusiveMinimum, a number in 2020-12
    ({"properties": {"n": {"$id": "https://x.example/n", "$schema": "http://json-schema.org/draft-04/schema#",
                           "minimum": 3, "exclusiveMinimum": True}}}, {"n": 3},
     "at n: 3 is less than or equal to the minimum of 3"),
])
def test_an_embedded_resource_of_another_known_dialect_is_accepted_and_run_by_it(schema: dict, instance: dict,
                                                                                 error: str) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors(instance, schema) == error
    assert schema_errors({}, schema) is None


D07 = "http://json-schema.org/draft-07/schema#"
D2019 = "https://json-schema.org/draft/2019-09/schema"
D2020 = "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(("schema", "message"), [
    # a $recursiveRef loop inside an embedded 2019-09 resource of a 2020-12 document: the load read references by the
    # root's dialect (no $recursiveRef), and validation raised RecursionError at every observation
    ({"$schema": D2020, "properties": {"a": {"$id": "urn:x:a", "$schema": D2019, "allOf": [{"$recursiveRef": "#"}]}}},
     "invalid JSON Schema at properties/a/allOf/0: $recursiveRef '#' comes back to where it started "
     "(#/properties/a -> #/properties/a/allOf/0 -> #/properties/a)"),
    # and the reverse: a $dynamicRef loop inside an embedded 2020-12 resource of a 2019-09 document
    ({"$schema": D2019, "properties": {"a": {"$id": "urn:x:a", "$schema": D2020, "$dynamicAnchor": "n",
                                             "anyOf": [{"$dynamicRef": "#n"}]}}},
     "invalid JSON Schema at properties/a/anyOf/0: $dynamicRef '#n' comes back to where it started"),
    # a $schema without an $id switches jsonschema's validator as well (its keywords, not the base URI)
    ({"$schema": D2020, "$defs": {"x": {"$schema": D2019, "allOf": [{"$recursiveRef": "#"}]}},
      "allOf": [{"$ref": "#/$defs/x"}]},
     "invalid JSON Schema at allOf/0: $ref '#/$defs/x' comes back to where it started "
     "(# -> #/allOf/0 -> #/$defs/x -> #/$defs/x/allOf/0 -> #)"),
])
def test_a_reference_loop_in_a_part_of_another_dialect_is_refused(schema: dict, message: str) -> None:
    """What validation never ends on, load refuses: each part's references are read by the dialect jsonschema
    validates it with."""
    from monitor.checks.json_schema import schema_errors

    with pytest.raises(RecursionError):
        schema_errors({"a": {}}, schema)
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


@pytest.mark.parametrize("schema", [
    # the keyword another dialect has is ignored by this part's: no loop, no unresolvable reference (load refused them)
    {"$schema": D2020, "properties": {"a": {"$id": "urn:x:a", "$schema": D07, "allOf": [{"$dynamicRef": "#"}]}}},
    {"$schema": D2019, "properties": {"a": {"$id": "urn:x:a", "$schema": D2020, "allOf": [{"$recursiveRef": "#"}]}}},
    {"$schema": D2020, "properties": {"a": {"$id": "urn:x:a", "$schema": D2019, "allOf": [{"$dynamicRef": "#nowhere"}]}}},
    {"$schema": D2019, "properties": {"a": {"$schema": D2020, "allOf": [{"$recursiveRef": "#"}]}}, "$ref": "#/properties/a"},
])
def test_a_reference_keyword_of_another_dialect_is_ignored_on_load_as_in_validation(schema: dict) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"a": {}}, schema) is None
    assert schema_errors({"a": 1}, schema) is None


@pytest.mark.parametrize(("schema", "instance", "message"), [
    # a pointer into a bundled draft-07 resource: jsonschema validated the subschema it reached by the 2020-12
    # dialect of the reference (a subschema switches dialect at its own $schema only): its tuple `items` crashed every
    # observation's check with an AttributeError...
    ({"$defs": {"pair": {"$id": "https://x.example/pair", "$schema": D07,
                         "definitions": {"tuple": {"items": [{"type": "string"}]}}}},
      "properties": {"p": {"$ref": "https://x.example/pair#/definitions/tuple"}}}, {"p": [1]},
     "invalid JSON Schema at properties/p: $ref 'https://x.example/pair#/definitions/tuple' leads into a subschema "
     "(#/$defs/pair/definitions/tuple) of the http://json-schema.org/draft-07/schema# part at $defs/pair without a "
     "$schema of its own: jsonschema validates it by the dialect of the reference, "
     "https://json-schema.org/draft/2020-12/schema; refer to that part's root, or give the subschema its own "
     "$schema (beside an $id, below the root)"),
    # ... and its `dependencies` were ignored, silently (draft 7 requires y beside x)
    ({"$defs": {"legacy": {"$id": "urn:legacy", "$schema": D07, "definitions": {"a": {"dependencies": {"x": ["y"]}}}}},
      "properties": {"p": {"$ref": "urn:legacy#/definitions/a"}}}, {"p": {"x": 1}},
     "at properties/p: $ref 'urn:legacy#/definitions/a' leads into a subschema (#/$defs/legacy/definitions/a) of the "
     "http://json-schema.org/draft-07/schema# part at $defs/legacy"),
    # a 2019-09 part's $recursiveRef to a root without $schema: the root was validated as 2019-09
    # a 2019-09 part's $recursiveRef to a root without $schema: the root was validated as 2019-09, its 2020-12
    # prefixItems ignored
    ({"$defs": {"x": {"$schema": D2019, "anyOf": [{"$recursiveRef": "#"}]}}, "prefixItems": [{"type": "string"}],
      "properties": {"p": {"$ref": "#/$defs/x"}}}, {"p": [1]},
     "at $defs/x/anyOf/0: $recursiveRef '#' leads into a subschema (#) of the "
     "https://json-schema.org/draft/2020-12/schema part at (root)"),
])
def test_a_reference_into_another_dialects_part_below_its_schema_is_refused(schema: dict, instance: dict,
                                                                           message: str) -> None:
    """jsonschema switches dialect at a subschema's own `$schema`: a reference reaching a subschema without one
    validates it by the dialect the reference is in, not by the dialect of the part the subschema is written in
    (each `instance` fails by the dialect it is written in: a crash, or passes)."""
    from monitor.checks.json_schema import schema_errors

    try:
        outcome: object = schema_errors(instance, schema)
    except AttributeError:
        outcome = AttributeError
    assert outcome in (None, AttributeError)
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(("schema", "bad", "error"), [
    # the meta-schemas jsonschema ships (jsonschema-specifications) validate a schema the answer holds; a $ref to one
    # was refused as not resolving within the schema
    ({"$ref": "https://json-schema.org/draft/2020-12/schema"}, {"type": "objekt"}, "at type: 'objekt' is not valid"),
    ({"properties": {"s": {"$ref": "http://json-schema.org/draft-07/schema#"}}}, {"s": {"minLength": -1}},
     "at s/minLength: -1 is less than the minimum of 0"),
    ({"properties": {"n": {"$ref": "http://json-schema.org/draft-07/schema#/definitions/nonNegativeInteger"}}},
     {"n": -1}, "at n: -1 is less than the minimum of 0"),
    ({"$ref": "https://json-schema.org/draft/2020-12/meta/validation"}, {"minLength": "x"}, "at minLength: 'x' is not"),
    ({"$ref": "http://json-schema.org/draft-04/schema#"}, {"type": "objekt"}, "at type: 'objekt' is not valid"),
])
def test_a_reference_to_a_bundled_meta_schema_is_accepted_and_runs_offline(
        schema: dict, bad: dict, error: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from monitor.checks.json_schema import schema_errors

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access: {args}")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert (schema_errors(bad, schema) or "").startswith(error)
    assert schema_errors({}, schema) is None


@pytest.mark.parametrize("ref", ["https://example.com/schema.json", "https://json-schema.org/draft/2020-12/nope",
                                 "https://json-schema.org/draft/2020-12/schema#/$defs/nope"])
def test_a_remote_reference_that_is_no_bundled_meta_schema_is_refused(ref: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": {"properties": {"a": {"$ref": ref}}}})
    assert (f"invalid JSON Schema at properties/a: $ref {ref!r} does not resolve within the schema nor to a meta-schema "
            "jsonschema ships (nothing is fetched over the network)") in info.value.errors()[0]["msg"]


def test_list_errors_carry_the_index() -> None:
    with pytest.raises(ValidationError) as info:
        parse_checks([{"type": "contains", "value": "a"}, {"type": "regex", "pattern": "["}])
    assert info.value.errors()[0]["loc"] == (1, "regex", "pattern")


def test_specs_are_immutable() -> None:
    spec = parse_check({"type": "contains", "value": "a"})
    with pytest.raises(ValidationError):
        spec.value = "b"  # type: ignore[misc]


def test_an_invalid_schema_names_every_problem_in_one_run() -> None:
    """check-config names every problem of a config in one run: an invalid JSON Schema names each of its own
    (jsonschema's check_schema names one: the user fixed it and met the next on the following run)."""
    from monitor.checks.json_schema import check_schema

    bad = {"type": "objekt", "properties": {"a": {"minLength": -1}, "b": {"pattern": "("}}, "required": "a"}
    with pytest.raises(ValueError) as e:
        check_schema(bad)
    text = str(e.value)
    for where in ("at type:", "at properties/a/minLength:", "at properties/b/pattern:", "at required:"):
        assert where in text
    assert text.startswith("invalid JSON Schema at ")
    with pytest.raises(ValueError, match=r"; and 2 more$"):
        check_schema({"properties": {f"p{i}": {"minLength": -1} for i in range(12)}})
    assert check_schema({"type": "object", "properties": {"a": {"type": "string"}}}) == {
        "type": "object", "properties": {"a": {"type": "string"}}}


D03 = "http://json-schema.org/draft-03/schema#"


def _never_ends(validate: Callable[[], object]) -> bool:
    """Whether validating recursed without end: RecursionError, or the panic of rpds (under referencing) that it
    raised as such inside a comparison."""
    try:
        validate()
    except BaseException as e:  # noqa: BLE001 - PanicException derives from BaseException only
        return isinstance(e, RecursionError) or type(e).__name__ == "PanicException"
    return False


@pytest.mark.parametrize("schema", [
    # a keyword the part's dialect does not have is ignored by its validator: the load refused these as loops...
    {"$schema": D2019, "dependencies": {"x": {"$ref": "#"}}},
    {"$schema": D2020, "properties": {"a": {"$schema": D2019, "dependencies": {"x": {"$ref": "#/properties/a"}}}}},
    {"$schema": D07, "dependentSchemas": {"x": {"$ref": "#"}}},
    # ... `then` and `else` without an `if` too (jsonschema's `if` applies them) ...
    {"$schema": D07, "then": {"$ref": "#"}},
    {"else": {"allOf": [{"$ref": "#"}]}},
    # ... and as references that resolve nowhere
    {"$schema": D07, "prefixItems": [{"$ref": "#/nope"}]},
    {"$schema": D2019, "notAKeyword": {"x": {"$ref": "#/nope"}}},
])
def test_a_subschema_under_a_keyword_its_dialect_does_not_apply_is_not_followed_on_load(schema: dict) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"x": 1, "a": {"x": 1}}, schema) is None


@pytest.mark.parametrize(("schema", "message"), [
    # draft 3 applies `type` and `disallow` schemas to the value itself: a loop through them raised RecursionError at
    # every observation, accepted on load
    ({"$schema": D03, "type": [{"$ref": "#"}]},
     "invalid JSON Schema at type/0: $ref '#' comes back to where it started (# -> #/type/0 -> #)"),
    ({"$schema": D03, "disallow": [{"$ref": "#"}]},
     "invalid JSON Schema at disallow/0: $ref '#' comes back to where it started (# -> #/disallow/0 -> #)"),
    # a subschema under a keyword no dialect applies, reached by a reference, is validated all the same
    ({"$schema": D07, "$ref": "#/prefixItems/0", "prefixItems": [{"not": {"$ref": "#/prefixItems/0"}}]},
     "invalid JSON Schema at prefixItems/0/not: $ref '#/prefixItems/0' comes back to where it started"),
    ({"$schema": D07, "properties": {"p": {"$ref": "#/extra"}}, "extra": {"$ref": "#/nope"}},
     "invalid JSON Schema at extra: $ref '#/nope' does not resolve within the schema"),
])
def test_a_loop_through_what_the_dialect_applies_is_refused(schema: dict, message: str) -> None:
    from monitor.checks.json_schema import schema_errors

    if "does not resolve" not in message:
        assert _never_ends(lambda: schema_errors({"p": 1}, schema))
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


@pytest.mark.parametrize("schema", [
    # drafts 3 to 7 ignore the keywords beside a $ref: the load refused these as a loop...
    {"$schema": D07, "$ref": "#/definitions/a", "allOf": [{"$ref": "#"}], "definitions": {"a": {"type": "object"}}},
    {"$schema": D03, "$ref": "#/properties/p", "extends": [{"$ref": "#"}], "properties": {"p": {"type": "object"}}},
    # ... and as a reference that resolves nowhere
    {"$schema": D07, "$ref": "#/definitions/a", "properties": {"x": {"$ref": "#/nope"}},
     "definitions": {"a": {"type": "object"}}},
    # a draft-07 part's sibling comes back through a draft-07 $ref, which ignores it the second time
    {"$schema": D2020, "properties": {"a": {"$schema": D07, "$ref": "#/properties/a/definitions/x",
                                            "allOf": [{"$ref": "#/properties/a"}], "definitions": {"x": {}}}}},
])
def test_the_keywords_beside_a_ref_that_validation_ignores_are_not_followed_on_load(schema: dict) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"x": 1, "a": {"x": 1}}, schema) is None
    assert schema_errors(1, schema) == "at (root): 1 is not of type 'object'" or "properties" in schema


@pytest.mark.parametrize(("schema", "message"), [
    # `definitions` beside a $ref are not applied, but a pointer reaches them
    ({"$schema": D07, "$ref": "#/definitions/a",
      "definitions": {"a": {"$ref": "#/definitions/b"}, "b": {"$ref": "#/definitions/a"}}},
     "invalid JSON Schema at definitions/a: $ref '#/definitions/b' comes back to where it started"),
    # so does any ignored sibling
    ({"$schema": D07, "$ref": "#/allOf/0", "allOf": [{"not": {"$ref": "#"}}]},
     "invalid JSON Schema at (root): $ref '#/allOf/0' comes back to where it started (# -> #/allOf/0 -> #/allOf/0/not -> #)"),
    # a validator of a later dialect, descending into a draft-07 subschema with its own $schema, runs the keywords
    # beside its $ref (jsonschema's descend lists the keywords by the parent's class, runs them by the child's)
    ({"$schema": D2020, "allOf": [{"$ref": "#/properties/a"}],
      "properties": {"a": {"$schema": D07, "$ref": "#/properties/a/definitions/x", "allOf": [{"$ref": "#"}],
                           "definitions": {"x": {}}}}},
     "invalid JSON Schema at allOf/0: $ref '#/properties/a' comes back to where it started "
     "(# -> #/allOf/0 -> #/properties/a -> #/properties/a/allOf/0 -> #)"),
])
def test_a_loop_through_what_validation_applies_beside_a_ref_is_refused(schema: dict, message: str) -> None:
    from monitor.checks.json_schema import schema_errors

    assert _never_ends(lambda: schema_errors({"a": 1}, schema))
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


D04 = "http://json-schema.org/draft-04/schema#"
LEGACY = {"$id": "urn:legacy", "$schema": D07, "definitions": {
    "addr": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}, "at": {"$ref": "#/definitions/geo"}}},
    "geo": {"type": "array", "minItems": 2, "maxItems": 2},
    "tuple": {"properties": {"pair": {"items": [{"type": "string"}]}}},
    "beside": {"$ref": "#/definitions/geo", "minItems": 3},
    "outer": {"properties": {"q": {"$ref": "#/definitions/inner"}}},
    "inner": {"$schema": D07, "$ref": "#/definitions/geo", "minItems": 3},
    "named": {"properties": {"q": {"$id": "urn:q", "type": "string"}}}}}


@pytest.mark.parametrize(("schema", "instance", "error"), [
    # a reference below the root of a part of another dialect reaches keywords that mean the same in both (the
    # validators' functions and type checkers are the same): jsonschema validates them by the reference's as written
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/addr"}}},
     {"p": {"city": "x", "at": [1]}}, "at p/at: [1] is too short"),
    ({"$schema": D2019, "$defs": {"n": {"$id": "urn:n", "$schema": D2020, "$defs": {"s": {"minLength": 2}}}},
      "properties": {"p": {"$ref": "urn:n#/$defs/s"}}}, {"p": "x"}, "at p: 'x' is too short"),
    # draft 4 tells integers apart otherwise, which only its `type` reads
    ({"$defs": {"old": {"id": "urn:old", "$schema": D04, "definitions": {"s": {"properties": {"q": {"minLength": 2}}}}}},
      "properties": {"p": {"$ref": "urn:old#/definitions/s"}}}, {"p": {"q": "x"}}, "at p/q: 'x' is too short"),
])
def test_a_reference_into_another_dialects_part_that_means_the_same_in_both_is_accepted_and_runs(
        schema: dict, instance: dict, error: str) -> None:
    from monitor.checks.json_schema import schema_errors

    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors(instance, schema) == error
    assert schema_errors({}, schema) is None


@pytest.mark.parametrize(("schema", "message"), [
    # draft 7's tuple `items` below what the reference reaches (crashed 2020-12's validation)
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/tuple"}}},
     "$ref 'urn:legacy#/definitions/tuple' leads into a subschema (#/$defs/legacy/definitions/tuple) of the "
     "http://json-schema.org/draft-07/schema# part at $defs/legacy without a $schema of its own"),
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/tuple"}}},
     "(beside an $id, below the root); there items at #/$defs/legacy/definitions/tuple/properties/pair means otherwise"),
    # a keyword beside a $ref: run by 2020-12, ignored by draft 7
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/beside"}}},
     "$ref 'urn:legacy#/definitions/beside' leads into a subschema (#/$defs/legacy/definitions/beside)"),
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/beside"}}},
     "there #/$defs/legacy/definitions/beside runs $ref, minItems, in its own dialect $ref"),
    # one with its own $schema (run by draft 7) is entered by 2020-12's descend, which runs the keywords beside its
    # $ref (the [1, 2] it reaches is too short there, valid in draft 7)
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/outer"}}},
     "there what runs beside the $ref at #/$defs/legacy/definitions/inner depends on the dialect entering it"),
    # an id below what the reference reaches could move the base URI otherwise
    ({"$defs": {"legacy": LEGACY}, "properties": {"p": {"$ref": "urn:legacy#/definitions/named"}}},
     "there the id at #/$defs/legacy/definitions/named/properties/q could be read otherwise"),
    # draft 4 tells integers from numbers otherwise (1.0 is no integer there)
    ({"$defs": {"old": {"id": "urn:old", "$schema": D04, "definitions": {"n": {"type": "integer"}}}},
      "properties": {"p": {"$ref": "urn:old#/definitions/n"}}},
     "$ref 'urn:old#/definitions/n' leads into a subschema (#/$defs/old/definitions/n)"),
    ({"$defs": {"old": {"id": "urn:old", "$schema": D04, "definitions": {"n": {"type": "integer"}}}},
      "properties": {"p": {"$ref": "urn:old#/definitions/n"}}},
     "there the types at #/$defs/old/definitions/n are told apart otherwise"),
])
def test_a_reference_into_another_dialects_part_that_means_otherwise_is_refused(schema: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


def test_a_draft_3_extends_of_one_schema_loads_and_runs() -> None:
    """referencing reads draft 3's `extends` as a list of schemas only: crawling one of a single schema raised
    AttributeError (the load crashed with a traceback); jsonschema crawls only for a lookup that needs it."""
    from monitor.checks.json_schema import schema_errors

    schema = {"$schema": D03, "extends": {"type": "object"}, "properties": {"a": {"$ref": "#/definitions/x"}},
              "definitions": {"x": {"type": "string"}}}
    assert parse_check({"type": "json_schema", "schema": schema}).type == "json_schema"
    assert schema_errors({"a": 1}, schema) == "at a: 1 is not of type 'string'"
    assert schema_errors(1, schema) == "at (root): 1 is not of type 'object'"


def test_a_reference_that_makes_jsonschema_crawl_a_draft_3_extends_of_one_schema_is_refused() -> None:
    from monitor.checks.json_schema import schema_errors

    schema = {"$schema": D03, "extends": {"type": "object"}, "properties": {"a": {"$ref": "urn:x"}},
              "definitions": {"x": {"id": "urn:x", "type": "string"}}}
    with pytest.raises(AttributeError):
        schema_errors({"a": 1}, schema)
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert ("invalid JSON Schema at properties/a: $ref 'urn:x' makes jsonschema's lookup crash (AttributeError), as "
            "it reads draft 3's `extends` of one schema as a list: write it `extends: [...]`") \
        in info.value.errors()[0]["msg"]


@pytest.mark.parametrize("dialect", [D03, D04])
def test_a_pattern_property_that_is_no_regular_expression_is_refused_in_drafts_3_and_4(dialect: str) -> None:
    """Drafts 3 and 4's meta-schemas do not ask a `patternProperties` key to be a regex (6 on do): it loaded, and
    every observation's check crashed compiling it (ValueError)."""
    schema = {"$schema": dialect, "patternProperties": {"(": {}}}
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert "invalid JSON Schema at patternProperties: '(' is not a 'regex'" in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(("schema", "message"), [
    # an object where a list of schemas goes: jsonschema's allOf read its keys as schemas, and every observation's
    # check crashed (AttributeError: 'str' object has no attribute 'get')
    ({"allOf": {"$schema": D07, "not": {"type": "string"}}}, "at allOf: a subschema with its own $schema is not of type 'array'"),
    ({"$schema": D07, "type": {"$schema": D04}}, "at type: a subschema with its own $schema is not valid"),  # UnknownType on every observation
])
def test_a_schema_with_its_own_dialect_where_no_schema_goes_is_refused(schema: dict, message: str) -> None:
    """A `$schema` made a part of its own dialect wherever it was: its parent's meta-schema's error about the very
    place it is (no schema goes there) was left out with those about the part's keywords."""
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert message in info.value.errors()[0]["msg"]


def test_an_empty_object_written_where_no_schema_goes_is_named_as_written() -> None:
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": {"allOf": {}, "properties": {"a": {"$schema": D07}}}})
    assert "at allOf: {} is not of type 'array'" in info.value.errors()[0]["msg"]


@pytest.mark.parametrize(("schema", "where", "key"), [
    # YAML reads `1:`, `yes:` and `~:` as a number, a boolean and null: a JSON answer's keys are strings
    ({"properties": {1: {"pattern": "a"}}}, "properties", "1"),  # crashed the load (TypeError)
    ({"properties": {None: {"type": "string"}}}, "properties", "None"),
    ({"patternProperties": {1: {}}}, "patternProperties", "1"),  # loaded; every observation's check crashed
    ({"properties": {"a": {"$ref": "#/$defs/x"}}, "$defs": {"x": {"properties": {True: {}}}}},
     "$defs/x/properties", "True"),  # loaded; never matched any answer's key
    ({"enum": [{"a": {2: 1}}]}, "enum/0/a", "2"),
])
def test_a_key_that_is_no_string_is_refused(schema: dict, where: str, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_check({"type": "json_schema", "schema": schema})
    assert f"invalid JSON Schema at {where}: the key {key} is no string" in info.value.errors()[0]["msg"]
