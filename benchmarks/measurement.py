"""How honest and how cheap are the daemon's measurements?

Runs the real pipeline (providers, runner, quality checks, SQLite store, metrics) against the simulated upstream
in a separate process with a known injected TTFT and output rate, 64 calls in flight, and, in the same run, a
bare `openai` SDK loop making the same calls. Prints:
  - measured minus injected TTFT and total latency (p50, p99), daemon next to the bare loop;
  - calls per second of the daemon versus the bare loop (ratio);
  - resident memory of a daemon process with 1,000 canary x target pairs scheduled, next to the same process
    before it builds the app (imports only).
Usage: python benchmarks/measurement.py [--calls 640] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import openai
from rich.console import Console
from rich.table import Table

TTFT_MS, TPS, TOKENS = 500, 50.0, 40
SCENARIO = f"""\
name: bench
seed: 1
defaults:
  ttft: {{dist: constant, mean_ms: {TTFT_MS}}}
  output_tps: {TPS}
  length: {{dist: constant, mean: {TOKENS}}}
  chunk_tokens: 8
models:
  "*":
    phases: [{{name: steady}}]
"""
MESSAGES = [{"role": "user", "content": "Explain how a refrigerator works."}]


def start_sim(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    (folder / "scenario.yaml").write_text(SCENARIO)
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "monitor.cli", "sim", "--port", str(port), "--scenario",
                             str(folder / "scenario.yaml")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            httpx.get(url + "/v1/models", timeout=0.5)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("simulator did not start")


def injected_latency(output_tokens: int) -> float:
    return TTFT_MS / 1000 + output_tokens / TPS


async def bare_loop(base_url: str, calls: int, concurrency: int) -> tuple[list[tuple[float, float, int]], float]:
    """The baseline: the SDK alone, timing the same way (first chunk with content, end of stream)."""
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="sk-bench", max_retries=0)
    sem = asyncio.Semaphore(concurrency)
    out: list[tuple[float, float, int]] = []

    async def one() -> None:
        async with sem:
            t0 = time.perf_counter()
            ttft = None
            tokens = 0
            stream = await client.chat.completions.create(model="bench", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                                          stream_options={"include_usage": True})
            async for chunk in stream:
                if ttft is None and chunk.choices and chunk.choices[0].delta.content:
                    ttft = time.perf_counter() - t0
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            out.append((ttft or 0.0, time.perf_counter() - t0, tokens))

    await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the connection pool: one per slot
    out.clear()
    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - start
    await client.close()
    return out, calls / elapsed


async def daemon_pipeline(base_url: str, calls: int, concurrency: int, folder: Path,
                          drift: bool = True) -> tuple[list[tuple[float, float, int]], float]:
    """The daemon's own path: runner -> provider -> quality -> store -> metrics, `concurrency` runs at once."""
    from prometheus_client import CollectorRegistry

    from monitor.app import App
    from monitor.config import load_config

    (folder / "probes").mkdir(exist_ok=True)
    (folder / "probes" / "p.yaml").write_text(
        "canaries:\n  - id: fridge\n    messages: [{role: user, content: 'Explain how a refrigerator works.'}]\n"
        "    checks: [{type: length, unit: words, min: 5}]\n")
    (folder / "monitor.yaml").write_text(
        f"targets:\n  - {{id: sim, provider: openai, base_url: '{base_url}/v1', model: bench, api_key_env: K, "
        f"max_concurrency: {concurrency}}}\nprobes: [./probes]\nstorage: {{url: 'sqlite:///{folder}/bench.db'}}\n"
        f"drift: {{enabled: {str(drift).lower()}}}\n")
    config = load_config(folder / "monitor.yaml", environ={"K": "sk-bench"})
    app = App(config, registry=CollectorRegistry(), environ={"K": "sk-bench"}, serve_http=False)
    await app.start(schedule=False)
    canary, target = config.pairs()[0]
    sem = asyncio.Semaphore(concurrency)

    async def one() -> list:
        async with sem:
            return await app.runner.run(canary, target)

    await asyncio.gather(*(one() for _ in range(concurrency)))  # warm the connection pool: one per slot
    start = time.perf_counter()
    batches = await asyncio.gather(*(one() for _ in range(calls)))
    elapsed = time.perf_counter() - start
    await app.stop()
    obs = [o for b in batches for o in b]
    bad = [o for o in obs if not o.ok]
    if bad:
        print(f"warning: {len(bad)} failed calls: {bad[0].call.error_type} {bad[0].call.error_message}")
    return [(o.call.ttft_s or 0.0, o.call.latency_s or 0.0, o.call.usage.output_tokens or 0) for o in obs if o.ok], \
        calls / elapsed


