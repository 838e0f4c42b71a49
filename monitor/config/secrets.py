"""Read API keys from the environment or a file, the only places secrets come from."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

from monitor.chars import CONTROL, NOT_IN_HEADER
from monitor.config.models import Target
from monitor.config.target import KEY_HEADERS
from monitor.config.yamlsrc import Located, dotted
from monitor.errors import ConfigIssue, SecretError, SecretMissing
from monitor.keylike import shown_path
from monitor.literal_secrets import credential_header
from monitor.secret_file import NotASecretFile, read_secret_file


def resolve_api_key(target: Target, environ: Mapping[str, str] | None = None) -> str | None:
    """Return the target's API key, or None if it names no source; raise SecretError if the source is empty,
    led by the file and line of the target (`monitor.yaml:5: target t: ...`) when it was loaded from one."""
    try:
        return _read_key(target, os.environ if environ is None else environ)
    except SecretError as e:
        raise e.located(target.where) from None


def key_problems(targets: Iterable[Target], environ: Mapping[str, str] | None = None) -> list[SecretError]:
    """Why each of `targets` whose key `resolve_api_key` would refuse cannot be read (never the value)."""
    problems = []
    for target in targets:
        try:
            resolve_api_key(target, environ)
        except SecretError as e:
            problems.append(e)
    return problems


def literal_header_issues(src: Located) -> list[ConfigIssue]:
    """An issue for each credential header (`literal_secrets.credential_header`) of a target whose value is written
    in the config text rather than taken from the environment by a ${VAR}; the value is never shown. The key headers
    (`KEY_HEADERS`) are not: they are refused whatever their value, naming the key settings."""
    issues = []
    targets = src.written("targets")
    for i in range(len(targets) if isinstance(targets, list) else 0):
        headers = src.written("targets", i, "headers")
        for name, value in headers.items() if isinstance(headers, dict) else ():
            loc = ("targets", i, "headers", name)
            if isinstance(name, str) and credential_header(name) and name.lower() not in KEY_HEADERS \
                    and isinstance(value, str) and value.strip() \
                    and loc not in src.referenced and loc not in src.stand_ins:
                issues.append(ConfigIssue(src.path, dotted(loc[:-1]), f"header {name!r} carries a credential, "
                                          "which is never read from the config text: put it in an environment "
                                          f"variable and write its value as ${{VAR}} (e.g. {name}: \"${{MY_VAR}}\")",
                                          src.line_of(loc)))
    return issues


def _read_key(target: Target, env: Mapping[str, str]) -> str | None:
    if target.api_key_env:
        value = env.get(target.api_key_env, "").strip()
        if not value:
            raise SecretMissing(f"target {target.id}: environment variable {target.api_key_env} "
                                "(named by api_key_env) is not set or empty")
        return _sendable(value, f"target {target.id}: environment variable {target.api_key_env} (named by api_key_env)")
    if target.api_key_file:
        try:
            value = read_secret_file(target.api_key_file).strip()
        except NotASecretFile as e:
            raise SecretError(f"target {target.id}: api_key_file {shown_path(target.api_key_file)} {e}") from None
        except OSError as e:
            # a key given for the file's name (api_key_file: ${OPENAI_API_KEY}, meant for api_key_env) is not shown
            raise SecretMissing(f"target {target.id}: cannot read api_key_file {shown_path(target.api_key_file)}: "
                                f"{e.strerror or e}") from None
        except UnicodeDecodeError:  # the bytes are not echoed: they are the key
            raise SecretError(f"target {target.id}: api_key_file {target.api_key_file} is not UTF-8 text") from None
        except ValueError:  # open() refuses a NUL in a path
            raise SecretMissing(f"target {target.id}: cannot read api_key_file {target.api_key_file!r}: the path "
                                "holds a NUL character") from None
        if not value:
            raise SecretMissing(f"target {target.id}: api_key_file {target.api_key_file} is empty")
        return _sendable(value, f"target {target.id}: api_key_file {target.api_key_file}")
    return None


def _sendable(key: str, source: str) -> str:
    """`key`, if an HTTP header can carry it; else a SecretError naming `source` and what is wrong, never the key.

    A key with a line break (two lines pasted, a CR from a Windows file) or a non-ASCII character (a typographic
    quote) failed every call instead, its message (`Illegal header value b'Bearer sk-...'`) holding the key in a
    form the redaction did not match, so it was stored, served and alerted in the clear."""
    found = NOT_IN_HEADER.search(key)
    if found is None:
        return key
    ch = found.group()
    what = "a line break" if ch in "\r\n" else "a control character" if CONTROL.match(ch) else "a non-ASCII character"
    raise SecretError(f"{source}: the key holds {what} (character {found.start() + 1} of {len(key)}), which an HTTP "
                      "header cannot carry; the key is not shown")
