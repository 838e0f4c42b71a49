"""`llm-monitor refusal --jsonl FILE`: add `refusal` and `refusal_score` to each line, written to stdout."""

from __future__ import annotations

import sys
from collections.abc import Callable

from rich.markup import escape

from monitor.commands.common import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, err_console


class _WriteFailed(Exception):
    """Standard output refused a line (a full disk): told apart from the input's read errors."""


class _Stdout:
    def write(self, text: str, /) -> None:
        self._guarded(lambda: sys.stdout.write(text))

    def flush(self) -> None:  # what is still buffered fails here, not at exit
        self._guarded(sys.stdout.flush)

    @staticmethod
    def _guarded(step: Callable[[], object]) -> None:
        try:
            step()
        except BrokenPipeError:
            raise  # a closed stdout pipe (| head) is not an error: the console-script entry ends quietly
        except OSError as e:
            raise _WriteFailed(e.strerror or str(e)) from e


def main(path: str) -> int:
    from monitor.refusal import AnnotateError, annotate_jsonl

    out = _Stdout()
    try:
        if path == "-":
            annotate_jsonl("/dev/stdin", out, name="<stdin>")
        else:
            annotate_jsonl(path, out)
        out.flush()
    except _WriteFailed as e:
        err_console.print("[red]error:[/] " + escape(f"standard output: cannot write: {e}"), highlight=False)
        return EXIT_FAIL
    except AnnotateError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        return EXIT_CONFIG
    except BrokenPipeError:
        raise
    except OSError as e:
        err_console.print("[red]error:[/] " + escape(f"cannot read {path}: {e.strerror or e}"), highlight=False)
        return EXIT_CONFIG
    return EXIT_OK
