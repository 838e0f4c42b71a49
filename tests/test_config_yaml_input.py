"""Hostile YAML in monitor.yaml and probe files: every problem is an error naming file, line and field, never a
traceback; `check-config` exits 2 and a reload keeps the running config."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.app import App
from monitor.config import load_config
from monitor.errors import ConfigError
from tests.conftest import write_config
from tests.support.daemon import cli

TARGET = "  - {id: t, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m}"
PROBES = "canaries:\n  - id: c1\n    messages: [{role: user, content: hi}]\n"


def problems(cfg: Path) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(cfg, environ={})
    return [str(i) for i in e.value.issues]


def test_a_probe_file_that_is_not_utf8_names_the_file_line_and_byte(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES)
    (tmp_path / "probes" / "p.yaml").write_bytes(PROBES.encode().replace(b"hi}", b"h\xe9}"))  # Latin-1 'é'
    (issue,) = problems(cfg)
    assert issue.startswith(f"{tmp_path / 'probes' / 'p.yaml'}:3: (file): not UTF-8 text: byte 0xe9")
    run = cli("check-config", "-c", str(cfg))
    assert run.returncode == 2 and "Traceback" not in run.stderr and "not UTF-8 text: byte 0xe9" in run.stderr


def test_merge_keys_merge_with_the_keys_written_beside_them_winning(tmp_path: Path) -> None:
    probes = """\
canaries:
  - id: c1
    messages: &msgs [{role: user, content: hi}]
    params: &params {temperature: 0.5, max_tokens: 10}
  - id: c2
    messages: *msgs
    params:
      <<: *params
      max_tokens: 20
