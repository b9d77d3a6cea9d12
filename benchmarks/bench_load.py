"""Memory and time of loading official-size checkpoints (issue 18): peak RSS, anonymous vs file-backed memory.

    # an official-layout prior_level_2.pth.tar of the official size, random weights (1b_lyrics: 3.8 GB fp32)
    .venv/bin/python benchmarks/bench_load.py build --kind 1b_lyrics [--fp16] [--legacy] --out DIR
    # load it in a fresh process (type detected from the file), report peak RSS; --touch runs one step after
    .venv/bin/python benchmarks/bench_load.py measure DIR/prior_level_2.pth.tar [--device cuda] [--touch]
    # the bytes each official checkpoint's tensors hold (from the shapes and dtypes the manifests list)
    .venv/bin/python benchmarks/bench_load.py sizes

``measure`` prints one JSON line: seconds to load, the process's peak RSS (``VmHWM``) and, after loading,
its anonymous memory (``RssAnon``: private, what a load really costs) and file-backed memory (``RssFile``: pages
of the memory-mapped checkpoint, shared and reclaimable), each in GB above the process's level before loading
(torch imported); on CUDA also the GPU memory allocated. ``--kind tiny-...`` builds a test-size file.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GB = 1e9


def _status() -> dict[str, float]:
    out = dict.fromkeys(("VmHWM", "VmRSS", "RssAnon", "RssFile"), 0.0)  # gVisor's /proc lists fewer fields
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0]) * 1024 / GB
    return out


def build(kind: str, out: Path, fp16: bool, legacy: bool) -> Path:
    import torch

    from engine.dev.random_weights import random_prior
    from engine.model.config import OFFICIAL_PRIORS
    from engine.weights.detect import conv_weight_keys
    from engine.weights.keymaps import prior_official_keys

    tiny = kind.startswith("tiny-")
    cfg = OFFICIAL_PRIORS[kind.removeprefix("tiny-")]
    if tiny:
        cfg = dataclasses.replace(cfg, width=64, depth=3, n_ctx=128, blocks=16)
    t0 = time.monotonic()
    prior = random_prior(cfg)
    half = conv_weight_keys(prior) if fp16 or cfg.fp16_params else frozenset()
    with torch.no_grad():  # in place, one weight at a time: never a second whole copy
        for name in half:
            owner, _, attr = name.rpartition(".")
            module = prior.get_submodule(owner)
            setattr(module, attr, torch.nn.Parameter(getattr(module, attr).half(), requires_grad=False))
    own = prior.state_dict()
    state = {fk.name: own[k] for k, fk in prior_official_keys(prior).items()}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "prior_level_2.pth.tar"
    torch.save({"hps": cfg.to_hparams(), "model": state, "opt": None, "step": 0}, path,
               _use_new_zipfile_serialization=not legacy)
    print(json.dumps({"built": str(path), "kind": kind, "fp16": bool(half), "legacy": legacy,
                      "bytes": path.stat().st_size, "seconds": round(time.monotonic() - t0, 1)}))
    return path


def measure(path: Path, device: str, touch: bool) -> dict:
    """In this process (run it fresh): load, then optionally one forward step touching every weight."""
    import torch

    from engine.weights.bundle import load_prior

    base = _status()
    t0 = time.monotonic()
    prior = load_prior(path, None, device)
    load_s = time.monotonic() - t0
    after = _status()
    result = {"file": str(path), "file_gb": round(path.stat().st_size / GB, 2), "device": device,
              "load_s": round(load_s, 2), "peak_rss_gb": round(after["VmHWM"] - base["VmRSS"], 2),
              "anon_gb": round(after["RssAnon"] - base["RssAnon"], 2),
              "file_backed_gb": round(after["RssFile"] - base["RssFile"], 2), "rss_gb": round(after["VmRSS"] - base["VmRSS"], 2),
              "dtypes": sorted({str(p.dtype).removeprefix("torch.") for p in prior.parameters()})}
    if device.startswith("cuda"):
        result["gpu_allocated_gb"] = round(torch.cuda.memory_allocated() / GB, 2)
    if touch:
        from engine.model.prior import START, Conditioning

        cfg = prior.cfg
        z = lambda *s: torch.zeros(*s, device=device)  # noqa: E731
        cond = Conditioning(z(1, 1, cfg.width), z(1, 4, cfg.width),
                            z(1, cfg.n_tokens, cfg.width) if cfg.has_lyric_encoder else None)
        dtype = torch.float16 if device.startswith("cuda") and cfg.fp16_params else None
        t0 = time.monotonic()
        with torch.inference_mode():
            cache = prior.start_cache(cond, dtype)
            prior.step(cache, torch.full((1, 1), START, dtype=torch.long, device=device))
            if device.startswith("cuda"):
                torch.cuda.synchronize()
        touched = _status()
        result |= {"step_s": round(time.monotonic() - t0, 2), "peak_rss_after_step_gb": round(touched["VmHWM"] - base["VmRSS"], 2),
                   "anon_after_step_gb": round(touched["RssAnon"] - base["RssAnon"], 2),
                   "file_backed_after_step_gb": round(touched["RssFile"] - base["RssFile"], 2)}
        if device.startswith("cuda"):
            result["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated() / GB, 2)
    return result


def sizes() -> None:
    from engine.weights.registry import REGISTRY, expected_files

    for name in ("1b_lyrics", "5b", "5b_lyrics"):
        for file, exp in expected_files(REGISTRY[name]).items():
            print(f"{name:<10} {file:<22} {exp.data_bytes / GB:7.2f} GB")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("--kind", required=True, help="1b_lyrics, 5b, 5b_lyrics (or tiny-<kind> for a test-size file)")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--fp16", action="store_true", help="store the Conv1D weights in fp16 (the 5b tops always are)")
    b.add_argument("--legacy", action="store_true", help="the pre-1.6 (non-zip) torch format")
    m = sub.add_parser("measure")
    m.add_argument("file", type=Path)
    m.add_argument("--device", default="cpu")
    m.add_argument("--touch", action="store_true", help="also run one step (pages every weight in)")
    m.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    sub.add_parser("sizes")
    args = p.parse_args()
    if args.cmd == "build":
        build(args.kind, args.out, args.fp16, args.legacy)
    elif args.cmd == "sizes":
        sizes()
    elif args.in_process:
        print(json.dumps(measure(args.file, args.device, args.touch)), flush=True)
    else:  # a fresh interpreter, so the peak is this load's alone
        cmd = [sys.executable, __file__, "measure", str(args.file), "--device", args.device, "--in-process"]
        return subprocess.run(cmd + (["--touch"] if args.touch else [])).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
