"""The invariants of loading a config folder, whatever its files hold (`load_violations`, `cli_violations`)."""

from __future__ import annotations

import re
import traceback

from monitor.errors import ConfigError, ConfigIssue
from tests.support.cfgfuzz.seeds import SECRETS

MAX_ISSUE = 1500  # characters of one issue as printed: a 1 MB value is not echoed whole
# Python's own words for a type mix-up: a reason that says this names no field a user wrote
_GENERIC = re.compile(r"unhashable|can only concatenate|has no attribute|sequence item|not subscriptable|"
                      r"object is not iterable|unsupported operand|must be str, not|indices must be|NoneType|"
                      r"Traceback|function-after|<class '")


def describe(e: BaseException) -> str:
    """The exception and where it was raised (the innermost frame of monitor/, else the last)."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if "/monitor/" in f.filename] or frames
    where = f" at {ours[-1].filename.rsplit('/', 2)[-2:]}:{ours[-1].lineno}" if ours else ""
    return f"{type(e).__name__}{where}: {str(e)[:150]}"


def issue_violations(issue: ConfigIssue, files: set[str]) -> list[str]:
    out = []
    text = str(issue)
    if issue.file not in files:
        out.append(f"issue names no file of the case: {issue.file[:80]!r}")
    if not isinstance(issue.field, str) or not issue.field:
        out.append(f"issue without a field: {text[:200]}")
    if not isinstance(issue.reason, str) or not issue.reason.strip():
        out.append(f"issue without a reason: {text[:200]}")
    if len(text) > MAX_ISSUE:
        out.append(f"issue of {len(text):,} characters: {text[:150]}")
    if _GENERIC.search(issue.reason):
        out.append(f"reason in Python's words: {text[:200]}")
    out += [f"secret in a message: {text[:200]}" for s in SECRETS if s in text]
    return out


def load_violations(result: object, files: set[str]) -> list[str]:
    """What is wrong with what load_config gave (a Config, or the exception it raised)."""
    if isinstance(result, ConfigError):
        if not result.issues:
            return ["ConfigError without issues"]
        return [v for issue in result.issues for v in issue_violations(issue, files)]
    if isinstance(result, BaseException):
        return [f"raised {describe(result)}"]
    return []


def cli_violations(code: object, output: str, loaded: object) -> list[str]:
    """What is wrong with `check-config`'s exit code and output, given what load_config gave."""
    out = []
    if isinstance(code, BaseException):
        return [f"check-config raised {describe(code)}"]
    if code not in (0, 2):
        out.append(f"check-config exited {code}: {output[-300:]}")
    if isinstance(loaded, ConfigError) and code != 2:
        out.append(f"check-config exited {code} where loading failed")
    if "Traceback" in output:
        out.append(f"check-config printed a traceback: {output[-300:]}")
    out += [f"secret in check-config's output: {output[:200]}" for s in SECRETS if s in output]
    return out
