"""`llm-monitor store scrub`: replace every secret the config names wherever the store holds it.

The secrets are the daemon's own: each target's API key (its variable or file, as the providers read it) and the
values of its credential headers (`literal_secrets.header_secrets`, taken from the environment), each
alert sink's secrets (what the sink redacts: its URL, and the pieces of it a receiver may echo alone, its path, the
path's segments holding a digit and its query values, only from url_env, url_file or a ${VAR}), and the HTTP reload
token, each from MIN_SECRET characters on. Each is replaced by `<redacted>` with the providers' `scrub_text`, so the
start of one that a cut-short message kept goes too. The store side is monitor.store.scrub, which reads only the
rows holding a secret's needle (`Secret.needle`). A secret that cannot be read is named (never its value) and left
out; with none at all nothing is done. Exit codes: 0 done (or nothing to do), 1 the store failed meanwhile, 2 bad
config or store.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rich.markup import escape
from sqlalchemy.exc import SQLAlchemyError

from monitor.commands.common import EXIT_FAIL, EXIT_OK, err_console, load_or_exit, open_store_or_exit
from monitor.config.loader import Config
from monitor.config.secrets import resolve_api_key
from monitor.config.validate import redact_url
from monitor.console import write_line
from monitor.counted import counted
from monitor.errors import SecretError
from monitor.literal_secrets import header_secrets
from monitor.min_secret import MIN_SECRET
from monitor.providers.scrub import MIN_CUT, scrub_text
from monitor.store.repository import driver_message
from monitor.store.scrub import BATCH, Scrubbed, scrub_tables


@dataclass(frozen=True)
class Secret:
    """A secret's value and what it is, by name (`target t's API key`): only the name is ever shown."""

    name: str
    value: str
    url: bool = False  # a sink's URL that is a secret (`Sink.url_secret`)
    whole: bool = False  # a piece of such a URL (`url_pieces`): its start cut short is ordinary text (`serv…`)

    @property
    def needle(self) -> str:
        """What a stored text holding this secret holds, whole or cut as far as `shortest`: the scrub reads only the
        rows holding a needle. A key's first MIN_CUT characters. A URL's host and port (its user and password too
        when it has them), or at least MIN_SECRET characters from there: never its scheme (`http`, `https://` begin
        most URLs a store holds, and the scrub would read most of it), nor a host of a letter or two. A piece of a
        secret URL whole."""
        if self.whole:
            return self.value
        if not self.url:
            return self.value[:MIN_CUT]
        rest = self.value.partition("://")[2]
        return rest[:max(len(re.split(r"[/?#]", rest, maxsplit=1)[0]), MIN_SECRET)]

    @property
    def shortest(self) -> int:
        """The shortest start of it scrubbed where a message was cut short: the start that holds its needle (a cut
        inside a URL's scheme or host shows nothing of its secret part); a piece of a secret URL only whole."""
        return self.value.index(self.needle) + len(self.needle)


def scrub(config_path: str, batch: int = BATCH, environ: Mapping[str, str] | None = None) -> int:
    """Scrub every secret `config_path` names from its store; print a line per table."""
    config = load_or_exit(config_path)
    secrets, notes = configured_secrets(config, os.environ if environ is None else environ)
    for note in notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    if not secrets:
        write_line("no secret found in the config (no target's API key, sink secret or reload token could be read): "
                   "nothing to scrub, the store is unchanged")
        return EXIT_OK
    values = tuple(dict.fromkeys(s.value for s in secrets))  # scrub_text takes the longer first
    shortest: dict[str, int] = {}
    for s in secrets:
        shortest[s.value] = min(s.shortest, shortest.get(s.value, s.shortest))
    store = open_store_or_exit(config, create=False)
    try:
        write_line(f"scrubbing {counted(len(secrets), 'secret')} ({_names(secrets)}) from "
                   f"{redact_url(store.safe_url)}")
        scrub_tables(store.engine, sorted({s.needle for s in secrets}),
                     lambda text: scrub_text(text, values, shortest), batch=batch, done=_print)
    except SQLAlchemyError as e:  # one line, as `_store_failed`; a driver's message quoting a value is scrubbed too
        said = scrub_text(driver_message(e), values, shortest)
        err_console.print(f"[bold red]error:[/] the store failed: {escape(said)} (the tables above are done; run it "
                          "again to go on)", highlight=False)
        return EXIT_FAIL
    finally:
        store.close()
    return EXIT_OK


def configured_secrets(config: Config, environ: Mapping[str, str]) -> tuple[list[Secret], list[str]]:
    """The secrets `config` names that can be read from `environ` and its files, and a note for each that cannot."""
    from monitor.alerts.sinks import build_sink
    from monitor.alerts.sinks.base import url_pieces

    found, notes = [], []
    for target in config.targets:
        found += [Secret(f"target {target.id}'s header {name}", value) for name in target.headers
                  for value in header_secrets({name: target.headers[name]}) if len(value) >= MIN_SECRET]
        try:
            key = resolve_api_key(target, environ)
        except SecretError as e:
            notes.append(f"{e}: this key is not scrubbed")
            continue
        if key is not None and len(key) >= MIN_SECRET:  # as the providers: a shorter one would mangle every text
            found.append(Secret(f"target {target.id}'s API key", key))
        elif key is not None:
            notes.append(f"target {target.id}: its key is shorter than {MIN_SECRET} characters: not scrubbed (as "
                         "in what its calls return)")
    for spec in config.alerts.sinks:
        try:
            sink = build_sink(spec, config.alerts, environ)
        except SecretError as e:
            notes.append(f"{e}: this sink's secrets are not scrubbed")
            continue
        pieces = dict((v, what) for what, v in reversed(url_pieces(sink.url))) if sink.url_secret else {}
        found += [Secret(f"sink {spec.name}'s URL", v, url=True) if sink.url_secret and v == sink.url
                  else Secret(f"sink {spec.name}'s {pieces[v]}", v, whole=True) if v in pieces
                  else Secret(f"sink {spec.name}'s secret", v) for v in sink.secrets]
        if sink.too_short:
            notes.append(f"sink {spec.name}: {counted(sink.too_short, 'secret')} shorter than {MIN_SECRET} "
                         "characters: not scrubbed (as in what the sink redacts)")
    token = environ.get(config.http.reload_token_env, "").strip()
    if len(token) >= MIN_SECRET:
        found.append(Secret(f"the reload token ({config.http.reload_token_env})", token))
    return found, notes


def _names(secrets: list[Secret]) -> str:
    """What is scrubbed, each name once (a URL piece's spellings, decoded and encoded, counted after it)."""
    spellings: dict[str, int] = {}
    for s in secrets:
        spellings[s.name] = spellings.get(s.name, 0) + 1
    return ", ".join(name if n == 1 else f"{name} ({n} spellings)" for name, n in spellings.items())


def _print(s: Scrubbed) -> None:
    busy = f" ({counted(s.busy, 'row')} changed meanwhile, left as written: run it again)" if s.busy else ""
    write_line(f"{s.table}: {counted(s.rows, 'row')} rewritten{busy}", flush=True)
