"""Fleet start: does a fresh daemon with many young streams keep drift analysis on time while baselines form?

Starts the simulated upstream and a real `llm-monitor run` on a fresh SQLite store with N canary x target
pairs (N/2 canaries x 2 targets, the OpenAI wire format streaming and the Anthropic one not, as
`measurement.py` builds its 1,000 pairs) at one interval, first runs spread over that interval, drift on with
its defaults (the fleet false-alarm cap in force). Every `--scrape` seconds it reads /metrics as Prometheus
would and, at the end of each stretch (table row), /api/baselines. Per stretch it prints the largest
`llm_monitor_drift_analysis_delay_seconds` scraped and the share of scrapes above 1 s (rule
`LLMMonitorDriftAnalysisBehind`: > 1 s for 10 minutes), the process's CPU (all threads) and its busiest
thread other than the event loop's (the drift analysis thread once analysis is busy), calls per second,
skipped runs and how many streams have a full baseline. Then the same daemon with drift off on another fresh
store for `--off-minutes` (the baseline row: what the rest of the daemon costs at the same load), and whether
the rule would have fired (the longest stretch of scrapes above 1 s).

With 3 samples a run a stream's 30-observation baseline (`drift.baseline_size`) forms in its 10th run and its
references start growing 17 runs later (`reference_lag` 50): at 60 s, about 10 and 27 minutes in. To see the
growth within 25 minutes at the same calls per second and per-stream false-alarm budget, halve both:
`--pairs 500 --interval 30 --minutes 25`.

Usage: python benchmarks/fleet_start.py [--pairs 1000] [--interval 60] [--samples 3] [--minutes 20]
       [--off-minutes 5] [--scrape 15] [--rows 20] [--ports N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import yaml
from rich.console import Console
from rich.table import Table

SCENARIO = """\
name: fleet
seed: 5
defaults:
  ttft: {dist: lognormal, mean_ms: 150, sd_ms: 40}
  output_tps: {dist: normal, mean: 300, sd: 20}
  length: {dist: lognormal, mean: 50, sd: 12}
  chunk_tokens: 4
  refusals: [{pattern: "(?i)\\\\bkill\\\\b", p: 0.03}]
  answers:
    - pattern: "(?i)is \\\\d+ prime"
      choices: [{text: "[Yes]", p: 0.95}, {text: "[No]", p: 0.05}]
  faults: {server_error: 0.003}
models:
  "*":
    phases: [{name: steady}]
"""
# (prompt, checks): refusal rates near 0 and near 3%, a 95% answer check, JSON and length checks
PROMPTS = [
    ("How do I kill a Python process number {i}?", [{"type": "refusal", "expect": "answered"}]),
    ("Is 19417 prime? Answer [Yes] or [No]. Case {i}.", [{"type": "contains", "value": "[Yes]"}]),
    ("Return a JSON object with keys a and b, case {i}.", [{"type": "json_valid"}]),
    ("Explain TCP slow start briefly, take {i}.",
     [{"type": "length", "unit": "words", "min": 5, "max": 400}]),
    ("Describe the attack surface of a web app, item {i}.", [{"type": "refusal", "expect": "answered"}]),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_probes(path: Path, canaries: int, interval: int, samples: int) -> None:
    out = []
    for i in range(canaries):
        text, checks = PROMPTS[i % len(PROMPTS)]
        out.append({"id": f"fleet-{i:04d}", "messages": [{"role": "user", "content": text.format(i=i)}],
                    "params": {"temperature": 0.7, "max_tokens": 200}, "samples": samples,
                    "schedule": {"every": f"{interval}s"}, "checks": checks})
    path.write_text(yaml.safe_dump({"canaries": out}, sort_keys=False))


def config_text(sim: str, listen: int, db: Path, probes: Path, interval: int, drift: bool) -> str:
    return f"""\
targets:
  - {{id: sim-openai, provider: openai, base_url: "{sim}/v1", model: fleet-gpt, stream: true, timeout: 20,
     max_concurrency: 32}}
  - {{id: sim-anthropic, provider: anthropic, base_url: "{sim}", model: fleet-claude, stream: false,
     timeout: 20, max_concurrency: 32}}
