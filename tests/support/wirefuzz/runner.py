"""The loopback server that writes each case's bytes, and the runs of cases through the providers and the daemon."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.domain import ErrorType
from tests.support.wirefuzz.case import KINDS, Case
from tests.support.wirefuzz.invariants import violations


class WireServer:
    """An asyncio server on 127.0.0.1 that answers each POST with the raw bytes of the case its `model` names."""

    def __init__(self) -> None:
        self.cases: dict[str, Case] = {}
        self.url = ""
        self._server: asyncio.Server | None = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = json.loads(await reader.readexactly(length))
            case = self.cases[body["model"]]
            writer.write(case.raw)
            await writer.drain()
            if case.stall:  # until the client gives up and closes the connection (a bound, should it not)
                await asyncio.wait_for(reader.read(), (case.timeout_s or 10.0) + 5)
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WireServer]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()


@dataclass
class Outcome:
    case: Case
    result: Any
    problems: list[str]


async def run_cases(cases: list[Case], build: Callable[[str, str], Any], timeout_s: float = 10.0,
                    concurrency: int = 8) -> list[Outcome]:
    """Serve `cases` and call a provider per kind (`build(kind, base_url)`) for each; check every result."""
    from monitor.providers import ChatRequest

    server = WireServer()
    outcomes: list[Outcome] = []
    async with server.serving():
        server.cases = {c.id: c for c in cases}
        providers = {kind: build(kind, server.url) for kind in KINDS}
        gate = asyncio.Semaphore(concurrency)

        async def one(case: Case) -> None:
            req = ChatRequest(model=case.id, messages=[{"role": "user", "content": "hi"}], stream=case.stream,
                              timeout_s=case.timeout_s or timeout_s)
            async with gate:
                try:
                    r: Any = await providers[case.kind].complete(req)
                except Exception as e:  # the invariant under test: complete() never raises
                    r = e
            outcomes.append(Outcome(case, r, violations(case, r)))

        try:
            await asyncio.gather(*(one(c) for c in cases))
        finally:
            for p in providers.values():
                await p.aclose()
    return sorted(outcomes, key=lambda o: int(o.case.id[4:]))


def daemon_provider(kind: str, url: str) -> Any:
    """The provider the daemon builds for a target of `kind` at `url`."""
    from monitor.config.models import Target
    from monitor.providers import build_provider

    base = url + "/v1" if kind == "openai" else url
    return build_provider(Target(id=f"fuzz-{kind}", provider=kind, base_url=base, model="m"), "sk-fuzz-key")


PROBES = """\
canaries:
  - id: fuzz
    messages: [{role: user, content: hi}]
    checks: [{type: contains, value: world}, {type: length, max: 100}]
"""


def _kept(value: Any) -> Any:
    """What the store keeps of a value (README: a NUL, which PostgreSQL text cannot hold, is kept as U+FFFD),
    written here rather than taken from `monitor.store.convert.storable`, the code under test."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


async def store_cases(cases: list[Case], folder: Path, store_url: str | None = None) -> list[str]:
    """Run `cases` through the daemon (an App on SQLite under `folder`, or on the empty database `store_url`, one
    target per case, the runner making the calls and storing them); return what went wrong: an observation not
    stored or not read back as it was made."""
    from monitor.app import App
    from monitor.config import load_config

    problems: list[str] = []
    server = WireServer()
    async with server.serving():
        server.cases = {c.id: c for c in cases}
        (folder / "probes").mkdir(parents=True, exist_ok=True)
        (folder / "probes" / "p.yaml").write_text(PROBES)
        targets = "\n".join(
            f"  - {{id: {c.id}, provider: {c.kind}, base_url: '{server.url}{'/v1' if c.kind == 'openai' else ''}', "
            f"model: {c.id}, stream: {str(c.stream).lower()}, timeout: {c.timeout_s or 10}}}" for c in cases)
        cfg = folder / "monitor.yaml"
        url = store_url or f"sqlite:///{folder / 'm.db'}"
        cfg.write_text(f"targets:\n{targets}\nprobes: [./probes]\n"
                       f"storage: {{url: \"{url}\"}}\n")
        app = App(load_config(cfg, environ={}), environ={}, serve_http=False, analyse=False)
        await app.start(schedule=False)
        made: dict[str, Any] = {}
        try:
            for canary, target in app.config.pairs():
                try:
                    for obs in await app.runner.run(canary, target, trigger="manual"):
                        made[target.id] = obs
                except Exception as e:
                    problems.append(f"{target.id}: run raised {e!r}"[:200])
        finally:
            await app.stop()
        for c in cases:
            stored = app.store.observations(target=c.id, limit=5)
            obs = made.get(c.id)
            if obs is None:
                problems.append(f"{c.id}: no observation {c.mutations}")
            elif len(stored) != 1:
                problems.append(f"{c.id}: {len(stored)} observations stored {c.mutations}")
            else:
                back = stored[0]
                for name in ("error_type", "text", "raw_finish_reason", "usage", "ttft_s", "latency_s"):
                    if getattr(back.call, name) != _kept(getattr(obs.call, name)):
                        problems.append(f"{c.id}: stored {name} {getattr(back.call, name)!r} is not "
                                        f"{getattr(obs.call, name)!r}"[:200])
            if obs is not None and obs.call.error_type == ErrorType.INTERNAL:
                problems.append(f"{c.id}: internal: {obs.call.error_message}")
        app.store.close()
    return problems