"""
    cfg = load_config(write_config(tmp_path, TARGET, probes), environ={})
    params = cfg.canary("c2").params
    assert params is not None and (params.temperature, params.max_tokens) == (0.5, 20)


@pytest.mark.parametrize(("probes", "expected"), [
    # an alias inside its own anchor
    ("canaries: &a\n  - *a\n", ":1: canaries[0]: an alias refers to the anchor it is inside"),
    # tags safe YAML does not construct
    (PROBES.replace("id: c1", "id: !!python/name:os.system c1"),
     ":2: canaries[0].id: invalid value: could not determine a constructor for the tag"),
    (PROBES.replace("id: c1", "id: !custom c1"), ":2: canaries[0].id: invalid value:"),
    # a list as a key
    ("canaries:\n  - ? [a, b]\n    : 1\n", ":2: canaries[0]: a key must be a plain value"),
    # a merge key given a scalar
    (PROBES + "    params: {<<: 5}\n", ":4: canaries[0].params.<<: a merge key (<<) takes a mapping"),
    # tabs
    ("canaries:\n\t- id: c1\n", ":2: (syntax): invalid YAML: found character that cannot start any token (a tab"),
])
def test_yaml_the_loader_cannot_build_is_an_error_naming_line_and_field(tmp_path: Path, probes: str,
                                                                        expected: str) -> None:
    cfg = write_config(tmp_path, TARGET, probes)
    assert any(expected in p for p in problems(cfg)), problems(cfg)
    run = cli("check-config", "-c", str(cfg))
    assert run.returncode == 2 and "Traceback" not in run.stderr and expected in run.stderr


@pytest.mark.parametrize(("probes", "line"), [
    (PROBES.replace("content: hi", "content: ${GREETING:-hi}"), 3),  # in a flow mapping
    (PROBES + "    tags: [${TAG}]\n", 4),  # in a flow list
])
def test_an_unquoted_variable_in_braces_or_brackets_is_named_as_the_cause(tmp_path: Path, probes: str,
                                                                          line: int) -> None:
    # Found by QA: the YAML error ("did not find expected ',' or '}'") gave no hint that the ${...} needed quotes
    cfg = write_config(tmp_path, TARGET, probes)
    (issue,) = problems(cfg)
    assert issue.startswith(f"{tmp_path / 'probes' / 'p.yaml'}:{line}: (syntax): invalid YAML: "), issue
    assert issue.endswith('(a ${VAR} inside {...} or [...] must be quoted, e.g. "${VAR:-default}": unquoted, YAML '
                          "reads its braces as its own)"), issue
    quoted = probes.replace("${GREETING:-hi}", '"${GREETING:-hi}"').replace("${TAG}", '"${TAG:-t}"')
    assert load_config(write_config(tmp_path, TARGET, quoted), environ={}).canaries[0].id == "c1"


def test_nested_aliases_that_would_expand_into_millions_of_values_are_refused(tmp_path: Path) -> None:
    bomb = "x: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
    for level in "bcdefghij":  # 10^10 values once expanded
        bomb += f"{level}: &{level} [" + ", ".join([f"*{chr(ord(level) - 1)}"] * 10) + "]\n"
    cfg = write_config(tmp_path, TARGET, bomb)
    (issue,) = problems(cfg)
    assert "p.yaml:" in issue and "(file): its aliases (*name) expand to more than 100,000 values" in issue


async def test_a_reload_with_a_file_the_loader_cannot_build_keeps_the_running_config(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, TARGET, PROBES)
    app = App(load_config(cfg, environ={}), registry=CollectorRegistry(), environ={}, serve_http=False)
    await app.start(schedule=False)
    try:
        probes = tmp_path / "probes" / "p.yaml"
        for bad in (PROBES.encode().replace(b"hi}", b"h\xe9}"), b"canaries: &a\n  - *a\n",
                    PROBES.replace("id: c1", "id: !!python/object:os.system c1").encode()):
            probes.write_bytes(bad)
            ok, message = await app.reload()
            assert not ok and str(probes) in message
            assert [c.id for c in app.config.canaries] == ["c1"]
            assert app.metrics.reload_ok._value.get() == 0
    finally:
        await app.stop()


@pytest.mark.parametrize(("value", "expected"), [
    ("1" * 5000, "canaries[0].samples: invalid value: an int of more than 4,300 digits"),  # Python's own limit
    ("!!float x", "canaries[0].samples: invalid value: 'x' cannot be read as a float"),
    ("!!timestamp 2020-13-45", "canaries[0].samples: invalid value: '2020-13-45' cannot be read as a timestamp"),
])
def test_scalars_python_cannot_convert_are_errors_naming_the_field(tmp_path: Path, value: str,
                                                                   expected: str) -> None:
    """A number too long for int() or a tagged value its constructor refuses raised ValueError, not ConfigError:
    check-config exited 1 with a traceback."""
    cfg = write_config(tmp_path, TARGET, PROBES + f"    samples: {value}\n")
    assert [p.split(": ", 1)[1] for p in problems(cfg)] == [expected]
    key = write_config(tmp_path, TARGET, PROBES + f"    ? {'1' * 5000}\n    : 1\n")  # explicit: a plain key is at most 1024
    assert any("canaries[0]: invalid key: an int of more than 4,300 digits" in p for p in problems(key))


def test_a_hex_int_too_long_to_print_is_an_error_not_a_printed_traceback(tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture[str]) -> None:
    """0x and 0b literals convert to an int past the 4,300 digits Python turns into text: pydantic could not show
    it ('<unprintable int object>') and wrote an "Exception ignored ... Traceback" to stderr."""
    cfg = write_config(tmp_path, TARGET, PROBES + f"    samples: 0x{'f' * 5000}\n    checks: [{{type: 0b{'1' * 20000}}}]\n")
    assert [p.split(": ", 1)[1] for p in problems(cfg)] == [
        "canaries[0].samples: invalid value: an int of more than 4,300 digits",
        "canaries[0].checks[0].type: invalid value: an int of more than 4,300 digits"]
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("nested", ["[" * 600 + "]" * 600, "{a: " * 600 + "1" + "}" * 600])
def test_lists_and_mappings_nested_hundreds_deep_are_an_error_not_a_recursion_error(tmp_path: Path,
                                                                                    nested: str) -> None:
    """600 levels are within libyaml's limit (1,000) but building them recursed past Python's stack: RecursionError
    out of load_config, a traceback from check-config."""
    cfg = write_config(tmp_path, TARGET, PROBES + f"    tools: [{{a: {nested}}}]\n")
    (issue,) = problems(cfg)
    assert issue.split(": ", 1)[1].startswith("canaries[0].tools[0].a") and \
        issue.endswith("...: nested more than 64 levels deep (no setting needs that many)"), issue


def test_an_unknown_key_with_a_block_value_is_named_at_the_keys_line(tmp_path: Path) -> None:
    """Found by walkthrough: a misspelt key whose value is a block (`headerz:` then its entries below, `canary:`
    for `canaries:`) was named at the line of its value's first entry, below the key, or past a blank line."""
    target = "  - id: t\n    provider: openai\n    base_url: 'http://127.0.0.1:9/v1'\n    model: m\n    headerz:\n\n      X-A: b"
    cfg = write_config(tmp_path, target, "canary:\n  - id: c1\n",
                       extra="storgae:\n  url: x\n")
    assert problems(cfg) == [f"{tmp_path / 'monitor.yaml'}:6: targets[0].headerz: unknown key; did you mean headers?",
                             f"{tmp_path / 'monitor.yaml'}:12: storgae: unknown key; did you mean storage?",
                             f"{tmp_path / 'probes' / 'p.yaml'}:1: canary: unknown key"]


