"""code_runs: extract the Python code from the completion and run it with asserts in the sandbox."""

from __future__ import annotations

import ast
from typing import Literal

from pydantic import Field, field_validator

from monitor.checks.base import BaseCheck, Context, Verdict, clip
from monitor.checks.fences import blocks
from monitor.checks.sandbox import run_python
from monitor.domain import Observation

_PY_LANGS = ("python", "py", "python3", "")


class CodeRunsCheck(BaseCheck):
    """Pass when the completion's Python code, followed by ``setup`` and ``asserts``, exits cleanly.

    The code is the ``block`` (first, last or all concatenated) of the fenced python (or unlabelled) blocks;
    with ``require_fence: false`` an unfenced completion that parses as Python is used whole. It runs in
    :mod:`monitor.checks.sandbox` with ``timeout_s`` wall time and ``memory_mb`` address space, no network,
    no subprocesses and no writes outside its temporary directory. Asserts are checked for syntax on load.
    """

    type: Literal["code_runs"]
    language: Literal["python"] = "python"
    asserts: list[str] = []
    setup: str = ""
    block: Literal["first", "last", "all"] = "first"
    require_fence: bool = False
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    memory_mb: int = Field(default=256, ge=64, le=8192)

    @field_validator("asserts")
    @classmethod
    def _asserts_parse(cls, v: list[str]) -> list[str]:
        for line in v:
            _parses(line, "assert")
        return v

    @field_validator("setup")
    @classmethod
    def _setup_parses(cls, v: str) -> str:
        return _parses(v, "setup") if v else v


def _parses(source: str, what: str) -> str:
    try:
        ast.parse(source)
    except SyntaxError as e:
        raise ValueError(f"{what} is not valid Python ({e.msg}): {source!r}") from None
    return source


def extract_code(text: str, block: str, require_fence: bool) -> str | None:
    """Return the Python code to run from the completion, or None when there is none."""
    found = [b.body for b in blocks(text) if b.lang in _PY_LANGS]
    if found:
        return "\n\n".join(found) if block == "all" else found[0] if block == "first" else found[-1]
    if require_fence or not text.strip():
        return None
    try:
        ast.parse(text)
    except SyntaxError:
        return None
    return text


def code_runs(spec: CodeRunsCheck, obs: Observation, ctx: Context) -> Verdict:
    """Run the extracted code with the asserts and check it exits cleanly."""
    code = extract_code(obs.call.text, spec.block, spec.require_fence)
    if code is None:
        return False, f"no python code block in {clip(obs.call.text)!r}"
    try:
        ast.parse(code)
    except SyntaxError as e:
        return False, f"syntax error in the code: {e.msg} (line {e.lineno})"
    source = "\n\n".join(part for part in (code, spec.setup, "\n".join(spec.asserts)) if part) + "\n"
    result = run_python(source, timeout_s=spec.timeout_s, memory_mb=spec.memory_mb)
    if result.timed_out:
        return False, f"timed out after {spec.timeout_s:g}s"
    if result.ok:
        return True, f"ran cleanly with {len(spec.asserts)} asserts"
    last = _last_error(result.stderr)
    if result.returncode is not None and result.returncode < 0:
        return False, f"killed by signal {-result.returncode} {clip(last, 120)}".rstrip()
    return False, f"exit {result.returncode}: {clip(last, 160) or 'no error output'}"


def _last_error(stderr: str) -> str:
    """Return the exception line of a traceback plus the source line that raised it (e.g. which assert)."""
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip().strip("^~ ")]
    if not lines:
        return ""
    if len(lines) >= 2 and lines[-2].startswith("    ") and not lines[-2].lstrip().startswith("File "):
        return f"{lines[-1]} at `{lines[-2].strip()}`"
    return lines[-1]


__all__ = ["CodeRunsCheck", "code_runs", "extract_code"]
