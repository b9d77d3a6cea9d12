"""Reliability figures: peak memory of encoding and decoding by region length, cancel latency while encoding and
decoding, ping latency under 20 clients while a job samples, and log bytes per hostile packet.

    .venv/bin/python benchmarks/bench_reliability.py [--model default|debug] [--json]

* Peak RSS: a fresh process per case encodes a region (every level) and decodes level 0 (fp32, as renders do)
  with the model's VQ-VAE, chunked (``VQVAE.encode``/``decode``'s default) and all at once (``chunk=None``).
* Whole re-render: a fresh process per length re-renders (full quality, the engine's ``render``) a region built
  from the bundled example repeated: peak RSS and wall time (``--only-render`` measures just these).
* Cancel latency: a 300-s region is encoded (and its level-0 codes decoded) with ``codec.chunk_progress``; a cancel
  is set one second in, and the time until ``Cancelled`` is raised is measured.
* Ping p99: ``jukebox-bridge serve --model debug`` in a subprocess samples a generate job while 20 clients each
  ping 10 times a second.
* Log bytes: 200 bundles whose one element python-osc cannot identify (60 KB each), and 200 requests with a wrong
  token, sent to an ``OscServer``; the bytes the log got per packet.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RSS_CASE = r"""
import resource, sys, numpy as np, torch
torch.set_num_threads(1)
from engine.weights.bundle import load_models
from engine.generate.codec import pad_to_hop
m = load_models(None if sys.argv[1] == "default" else sys.argv[1])
v, seconds, chunk = m.vqvae, float(sys.argv[2]), None if sys.argv[3] == "none" else int(sys.argv[3])
x = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * m.sample_rate)).astype(np.float32)
x = torch.from_numpy(pad_to_hop(x, v.hop_lengths[-1]))[None]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.inference_mode():
    z = v.encode(x, chunk=chunk)
    y = v.decode(z[0], 0, precision="fp32", chunk=chunk)
