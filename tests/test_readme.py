"""What README.md says that a test can hold it to, beyond its configuration and metrics references
(test_config_reference.py, test_metrics_grid.py):

- its example YAML loads as written: the monitor.yaml of "Running it for real" (with the shipped probes), its
  `alerts:` section, the canary and `llm_judge` check of the configuration reference, and the web config file of
  "TLS and basic auth". They are what a newcomer copies first; a field renamed in the code and not in them would
  be refused on the first `check-config`;
- every command of `llm-monitor` is run or named in it, and every option of a command is named where the command
  is (a command line of a code block and its comments, or a paragraph naming the command; an option by its long or
  its short form); and every command named in backticks in it (or in the other READMEs) is one it has;
- its reload paragraph names every setting only a restart applies (the store's, the listener's, the drift engine's);
- its Alerts section names every alertname the daemon pushes to Alertmanager, which routes and silences match on;
- its Architecture names modules where they are, and every module and package of monitor/ (a module moved or
  split off, leadership.py from app.py, kept its old place there).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import load_config
from tests.support.pki import Pki, bcrypt_hash

ROOT = Path(__file__).resolve().parent.parent


def example(first_line: str) -> str:
    """The README's ```yaml block that begins with `first_line`."""
    found = [b for b in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
             if b.splitlines()[0].strip() == first_line]
    assert len(found) == 1, f"README has {len(found)} yaml blocks starting {first_line!r}"
    return found[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "probes").symlink_to(ROOT / "probes")  # the example's `probes: [./probes]`
    return tmp_path


def test_the_monitor_yaml_example_and_its_alerts_section_load(folder: Path) -> None:
    cfg = folder / "monitor.yaml"
    cfg.write_text(example("# monitor.yaml") + example("alerts:"), encoding="utf-8")
    config = load_config(cfg, environ={})
    assert [t.id for t in config.targets] == ["gpt-mini", "claude"]
    assert len(config.canaries) >= 60 and [s.name for s in config.alerts.sinks] == ["hook", "slack", "am", "pd"]


def test_the_canary_example_with_its_judge_check_loads(folder: Path) -> None:
    canary, judge = example("canaries:"), example("- type: llm_judge")
    checks = "      - {type: contains, value: [kill, pkill, taskkill], mode: any}\n"
    assert checks in canary
    (folder / "mine").mkdir()
    (folder / "mine" / "kill.yaml").write_text(canary.replace(checks, checks + judge), encoding="utf-8")
    monitor = example("# monitor.yaml").replace("probes: [./probes]", "probes: [./mine]")
    monitor = monitor.replace("targets:\n", "targets:\n  - {id: judge, provider: openai, base_url: "
                              "https://api.openai.com/v1, model: gpt-4o-mini-2024-07-18, canaries: listed}\n", 1)
    (folder / "monitor.yaml").write_text(monitor, encoding="utf-8")
    [loaded] = load_config(folder / "monitor.yaml", environ={}).canaries
    assert [c.type for c in loaded.checks] == ["refusal", "contains", "llm_judge"]


def test_the_web_config_example_loads(tmp_path: Path) -> None:
    Pki.make(tmp_path)  # the example's file names, with a real certificate, key and hash
    for made, named in (("cert.pem", "server.crt"), ("key.pem", "server.key"), ("ca.pem", "clients-ca.crt")):
        (tmp_path / made).rename(tmp_path / named)
    text = example("# web.yml")
    assert "$2y$10$..." in text
    (tmp_path / "web.yml").write_text(text.replace("$2y$10$...", bcrypt_hash("pw")), encoding="utf-8")
    (tmp_path / "monitor.yaml").write_text(example("# monitor.yaml").replace("probes: [./probes]", "probes: []"),
                                           encoding="utf-8")
    config = load_config(tmp_path / "monitor.yaml", environ={}, web_config_file=str(tmp_path / "web.yml"))
    assert config.web.tls_server_config is not None and list(config.web.basic_auth_users) == ["prometheus"]