RSS_CHILD = r"""
import asyncio, os, sys, psutil
from pathlib import Path
folder = Path(sys.argv[1])
import monitor.app, monitor.config  # imports first: the baseline
before = psutil.Process().memory_info().rss
from prometheus_client import CollectorRegistry
from monitor.app import App
from monitor.config import load_config
cfg = load_config(folder / "monitor.yaml", environ={"K": "k"})
async def main():
    app = App(cfg, registry=CollectorRegistry(), environ={"K": "k"}, serve_http=True)
    await app.start()
    await asyncio.sleep(2)
    after = psutil.Process().memory_info().rss
    jobs = len(app.scheduler.next_runs())
    await app.stop()
    print(before, after, jobs)
asyncio.run(main())
"""


def rss_with_pairs(folder: Path, pairs: int = 1000) -> tuple[float, float, int]:
    n_canaries = pairs // 2
    (folder / "probes").mkdir(exist_ok=True)
    lines = ["canaries:"]
    for i in range(n_canaries):
        lines.append(f"  - id: canary-{i:04d}\n    messages: [{{role: user, content: 'Prompt number {i}?'}}]\n"
                     f"    samples: 3\n    schedule: {{every: 1h}}\n    checks: [{{type: contains, value: x}}]")
    (folder / "probes" / "p.yaml").write_text("\n".join(lines) + "\n")
    (folder / "monitor.yaml").write_text(
        "targets:\n  - {id: a, provider: openai, base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: K}\n"
        "  - {id: b, provider: anthropic, base_url: 'http://127.0.0.1:9', model: m, api_key_env: K}\n"
        f"probes: [./probes]\nstorage: {{url: 'sqlite:///{folder}/rss.db'}}\nhttp: {{listen: '127.0.0.1:0'}}\n"
        "daemon: {max_start_delay: 3600}\n")
    out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(folder)], capture_output=True, text=True, check=True)
    before, after, jobs = out.stdout.split()
    return int(before) / 2**20, int(after) / 2**20, int(jobs)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=640)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sim, url = start_sim(folder)
        try:
            # interleave: bare, daemon, bare, daemon (machines are noisy)
            results: dict[str, list] = {"bare SDK loop": [[], []], "daemon pipeline": [[], []],
                                        "daemon pipeline, drift off": [[], []]}
            for _ in range(2):
                for name in results:
                    if name == "bare SDK loop":
                        rows, rate = asyncio.run(bare_loop(url, args.calls // 2, args.concurrency))
                    else:
                        rows, rate = asyncio.run(daemon_pipeline(url, args.calls // 2, args.concurrency, folder,
                                                                 drift=name == "daemon pipeline"))
                    results[name][0] += rows
                    results[name][1].append(rate)
        finally:
            sim.terminate()
            sim.wait()
        table = Table(title=f"Measurement error vs injected (TTFT {TTFT_MS} ms, {TPS:.0f} tok/s, {TOKENS} tokens), "
                            f"{args.concurrency} in flight, {args.calls} calls each")
        for col in ("path", "TTFT err p50", "TTFT err p99", "latency err p50", "latency err p99", "calls/s"):
            table.add_column(col, justify="right")
        rates = {}
        for name, (rows, rate_list) in results.items():
            ttft_err = [t - TTFT_MS / 1000 for t, _, _ in rows]
            lat_err = [lat - injected_latency(n) for _, lat, n in rows]
            rates[name] = float(np.mean(rate_list))
            table.add_row(name, f"{pct(ttft_err, 50):.1f} ms", f"{pct(ttft_err, 99):.1f} ms",
                          f"{pct(lat_err, 50):.1f} ms", f"{pct(lat_err, 99):.1f} ms", f"{rates[name]:.1f}")
        console = Console(width=140)
        console.print(table)
        ratio = rates["daemon pipeline"] / rates["bare SDK loop"]
        console.print(f"throughput ratio daemon / bare loop: [bold]{ratio:.2f}x[/] (target >= 0.8x)")
        before, after, jobs = rss_with_pairs(folder)
        mem = Table(title="Resident memory, one daemon process")
        for col in ("state", "RSS"):
            mem.add_column(col, justify="right")
        mem.add_row("imports only (baseline)", f"{before:.1f} MB")
        mem.add_row(f"{jobs} canary x target pairs scheduled, HTTP serving", f"{after:.1f} MB")
        console.print(mem)
        console.print(f"RSS with 1,000 pairs: [bold]{after:.1f} MB[/] (target <= 150 MB); "
                      f"python {sys.version.split()[0]}, {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
