"""Wall-clock of the embedded default model through ``generate.render.render`` on this machine's CPU.

A 10-second continuation of a 5-second prime (the bundled pluck phrase), once in draft quality (top
level only, decoded from the top codes) and once in full quality (top prior + both upsamplers, decoded
from the bottom codes). Targets: draft <= 10 s, full <= 90 s. Model loading is timed separately.

    .venv/bin/python benchmarks/bench_default_model.py [--threads N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from engine.dev.demo import example_path
from engine.generate.render import render
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights.bundle import load_models

TARGETS = {"draft": 10.0, "full": 90.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    models = load_models(None)
    results = {"load_seconds": time.perf_counter() - t0, "threads": torch.get_num_threads()}
    for quality in ("draft", "full"):
        req = RenderRequest.from_fields("continue", {"source": str(example_path()), "start": 0.0, "length": 5.0,
                                                     "seconds": 10.0, "quality": quality, "seed": 1, "takes": 1})
        t0 = time.perf_counter()
        take = render(models, req, lambda p: None, CancelToken())[0]
        dt = time.perf_counter() - t0
        results[quality] = {"seconds": dt, "target": TARGETS[quality], "audio_seconds": len(take.audio) / req.sample_rate,
                            "met": dt <= TARGETS[quality]}
        print(f"{quality:<5} 10 s continuation of a 5 s prime: {dt:6.1f} s (target <= {TARGETS[quality]:.0f} s)")
    print(f"model load {results['load_seconds']:.2f} s, torch threads {results['threads']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
