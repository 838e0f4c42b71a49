"""`llm-monitor refusal --jsonl FILE`: add `refusal` and `refusal_score` to each line, written to stdout."""

from __future__ import annotations

import sys

from rich.markup import escape

from monitor.commands.common import EXIT_CONFIG, EXIT_OK, err_console


def main(path: str) -> int:
    from monitor.refusal import AnnotateError, annotate_jsonl

    try:
        if path == "-":
            annotate_jsonl("/dev/stdin", sys.stdout, name="<stdin>")
        else:
            annotate_jsonl(path, sys.stdout)
    except AnnotateError as e:
        err_console.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        return EXIT_CONFIG
    except OSError as e:
        err_console.print("[red]error:[/] " + escape(f"cannot read {path}: {e.strerror or e}"), highlight=False)
        return EXIT_CONFIG
    return EXIT_OK
