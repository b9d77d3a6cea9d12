"""OSC responsiveness of a running engine: ping latency while a job samples, and continue -> first progress.

Starts ``jukebox-bridge serve --model debug`` as a subprocess on a free loopback port (so the client
does not share the engine's interpreter lock), then measures from a python-osc client:

* ping -> pong round trip, idle and while a job is sampling (p50 / p99 / max);
* ``continue`` -> ``accepted``, -> first ``progress`` (``queued``), -> first progress of real work.

    .venv/bin/python benchmarks/bench_osc.py [--pings 500] [--continues 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

ROOT = Path(__file__).resolve().parents[1]


class Client:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(10)
        self.port, self.engine = self.sock.getsockname()[1], ("127.0.0.1", port)

    def send(self, verb: str, rid: str, params: dict | None = None) -> float:
        b = OscMessageBuilder(f"/jukebox/{verb}")
        for a in [self.port, rid] + ([json.dumps(params)] if params is not None else []):
            b.add_arg(a)
        t = time.perf_counter()
        self.sock.sendto(b.build().dgram, self.engine)
        return t

    def until(self, address: str, pred=lambda p: True) -> tuple[float, list]:
        while True:
            m = OscMessage(self.sock.recv(70000))
            if m.address == f"/jukebox/{address}" and pred(m.params):
                return time.perf_counter(), m.params


def start_engine(render_dir: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", "0",
                             "--render-dir", str(render_dir), "--no-midi", "--no-web", "--config", "/dev/null"],
                            cwd=ROOT, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if m := re.search(r"udp://127\.0\.0\.1:(\d+)", line):
            threading.Thread(target=proc.stderr.read, daemon=True).start()
            return proc, int(m.group(1))
    raise SystemExit("the engine did not start")


def pings(client: Client, n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        sent = client.send("ping", f"{tag}{i}")
        got, _ = client.until("pong", lambda p, rid=f"{tag}{i}": p[0] == rid)
        out.append(1000 * (got - sent))
        time.sleep(0.01)
    return out


def summary(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {"n": len(ms), "p50_ms": round(q[49], 3), "p99_ms": round(q[98], 3), "max_ms": round(max(ms), 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pings", type=int, default=500)
    ap.add_argument("--continues", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_osc_"))
    src = tmp / "region.wav"
    sf.write(src, 0.1 * np.random.default_rng(0).standard_normal((48000, 2)).astype(np.float32), 48000)
    proc, port = start_engine(tmp / "renders")
    client = Client(port)
    try:
        results = {"idle_ping": summary(pings(client, args.pings, "idle"))}
        client.send("generate", "busy", {"seconds": 30, "quality": "draft"})
        _, (_, job) = client.until("accepted")
        client.until("progress", lambda p: p[0] == job and p[2].startswith("sampling"))
        results["ping_while_sampling"] = summary(pings(client, args.pings, "busy"))
        client.send("cancel", "c", {"all": True})
        client.until("finished", lambda p: p[0] == job)
        accepted, queued, working = [], [], []
        for i in range(args.continues):
            sent = client.send("continue", f"c{i}", {"source": str(src), "length": 0.5, "seconds": 0.5,
                                                     "quality": "draft"})
            t_acc, (_, job) = client.until("accepted", lambda p, rid=f"c{i}": p[0] == rid)
            t_first, _ = client.until("progress", lambda p: p[0] == job)
            t_work, _ = client.until("progress", lambda p: p[0] == job and p[2] != "queued")
            accepted.append(1000 * (t_acc - sent))
            queued.append(1000 * (t_first - sent))
            working.append(1000 * (t_work - sent))
            client.send("cancel", f"x{i}", {"job_id": job})
            client.until("finished", lambda p: p[0] == job)
        results["continue_to_accepted"] = summary(accepted)
        results["continue_to_first_progress"] = summary(queued)
        results["continue_to_first_work_progress"] = summary(working)
    finally:
        proc.terminate()
        proc.wait(15)
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print("| measure | n | p50 (ms) | p99 (ms) | max (ms) |\n|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name.replace('_', ' ')} | {r['n']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['max_ms']:.2f} |")


if __name__ == "__main__":
    main()
