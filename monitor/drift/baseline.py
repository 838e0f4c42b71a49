"""The reference behaviour of one canary x target: bounded samples and running counts, JSON-serialisable."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from monitor.domain import Observation
from monitor.drift.names import CATEGORY, CONTINUOUS, IDENTITY, RATE, signal_type
from monitor.drift.outages import OutageRuns, outage_failure
from monitor.drift.settings import DriftSettings
from monitor.drift.signals import EmbedFn, SignalValue, embed_texts, finite, normalise, text_similarity


@dataclass(slots=True)
class Baseline:
    """What "normal" looks like for one canary x target.

    Built from the first ``baseline_size`` successful observations (``source="first_n"``), from a pinned set
    of observations (``"pinned"``), or from current behaviour after an accept (``"accepted"``). It keeps a
    bounded sample of completions (for similarity, exact repeats, MMD and evidence), running counts for
    rates and categories, a bounded sample of continuous values, and the set of identity values (served
    model, fingerprint). Failed calls count in the error rate from the first answer on, except runs of them long
    enough to be an outage (``OutageRuns``, ``baseline_outage_run``), which are left out. In-control observations
    may later extend the counts and samples up to their caps (``absorb``), so a 30-sample start does not limit
    rate precision forever. ``to_json``/``from_json`` round-trip it for storage: as version 1 while no failure is
    held aside or left out (the format releases before the outage rule wrote and read), else as version 2, which
    adds ``outages``.
    """

    canary: str
    target: str
    size: int
    source: str = "first_n"
    note: str = ""
    created_at: str | None = None
    first_obs_id: str | None = None
    last_obs_id: str | None = None
    last_obs_at: str | None = None
    count: int = 0
    ready: bool = False
    texts: list[str] = field(default_factory=list)  # raw completions (bounded)
    mode_text: str | None = None  # normalised most common completion (None: no repeats worth watching)
    mode_share: float = 0.0
    representative: int = 0  # index of the medoid text
    embeddings: list[list[float]] | None = None
    rates: dict[str, list[int]] = field(default_factory=dict)  # signal -> [true count, total]
    values: dict[str, list[float]] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    identity: dict[str, list[str]] = field(default_factory=dict)
    similarity_k: int = 15
    outages: OutageRuns = field(default_factory=OutageRuns)  # failed calls held aside or left out while forming
    _norm: list[str] = field(default_factory=list, repr=False)

    # -- building -------------------------------------------------------------------------------------
    def add(self, obs: Observation, signals: dict[str, SignalValue], settings: DriftSettings) -> None:
        """Add one observation while the baseline is being built (failed calls count for error rates only)."""
        if not obs.ok:
            self.add_error(signals, settings)
            return
        self.add_raw(obs.id, obs.started_at.isoformat(), obs.text, signals, settings)

    def add_raw(
        self, obs_id: str, at: str, text: str, signals: Mapping[str, SignalValue], settings: DriftSettings
    ) -> None:
        """Add one successful observation given by id, time, text and signals."""
        if self.ready:
            return
        self._end_run(settings)
        self.count += 1
        self.first_obs_id = self.first_obs_id or obs_id
        self.last_obs_id = obs_id
        self.last_obs_at = at
        if len(self.texts) < settings.text_sample:
            self.texts.append(text)
        self._record(signals, caps=None, identity=True)

    def add_error(self, signals: Mapping[str, SignalValue], settings: DriftSettings) -> None:
        """Count a failed call in the error rate and error types while building, from the first answer on and
        unless it is part of an outage: a target that has never answered (a wrong key or URL at deploy, an outage
        when a baseline is reset) has no behaviour yet, and its failures would teach the baseline an error rate
        near 100%; a run of failures in a row is held aside until it ends, and left out if it was an outage
        (``OutageRuns``)."""
        if self.ready or self.count == 0:
            return
        outage = outage_failure(signals)
        if outage is None:
            return
        if outage:
            self.outages.fail(signals, settings.baseline_outage_run)
            return
        self._end_run(settings)  # a content-policy error: the provider answered
        self._record(signals, caps=None, identity=False)

    def _end_run(self, settings: DriftSettings) -> None:
        for signals in self.outages.end(settings.baseline_outage_run):
            self._record(signals, caps=None, identity=False)

    def normalised_texts(self) -> list[str]:
        """Return the normalised baseline completions (built on demand: only the MMD reads them all)."""
        return [normalise(t) for t in self.texts]

    @property
    def full(self) -> bool:
        """Tell whether enough successful observations were collected."""
        return self.count >= self.size

    def finalize(self, settings: DriftSettings, embed: EmbedFn | None = None) -> None:
        """Derive the text statistics and mark the baseline ready (an open run of failures is judged as it stands)."""
        self._end_run(settings)
        norm = self.normalised_texts()
        self._norm = norm[: self.similarity_k]  # kept: every observation's similarity is measured against them
        n = len(norm)
        if n:
            mode, hits = Counter(norm).most_common(1)[0]
            self.mode_share = hits / n
            self.mode_text = mode if hits >= 2 and self.mode_share >= settings.exact_match_min_share else None
            if self.mode_text is not None:
                self.rates["exact_match"] = [hits, n]
            sims = _loo_similarity(norm, self._norm)
            if sims:
                self.values["similarity"] = sims
                self.representative = int(np.argmax(sims))
            if embed is not None:
                self.embeddings = embed_texts(embed, self.texts)
        self.ready = True

    def similarity_texts(self) -> list[str]:
        """Return the bounded sample of normalised baseline texts used for similarity."""
        return self._norm

    # -- growth ----------------------------------------------------------------------------------------
    def absorb(self, signals: Mapping[str, SignalValue], settings: DriftSettings, skip: set[str]) -> None:
        """Extend the reference with one in-control observation (bounded by the caps)."""
        self._record(signals, caps=settings, identity=False, skip=skip)

    def _record(
        self,
        signals: Mapping[str, SignalValue],
        caps: DriftSettings | None,
        identity: bool,
        skip: set[str] | None = None,
    ) -> None:
        for name, value in signals.items():
            if value is None or (skip and name in skip):
                continue
            kind = signal_type(name)
            if kind == RATE:
                if name == "exact_match" and not self.ready:
                    continue
                r = self.rates.setdefault(name, [0, 0])
                if caps is None or r[1] < caps.rate_reference_cap:
                    r[0] += bool(value)
                    r[1] += 1
            elif kind == CONTINUOUS:
                x = finite(value)
                if name == "similarity" and not self.ready:
                    continue
                vals = self.values.setdefault(name, [])
                if x is not None and (caps is None or len(vals) < caps.reference_cap):
                    vals.append(x)
            elif kind == CATEGORY:
                cats = self.categories.setdefault(name, {})
                if caps is None or sum(cats.values()) < caps.reference_cap:
                    cats[str(value)] = cats.get(str(value), 0) + 1
            elif kind == IDENTITY and identity:
                ids = self.identity.setdefault(name, [])
                if str(value) not in ids:
                    ids.append(str(value))

    # -- reading ---------------------------------------------------------------------------------------
    def rate(self, name: str) -> tuple[int, int]:
        """Return (true count, total) of a rate signal."""
        r = self.rates.get(name, [0, 0])
        return r[0], r[1]

    def representative_text(self) -> str:
        """Return the medoid baseline completion (evidence)."""
        return self.texts[self.representative] if self.texts else ""

    def to_json(self) -> dict[str, Any]:
        """Return the baseline as a JSON-ready dict."""
        out: dict[str, Any] = {
            "version": 1 if self.outages.idle else 2,
            "canary": self.canary,
            "target": self.target,
            "size": self.size,
            "source": self.source,
            "note": self.note,
            "created_at": self.created_at,
            "first_obs_id": self.first_obs_id,
            "last_obs_id": self.last_obs_id,
            "last_obs_at": self.last_obs_at,
            "count": self.count,
            "ready": self.ready,
            "texts": self.texts,
            "mode_text": self.mode_text,
            "mode_share": self.mode_share,
            "representative": self.representative,
            "embeddings": self.embeddings,
            "rates": self.rates,
            "values": self.values,
            "categories": self.categories,
            "identity": self.identity,
            "similarity_k": self.similarity_k,
        }
        if not self.outages.idle:
            out["outages"] = self.outages.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Baseline:
        """Rebuild a baseline stored with ``to_json`` (version 1: stored before the outage rule, or nothing held aside
        or left out; version 2 adds ``outages``)."""
        if data.get("version") not in (1, 2):
            raise ValueError(f"unsupported baseline version {data.get('version')!r}")
        b = cls(**{k: v for k, v in data.items() if k not in ("version", "outages")})
        b.outages = OutageRuns.from_json(data.get("outages") or {})
        b._norm = [normalise(t) for t in b.texts[: b.similarity_k]]
        return b

    @classmethod
    def build(
        cls,
        canary: str,
        target: str,
        observations: Iterable[tuple[Observation, dict[str, SignalValue]]],
        settings: DriftSettings,
        *,
        source: str = "pinned",
        note: str = "",
        created_at: datetime | None = None,
        embed: EmbedFn | None = None,
        limit: int | None = None,
    ) -> Baseline:
        """Build a ready baseline from observations with their signals (e.g. a pinned time range)."""
        b = cls.new(canary, target, settings, source=source, note=note, created_at=created_at)
        for obs, sig in observations:
            if limit is not None and b.count >= limit:
                break
            b.add(obs, sig, settings)
        b.finalize(settings, embed)
        return b

    @classmethod
    def new(
        cls,
        canary: str,
        target: str,
        settings: DriftSettings,
        *,
        source: str = "first_n",
        note: str = "",
        created_at: datetime | None = None,
    ) -> Baseline:
        """Start an empty baseline that fills with the next successful observations."""
        b = cls(canary, target, settings.baseline_size, source=source, note=note)
        b.created_at = created_at.isoformat() if created_at else None
        b.similarity_k = settings.similarity_sample
        return b


def _loo_similarity(texts: list[str], sample: list[str]) -> list[float]:
    """Each text's similarity to the sample, leaving itself out (the sample is the first texts)."""
    out = []
    for i, t in enumerate(texts):
        sim = text_similarity(t, [s for j, s in enumerate(sample) if j != i])
        if sim is not None:
            out.append(sim)
    return out