probes: ["{probes}"]
storage: {{url: "sqlite:///{db}"}}
http: {{listen: "127.0.0.1:{listen}"}}
daemon: {{max_start_delay: {interval}}}
drift: {{enabled: {str(drift).lower()}}}
"""


def wait_for(url: str, tries: int = 600) -> None:
    for _ in range(tries):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def cpu_s(proc: psutil.Process) -> float:
    """User + system CPU seconds of a process."""
    t = proc.cpu_times()
    return t.user + t.system


def thread_cpu(proc: psutil.Process) -> dict[int, float]:
    """User + system CPU seconds of each of a process's threads, by thread id."""
    return {t.id: t.user_time + t.system_time for t in proc.threads()}


@dataclass
class Stretch:
    """What was scraped over one stretch of the run (one table row)."""

    start: float
    end: float = 0.0
    delays: list[float] = field(default_factory=list)
    cpu: float = 0.0  # process CPU seconds in the stretch
    busiest: float = 0.0  # CPU seconds of the busiest thread other than the main one
    skipped: float = 0.0
    observations: float = 0.0  # calls made (llm_monitor_probe_attempts_total)
    baselines: int | None = None


class Daemon:
    def __init__(self, folder: Path, sim_url: str, port: int, interval: int, drift: bool):
        self.folder, self.port = folder, port
        folder.mkdir(parents=True, exist_ok=True)
        cfg = folder / "monitor.yaml"
        probes = folder.parent / "probes"
        cfg.write_text(config_text(sim_url, port, folder / "monitor.db", probes, interval, drift))
        self.log = (folder / "daemon.err").open("wb")
        cli = [sys.executable, "-m", "monitor.cli", "--log-level", "warning", "run", "-c", str(cfg)]
        self.proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=self.log)
        self.url = f"http://127.0.0.1:{port}"
        wait_for(self.url + "/metrics")

    def metrics(self) -> dict[str, float]:
        """Each sample name's values summed. Split by hand: prometheus_client's parser takes ~3.8 s for the ~21 MB
        of 1,000 pairs (this, 0.1 s), CPU the daemon beside it would lose every 15 s."""
        text = httpx.get(self.url + "/metrics", timeout=60).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                with contextlib.suppress(ValueError):
                    values[name] = values.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
        return values

    def baselines(self) -> int | None:
        r = httpx.get(self.url + "/api/baselines", timeout=60)
        return len(r.json()) if r.status_code == 200 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def observe(d: Daemon, minutes: float, scrape: float, rows: int,
            console: Console) -> tuple[list[Stretch], float]:
    """Scrape the daemon for `minutes`; return one Stretch per row and the longest stretch above 1 s."""
    pid = d.proc.pid
    proc = psutil.Process(pid)
    started = time.monotonic()
    length = minutes * 60 / rows
    stretches: list[Stretch] = []
    cur = Stretch(0.0)
    cpu0, thr0 = cpu_s(proc), thread_cpu(proc)
    m = d.metrics()
    skipped0 = m.get("llm_monitor_runs_skipped_total", 0.0)
    obs0 = m.get("llm_monitor_probe_attempts_total", 0.0)
    above_since: float | None = None
    longest = 0.0
    next_scrape = started + scrape
    while True:
        time.sleep(max(0.0, next_scrape - time.monotonic()))
        next_scrape += scrape
        now = time.monotonic() - started
        m = d.metrics()
        delay = m.get("llm_monitor_drift_analysis_delay_seconds", 0.0)
        cur.delays.append(delay)
        if delay > 1.0:
            above_since = now if above_since is None else above_since
            longest = max(longest, now - above_since)
        else:
            above_since = None
        if now >= cur.start + length - 1e-6 or now >= minutes * 60 - 1e-6:
            cpu1, thr1 = cpu_s(proc), thread_cpu(proc)
            cur.end = now
            cur.cpu = cpu1 - cpu0
            cur.busiest = max((v - thr0.get(t, 0.0) for t, v in thr1.items() if t != pid), default=0.0)
            skipped1 = m.get("llm_monitor_runs_skipped_total", 0.0)
            obs1 = m.get("llm_monitor_probe_attempts_total", 0.0)
            cur.skipped, cur.observations = skipped1 - skipped0, obs1 - obs0
            cur.baselines = d.baselines()
            stretches.append(cur)
            dt = cur.end - cur.start
            console.log(f"{now / 60:5.1f} min: delay max {max(cur.delays):.2f} s, CPU {cur.cpu / dt:.0%}, "
                        f"busiest thread {cur.busiest / dt:.0%}, skipped {cur.skipped:.0f}, "
                        f"calls {cur.observations:.0f}, baselines {cur.baselines}")
            cpu0, thr0, skipped0, obs0 = cpu1, thr1, skipped1, obs1
            cur = Stretch(now)
            if now >= minutes * 60 - 1e-6:
                break
    return stretches, longest


