"""Read API keys from the environment or a file, the only places secrets come from."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from monitor.config.models import Target
from monitor.errors import SecretError
from monitor.keylike import shown_path


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


def _read_key(target: Target, env: Mapping[str, str]) -> str | None:
    if target.api_key_env:
        value = env.get(target.api_key_env, "").strip()
        if not value:
            raise SecretError(f"target {target.id}: environment variable {target.api_key_env} "
                              "(named by api_key_env) is not set or empty")
        return value
    if target.api_key_file:
        try:
            value = Path(target.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            # a key given for the file's name (api_key_file: ${OPENAI_API_KEY}, meant for api_key_env) is not shown
            raise SecretError(f"target {target.id}: cannot read api_key_file {shown_path(target.api_key_file)}: "
                              f"{e.strerror or e}") from None
        except UnicodeDecodeError:  # the bytes are not echoed: they are the key
            raise SecretError(f"target {target.id}: api_key_file {target.api_key_file} is not UTF-8 text") from None
        except ValueError:  # open() refuses a NUL in a path
            raise SecretError(f"target {target.id}: cannot read api_key_file {target.api_key_file!r}: the path holds "
                              "a NUL character") from None
        if not value:
            raise SecretError(f"target {target.id}: api_key_file {target.api_key_file} is empty")
        return value
    return None
