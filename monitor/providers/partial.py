"""What a call had received when it was cancelled: a shutdown whose grace period ran out while an answer streamed.

The runner watches each call (`watching_partial`); a provider notes the result it fills as the answer comes
(`note_partial`), its streamed text set as the stream's reading ends, cancelled or not. The runner then stores the
call as `cancelled` with the answer so far (the provider billed it), not as a call that said nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from monitor.domain import CallResult, ErrorType
from monitor.providers.hooks import noting
from monitor.providers.scrub import scrub_call

NOT_ANSWERED = "shut down before the answer came"


@dataclass
class Partial:
    """The result a provider is filling for the call being watched (None: it has not begun one)."""

    result: CallResult | None = None


_PARTIAL: ContextVar[Partial | None] = ContextVar("llm_monitor_partial", default=None)


@contextlib.contextmanager
def watching_partial() -> Iterator[Partial]:
    """Watch the calls made inside (this task only) for the result each provider fills."""
    with noting(_PARTIAL, Partial()) as partial:
        yield partial


def note_partial(result: CallResult) -> None:
    """A provider's note of the result it fills for the call being watched, if one is."""
    partial = _PARTIAL.get()
    if partial is not None:
        partial.result = result


def interrupted(partial: Partial, stream: bool, secrets: tuple[str, ...]) -> CallResult:
    """The result of a call cancelled at shutdown: `cancelled`, with what the answer had said so far (its secrets
    scrubbed, as a provider's results are)."""
    had = partial.result
    if had is None or not (had.text or had.refusal_text or had.tool_calls):
        return CallResult(error_type=ErrorType.CANCELLED, error_message=NOT_ANSWERED, stream=stream,
                          http_status=had.http_status if had is not None else None)
    call = dataclasses.replace(had, finish_reason=None, raw_finish_reason=None, error_type=ErrorType.CANCELLED,
                               error_message=f"shut down before the answer ended: the {len(had.text)} characters "
                                             "received are kept", latency_s=None)
    return scrub_call(call, secrets)