print(base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss(model: str, seconds: float, chunked: bool) -> tuple[float, float]:
    from engine.model.vqvae import CHUNK_SAMPLES

    out = subprocess.run([sys.executable, "-c", RSS_CASE, model, str(seconds), str(CHUNK_SAMPLES) if chunked else "none"],
                         cwd=ROOT, capture_output=True, text=True, check=True)
    base, peak = map(int, out.stdout.split())
    return base / 1024, peak / 1024  # MiB (ru_maxrss is in KiB on Linux)


RENDER_CASE = r"""
import json, resource, sys, tempfile, time, numpy as np, soundfile as sf, torch
from pathlib import Path
torch.set_num_threads(1)
from engine.weights.bundle import load_models
from engine.generate.render import render
from engine.dev.demo import example_path
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
m = load_models(None if sys.argv[1] == "default" else sys.argv[1])
seconds = float(sys.argv[2])
with tempfile.TemporaryDirectory() as tmp:
    x, sr = sf.read(example_path(), dtype="float32", always_2d=True)
    region = np.tile(x, (int(np.ceil(seconds * sr / len(x))), 1))[: int(seconds * sr)]  # the example, repeated
    src = Path(tmp) / "region.wav"
    sf.write(src, region, sr)
    del x, region
    req = RenderRequest.from_fields("rerender", {"source": str(src), "start": 0.0, "length": seconds, "seed": 1,
                                                 "sample_rate": 44100, "channels": 2})
    base, t = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time()
    takes = render(m, req, lambda p: None, CancelToken(), Path(tmp) / "work")
    print(json.dumps({"base": base, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "seconds": time.time() - t, "frames": len(takes[0].audio)}))
"""


def render_peak_rss(model: str, seconds: float) -> dict[str, float]:
    """A whole full-quality re-render (the engine's ``render``: read, encode, sample levels 1 and 0, decode, mix) of
    a ``seconds`` region built from the bundled example, in a fresh process: peak RSS (MiB) and wall time."""
    out = subprocess.run([sys.executable, "-c", RENDER_CASE, model, str(seconds)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    return {"model_loaded_mib": round(r["base"] / 1024), "peak_mib": round(r["peak"] / 1024),
            "wall_s": round(r["seconds"], 1)}


def cancel_latency(model: str, seconds: float = 300.0) -> dict[str, float]:
    import numpy as np
    import torch

    from engine.generate.codec import chunk_progress, encode_audio
    from engine.runtime.progress import Cancelled, CancelToken
    from engine.weights.bundle import load_models

    torch.set_num_threads(1)
    m = load_models(None if model == "default" else model)
    x = np.random.default_rng(0).uniform(-0.3, 0.3, int(seconds * m.sample_rate)).astype(np.float32)
    out = {}
    codes = encode_audio(m.vqvae, x[: m.sample_rate * 20])
    z = torch.from_numpy(np.tile(codes[0], (1, int(seconds / 20))))
    for stage, run in (("encoding", lambda cb: encode_audio(m.vqvae, x, cb)),
                       ("decoding", lambda cb: m.vqvae.decode(z, 0, precision="fp32", on_chunk=cb))):
        cancel, reports = CancelToken(), []
        timer = threading.Timer(1.0, lambda r=reports, c=cancel: (r.append(time.monotonic()), c.cancel()))
        timer.start()
        try:
            run(chunk_progress(lambda p: None, cancel, stage, 0.0, 1.0))
            out[stage] = float("nan")
        except Cancelled:
            out[stage] = time.monotonic() - reports[0]
        timer.cancel()
    return out


def ping_under_load(clients: int = 20, seconds: float = 6.0) -> dict[str, float]:
    from pythonosc.osc_message import OscMessage
    from pythonosc.osc_message_builder import OscMessageBuilder

    def build(address: str, args: list) -> bytes:
        b = OscMessageBuilder(address)
        for a in args:
            b.add_arg(a)
        return b.build().dgram

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.toml").write_text("")
        proc = subprocess.Popen([sys.executable, "-m", "jukebox_bridge.cli", "serve", "--model", "debug", "--port", "0",
                                 "--render-dir", f"{tmp}/renders", "--no-midi", "--no-web", "--config", f"{tmp}/config.toml"],
                                cwd=ROOT, stderr=subprocess.PIPE, text=True)
        port = None
        for line in proc.stderr:
            if match := re.search(r"udp://127\.0\.0\.1:(\d+)", line):
                port = int(match.group(1))
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                break
        try:
            job = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            job.bind(("127.0.0.1", 0))
            job.settimeout(30)
            job.sendto(build("/jukebox/generate", [job.getsockname()[1], "load",
                                                   json.dumps({"seconds": 20.0, "quality": "draft"})]),
                       ("127.0.0.1", port))
            while True:  # wait until it samples
                m = OscMessage(job.recv(70000))
                if m.address == "/jukebox/progress" and str(m.params[2]).startswith("sampling"):
                    break
            rtts: list[float] = []
            lock = threading.Lock()

            def pinger(i: int) -> None:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind(("127.0.0.1", 0))
                s.settimeout(2)
                end = time.monotonic() + seconds
                n = 0
                while time.monotonic() < end:
                    n += 1
                    sent = time.monotonic()
                    s.sendto(build("/jukebox/ping", [s.getsockname()[1], f"{i}-{n}"]), ("127.0.0.1", port))
                    try:
                        while OscMessage(s.recv(70000)).params[0] != f"{i}-{n}":
                            pass
                        with lock:
                            rtts.append((time.monotonic() - sent) * 1000)
                    except socket.timeout:
                        with lock:
                            rtts.append(float("inf"))
                    time.sleep(max(0.0, 0.1 - (time.monotonic() - sent)))
                s.close()

            threads = [threading.Thread(target=pinger, args=(i,)) for i in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rtts.sort()
            return {"n": len(rtts), "p50_ms": statistics.median(rtts), "p99_ms": rtts[int(0.99 * (len(rtts) - 1))],
                    "max_ms": rtts[-1]}
        finally:
            proc.terminate()
            proc.wait(15)


def log_bytes_per_packet(packets: int = 200) -> dict[str, float]:
    from pythonosc.osc_message_builder import OscMessageBuilder

    from bridge.osc import OscServer

    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    out = {}
    try:
        for kind in ("bundle", "wrong_token"):
            server = OscServer("127.0.0.1", 0, token="s3cret-token")
            server.start(lambda request, host: [])
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            start, sent = buffer.tell(), 0
            for i in range(packets):
                if kind == "bundle":
                    element = b"X" * 60000
                    data = b"#bundle\0" + b"\0" * 8 + len(element).to_bytes(4, "big") + element
                else:
                    b = OscMessageBuilder("/jukebox/ping")
                    for a in (s.getsockname()[1], f"id{i}", "guess"):
                        b.add_arg(a)
                    data = b.build().dgram
                s.sendto(data, server.address)
                sent += len(data)
                time.sleep(0.005)
            time.sleep(0.5)
            server.stop()
            s.close()
            logged = len(buffer.getvalue()) - start
            out[kind] = {"packets": packets, "bytes_sent": sent, "log_bytes": logged, "log_bytes_per_packet":
                         round(logged / packets, 1)}
    finally:
        root.removeHandler(handler)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default", help="default (the embedded model) or debug")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--render-seconds", type=float, nargs="*", default=[10, 60, 300],
                        help="region lengths of the whole re-render cases (the 300-s one takes minutes)")
    parser.add_argument("--only-render", action="store_true", help="measure only the whole re-render cases")
    args = parser.parse_args()
    if args.only_render:
        results = {"rerender_peak_rss": {f"{s:g}s": render_peak_rss(args.model, s) for s in args.render_seconds}}
        print(json.dumps(results, indent=2) if args.json else results)
        return
    results: dict = {"peak_rss_mib": {}}
    for seconds in (10, 60, 300):
        for chunked in (True, False):
            base, peak = peak_rss(args.model, seconds, chunked)
            results["peak_rss_mib"][f"{seconds}s {'chunked' if chunked else 'whole'}"] = {
                "model_loaded": round(base), "peak": round(peak)}
    results["rerender_peak_rss"] = {f"{s:g}s": render_peak_rss(args.model, s) for s in args.render_seconds}
    results["cancel_latency_s"] = cancel_latency(args.model)
    results["ping_20_clients_while_sampling"] = ping_under_load()
    results["log"] = log_bytes_per_packet()
    print(json.dumps(results, indent=2) if args.json else results)


if __name__ == "__main__":
    main()