def test_the_architecture_names_every_module_where_it_is() -> None:
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Architecture", 1)[1]
    block = section.split("```", 2)[1]
    package = ROOT / "monitor"
    named: set[Path] = set()
    folders: list[Path] = []  # the entry's own folder and those its text named so far: where a bare name.py is
    for line in block.splitlines():
        if not line.startswith("  "):
            continue  # the `monitor/` heading
        if re.match(r"  \S", line):  # a new entry
            folders = []
        for name in re.findall(r"(?<![\w/-])([a-z_]+(?:/[a-z_]+)*(?:\.py\b|/(?!\w)))", line):
            found = [where / name for where in (package, *folders) if (where / name).exists()]
            assert found, f"README's Architecture names {name}, which is not in monitor/ there: {line.strip()}"
            named.add(found[0].resolve())
            if name.endswith("/"):
                folders.append(found[0])
    modules = {p.resolve() for p in package.iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").exists()}
    assert sorted(p.name for p in modules - named) == [], "modules of monitor/ that README's Architecture omits"


def test_the_alerts_section_names_every_alertname_pushed_to_alertmanager() -> None:
    from monitor.alerts.sinks.alertmanager import ALERTNAMES

    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Alerts", 1)[1].split("\n## ", 1)[0]
    assert [name for name in ALERTNAMES.values() if f"`{name}`" not in section] == []


def _units(text: str) -> list[str]:
    """The README cut where it documents commands: each command line of a code block (with the comment lines that
    continue it) and each paragraph of prose."""
    out: list[list[str]] = []
    for i, part in enumerate(re.split(r"^```[^\n]*\n", text, flags=re.M)):
        if i % 2 == 0:  # prose
            out += [[paragraph] for paragraph in re.split(r"\n\s*\n", part)]
            continue
        entry: list[str] | None = None
        for line in part.splitlines():
            if "llm-monitor" in line and not line.lstrip().startswith("#"):
                entry = [line]
                out.append(entry)
            elif entry is not None and line.lstrip().startswith("#"):
                entry.append(line)
            else:
                entry = None
    return ["\n".join(u) for u in out]


def _documents(unit: str, path: tuple[str, ...]) -> bool:
    """Whether a part of the README is about command `path` (() : the options before any command): it runs it
    (`llm-monitor baseline pin ...`), or names it in backticks (`baseline pin`; a subcommand by its own name,
    `pin`, beside its parent's)."""
    if not path:
        return re.search(r"llm-monitor\s+--", unit) is not None
    command = r"\s+".join(map(re.escape, path))
    if re.search(rf"llm-monitor(?:\s+--[\w.-]+(?:[ =][^-\s]\S*)?)*\s+{command}(?![\w-])", unit):
        return True
    names = [" ".join(path)] + ([path[-1]] if len(path) > 1 and re.search(rf"\b{path[-2]}\b", unit) else [])
    return any(re.search(rf"`{re.escape(name)}[` ]", unit) for name in names)


def test_every_command_and_option_is_documented_where_the_command_is() -> None:
    """Each command is run or named somewhere, and each of its options is named (by its long or short form) where
    the command is: an option documented only beside another command's same-named one (`--since` of `export`
    explained only under `baseline pin`) is not found by a reader of the command it belongs to."""
    import argparse

    from monitor.cli import parser

    units = _units((ROOT / "README.md").read_text(encoding="utf-8"))
    missing = []
    # the options every command repeats (--log-level, --log-format, taken before or after it): documented once,
    # with the options before any command
    everywhere = {o for a in parser()._actions if a.option_strings for o in a.option_strings}

    def walk(p: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        section = "\n".join(u for u in units if _documents(u, path))
        if not section:
            missing.append(" ".join(path))
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif action.option_strings and "--help" not in action.option_strings \
                    and not (path and set(action.option_strings) <= everywhere) \
                    and not any(re.search(rf"{re.escape(o)}(?![\w-])", section) for o in action.option_strings):
                missing.append(" ".join((*path, action.option_strings[-1])))

    walk(parser(), ())
    assert missing == [], "commands and options README.md does not name where it documents the command"


def test_every_command_the_readmes_name_exists() -> None:
    """A command named in backticks (`drift`, `baseline show`, `alerts test|pending|resend`, `llm-monitor probe
    --canary`) is one `llm-monitor` has: a subcommand where its command has some, and no bare word after a command
    that takes no argument. Found by a newcomer's walk-through: README called `drift` "`drift list`", which argparse
    refuses (`unrecognized arguments: list`)."""
    import argparse

    from monitor.cli import parser

    def subcommands(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        return next((dict(a.choices) for a in p._actions if isinstance(a, argparse._SubParsersAction)), {})

    def takes_words(p: argparse.ArgumentParser) -> bool:
        return any(not a.option_strings and not isinstance(a, argparse._SubParsersAction) for a in p._actions)

    top = subcommands(parser())
    wrong = []
    for readme in ("README.md", "deploy/README.md", "probes/README.md", "benchmarks/README.md"):
        text = re.sub(r"```.*?```", "", (ROOT / readme).read_text(encoding="utf-8"), flags=re.S)
        for span in text.split("`")[1::2]:
            words = span.removeprefix("llm-monitor ").split()
            if not words or words[0] not in top:
                continue
            p, path = top[words[0]], [words[0]]
            for i, word in enumerate(words[1:], 2):
                if not re.fullmatch(r"[a-z][a-z|-]*", word):
                    break  # an option, a placeholder (`...`, `ID`) or a value
                if i < len(words) and re.fullmatch(r"[a-z]+", words[i]) and word not in subcommands(p):
                    break  # a phrase, a log line's message (`drift event not stored`), not a command
                subs = subcommands(p)
                if subs:
                    missing = [w for w in word.split("|") if w not in subs]
                    if missing:
                        wrong.append(f"{readme}: `{span}`: {' '.join(path)} has no {'|'.join(missing)}")
                        break
                    p, path = subs[word.split("|")[0]], [*path, word]
                    continue
                if not takes_words(p):
                    wrong.append(f"{readme}: `{span}`: {' '.join(path)} takes no {word!r}")
                break
    assert wrong == [], "commands the READMEs name that llm-monitor does not have"


def test_the_reload_paragraph_names_every_setting_only_a_restart_applies() -> None:
    """Found by a newcomer's walk-through: the store's session timeouts wait for a restart (a reload says so), which
    the reload paragraph's list of such settings left out."""
    from monitor.config.loader import STORE_SESSION

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    paragraph = next(p for p in re.split(r"\n\s*\n", text) if p.startswith("A reload (SIGHUP or `POST /-/reload`)"))
    restart = paragraph.split("change at once;", 1)[1].split("only at the next restart", 1)[0]
    assert [name for name in ("storage.url", "http.listen", "drift", *STORE_SESSION) if f"`{name}`" not in restart] \
        == []