def test_a_text_field_yaml_reads_as_a_number_says_so_and_to_quote_it(tmp_path: Path) -> None:
    """Found by walkthrough: `content: 1984` or `value: 3.10` was "Input should be a valid string (value: 3.1)":
    not what to do, and not the text written."""
    cfg = write_config(tmp_path, TARGET.replace("model: m", "model: 4"),
                       "canaries:\n  - id: c1\n    messages: [{role: user, content: 1984}]\n    tags: [010, '7']\n"
                       "    checks: [{type: equals, value: 3.10}]\n")
    probes = tmp_path / "probes" / "p.yaml"
    assert problems(cfg) == [
        f"{tmp_path / 'monitor.yaml'}:2: targets[0].model: Input should be a valid string: YAML reads 4 as a number; "
        "quote it ('4') (value: '4')",
        f"{probes}:3: canaries[0].messages[0].content: Input should be a valid string: YAML reads 1984 as a number; "
        "quote it ('1984') (value: '1984')",
        f"{probes}:4: canaries[0].tags[0]: Input should be a valid string: YAML reads 010 as a number; quote it "
        "('010') (value: '010')",
        f"{probes}:5: canaries[0].checks[0].value: Input should be a valid string: YAML reads 3.10 as a number; "
        "quote it ('3.10') (value: '3.10')"]


def test_a_text_field_yaml_reads_as_a_boolean_says_so_and_to_quote_it(tmp_path: Path) -> None:
    """`id: on` (or yes, no, off: YAML 1.1's booleans) was "Input should be a valid string (value: True)", the word
    written shown nowhere."""
    cfg = write_config(tmp_path, TARGET.replace("id: t", "id: yes"),
                       "canaries:\n  - id: on\n    messages: [{role: user, content: 'no'}]\n    targets: [yes]\n"
                       "    tags: [Off, !!bool 'true']\n")
    probes = tmp_path / "probes" / "p.yaml"
    assert problems(cfg) == [
        f"{tmp_path / 'monitor.yaml'}:2: targets[0].id: Input should be a valid string: YAML reads yes as the boolean "
        "true; quote it ('yes') (value: 'yes')",
        f"{probes}:2: canaries[0].id: Input should be a valid string: YAML reads on as the boolean true; quote it "
        "('on') (value: 'on')",
        f"{probes}:4: canaries[0].targets[0]: Input should be a valid string: YAML reads yes as the boolean true; "
        "quote it ('yes') (value: 'yes')",
        f"{probes}:5: canaries[0].tags[0]: Input should be a valid string: YAML reads Off as the boolean false; quote "
        "it ('Off') (value: 'Off')",
        f"{probes}:5: canaries[0].tags[1]: Input should be a valid string (value: True)",  # a tag says it is one
    ]