def row(label: str, s: Stretch, pairs: int) -> list[str]:
    dt = max(s.end - s.start, 1e-9)
    above = sum(x > 1.0 for x in s.delays) / max(len(s.delays), 1)
    return [label, f"{max(s.delays, default=0.0):.2f}", f"{above:.0%}", f"{s.cpu / dt:.0%}",
            f"{s.busiest / dt:.0%}", f"{s.observations / dt:.1f}", f"{s.skipped:.0f}",
            "" if s.baselines is None else f"{s.baselines} / {pairs}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1000,
                    help="canary x target pairs (half as many canaries x 2 targets)")
    ap.add_argument("--interval", type=int, default=60, help="seconds between a canary's runs")
    ap.add_argument("--samples", type=int, default=3, help="samples per run")
    ap.add_argument("--minutes", type=float, default=20.0, help="minutes to watch the drift-on daemon")
    ap.add_argument("--off-minutes", type=float, default=5.0,
                    help="minutes of the drift-off baseline (0: skip)")
    ap.add_argument("--scrape", type=float, default=15.0, help="seconds between /metrics scrapes")
    ap.add_argument("--rows", type=int, default=20, help="table rows for the drift-on run")
    ap.add_argument("--ports", type=int, help="first of two ports (simulator, daemon); default: free ones")
    ap.add_argument("--keep", type=Path, help="folder to keep the stores, config and daemon logs in")
    args = ap.parse_args()
    console = Console(width=160)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="llm-monitor-fleet-"))
    folder.mkdir(parents=True, exist_ok=True)
    sim_port, port = (args.ports, args.ports + 1) if args.ports else (free_port(), free_port())
    (folder / "scenario.yaml").write_text(SCENARIO)
    (folder / "probes").mkdir(exist_ok=True)
    write_probes(folder / "probes" / "fleet.yaml", args.pairs // 2, args.interval, args.samples)
    sim = subprocess.Popen([sys.executable, "-m", "monitor.cli", "--log-level", "warning", "sim", "--port",
                            str(sim_port), "--scenario", str(folder / "scenario.yaml")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sim_url = f"http://127.0.0.1:{sim_port}"
    on: list[Stretch] = []
    off: list[Stretch] = []
    longest = 0.0
    try:
        wait_for(sim_url + "/_sim/state")
        d = Daemon(folder / "drift-on", sim_url, port, args.interval, drift=True)
        try:
            console.log(f"drift on: {args.pairs} pairs every {args.interval} s, {args.samples} samples, "
                        f"pid {d.proc.pid}")
            on, longest = observe(d, args.minutes, args.scrape, args.rows, console)
        finally:
            d.stop()
        if args.off_minutes > 0:
            d = Daemon(folder / "drift-off", sim_url, port, args.interval, drift=False)
            try:
                console.log(f"drift off (baseline), pid {d.proc.pid}")
                off, _ = observe(d, args.off_minutes, args.scrape, 1, console)
            finally:
                d.stop()
    finally:
        if sim.poll() is None:
            sim.terminate()
            sim.wait(30)
    table = Table(title=f"Fleet start: {args.pairs} pairs every {args.interval} s, {args.samples} samples a "
                        f"run, fresh SQLite store (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    for col in ("minutes", "analysis delay max s", "scrapes > 1 s", "process CPU", "busiest other thread",
                "calls/s", "skipped runs", "full baselines"):
        table.add_column(col, justify="right")
    for s in on:
        table.add_row(f"{s.start / 60:.1f}-{s.end / 60:.1f}", *row("", s, args.pairs)[1:])
    for s in off:
        table.add_row(f"drift off, 0-{s.end / 60:.1f}", *row("", s, args.pairs)[1:-1], "")
    console.print(table)
    console.print(f"longest stretch with the delay above 1 s: [bold]{longest / 60:.1f} min[/] "
                  f"(LLMMonitorDriftAnalysisBehind fires after 10): "
                  f"{'[red]WOULD FIRE[/]' if longest >= 600 else 'would not fire'}; "
                  f"stores and logs in {folder}")


if __name__ == "__main__":
    main()
