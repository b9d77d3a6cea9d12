"""GPU readiness in one command: parity of the CUDA path, per-token times of real-size priors, VQ-VAE decode
time, and a projected wall time for a 20-s full render and a 10-s draft, with peak GPU memory.

No downloads: real-size models get random weights (``engine.dev.random_weights``), which cost the same
memory traffic as trained ones. ``--dry-run`` runs every section on the CPU with tiny configs (the test
suite does this), so the script itself is checked on machines without a GPU.

    python benchmarks/gpu_check.py                 # on a CUDA machine, <= 8 minutes
    python benchmarks/gpu_check.py --dry-run       # anywhere, seconds
    python benchmarks/gpu_check.py --json out.json --budget 420

Sections (each skipped, with a note, when the time budget is spent):
1. parity: the shared fixtures' priors (teacher-forced logits) and VQ-VAE (codes, decode) on the device
   against the CPU fp32 path, fp32 and bf16;
2. priors: tokens per second of single-token steps after a prefill, eager and compiled (the fixed-shape
   ``StaticDecoder``; on CUDA with CUDA graphs via ``mode="reduce-overhead"`` semantics of Inductor), at
   batch 1 and at the parallel schedule's lane batch, bf16 weights and KV cache;
3. VQ-VAE: decode of 20 s from level 0, fp32 and bf16;
4. projection: the 20-s full render (top prior window, then both upsamplers with lanes) and the 10-s draft
   (top level only, decoded from level 2) from the measured rates, with peak memory.
Anchor: the reference takes about 3 hours per 20 s of full-quality audio on a V100.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.dev.random_weights import random_labels as labels  # noqa: E402
from engine.dev.random_weights import random_prior, random_vqvae  # noqa: E402
from engine.model.config import OFFICIAL_PRIORS, OFFICIAL_VQVAE, PriorConfig  # noqa: E402
from engine.model.fast.projections import cast_projections  # noqa: E402
from engine.model.fast.static_step import StaticDecoder  # noqa: E402
from engine.model.prior import Prior  # noqa: E402

SHARED = Path(os.environ.get("JB_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "jukebox_reference"
SAMPLE_RATE = 44100
TOPS = ("1b_lyrics", "5b")


class Budget:
    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def tiny(cfg: PriorConfig) -> PriorConfig:
    """The same structure, shrunk for a CPU dry run."""
    return dataclasses.replace(cfg, width=64, depth=2, heads=1, n_ctx=256, blocks=16, cond_width=32, cond_depth=2,
                               artist_bins=min(cfg.artist_bins, 64),
                               genre_bins=min(cfg.genre_bins, 64),
                               **({"n_tokens": 32} if cfg.n_tokens else {}),
                               **({"alignment_layer": 1, "alignment_head": 0} if cfg.alignment_layer else {}))


# ------------------------------------------------------------------------------------------------ parity

@torch.no_grad()
def parity(device: torch.device, fixtures: int | None = None) -> list[dict]:
    """Device vs CPU fp32 on the shared fixtures: prior logits (fp32, bf16) and VQ-VAE codes and decodes."""
    from engine.dev.fixtures import load_fixture_prior
    from engine.weights.checkpoints import load_vqvae

    # exact fp32 on the GPU too: TF32 convolutions (cuDNN's default) flip codes near a tie
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    out = []
    found = sorted((SHARED / "priors").glob("*")) if (SHARED / "priors").is_dir() else []
    for fixture in found[:fixtures]:
        prior = load_fixture_prior(fixture)
        cfg = prior.cfg
        gen = torch.Generator().manual_seed(0)
        tokens = torch.randint(0, cfg.bins, (1, min(cfg.n_ctx, 256)), generator=gen)
        upper = None
        if cfg.has_upper_conditioner:
            upper = torch.randint(0, cfg.bins, (1, tokens.shape[1] // cfg.upsampling), generator=gen)
        y = labels(cfg, 1, torch.device("cpu"))
        ref = prior.logits(prior.to_model_tokens(tokens, y), prior.conditioning(y, upper)).float()
        prior.to(device)
        for dtype in (None, torch.bfloat16):
            seq = prior.to_model_tokens(tokens.to(device), y.to(device))
            cond = prior.conditioning(y.to(device), None if upper is None else upper.to(device), dtype)
            ours = prior.logits(seq, cond, dtype).float().cpu()
            out.append({"what": f"{fixture.name} logits {'bf16' if dtype else 'fp32'}",
                        "max_diff_over_std": float((ours - ref).abs().max() / ref.std()),
                        "argmax_agreement": float((ours.argmax(-1) == ref.argmax(-1)).float().mean())})
    vq_dir = SHARED / "vqvae"
    ckpts = sorted(vq_dir.glob("*.pth.tar")) if vq_dir.is_dir() else []
    inputs = sorted(vq_dir.glob("input_*.npy")) if vq_dir.is_dir() else []
    if ckpts and inputs:
        import numpy as np

        model = load_vqvae(ckpts[0])
        x = torch.from_numpy(np.load(inputs[0]).astype(np.float32)).reshape(1, -1)[:, : 2 * 128 * 64]  # whole top codes
        ref_codes = model.encode(x)
        ref_dec = model.decode(ref_codes[0], 0)
        model.to(device)
        codes = model.encode(x.to(device))
        for level, (a, b) in enumerate(zip(codes, ref_codes)):
            out.append({"what": f"vqvae codes level {level}", "equal_fraction": float((a.cpu() == b).float().mean())})
        dec = model.decode(ref_codes[0].to(device), 0).cpu()
        out.append({"what": "vqvae decode level 0", "max_diff_over_peak": float((dec - ref_dec).abs().max()
                                                                                / ref_dec.abs().max())})
    return out


# ------------------------------------------------------------------------------------------------ priors

@torch.no_grad()
def time_prior(prior: Prior, batch: int, steps: int, dtype: torch.dtype | None, compiled: bool,
               device: torch.device) -> dict:
    """Per-token seconds of single-token steps (after a 64-token prefill), one warm-up step excluded."""
    cfg = prior.cfg
    y = labels(cfg, batch, device)
    upper = None
    if cfg.has_upper_conditioner:
        upper = torch.zeros((batch, cfg.n_ctx // cfg.upsampling), dtype=torch.long, device=device)
    cond = prior.conditioning(y, upper, dtype)
    cache = prior.start_cache(cond, dtype)
    known = torch.zeros((batch, 64), dtype=torch.long, device=device)
    t0 = time.perf_counter()
    logits = prior.prefill(cache, prior.to_model_tokens(known, y))[:, -1]
    sync(device)
    prefill_s = time.perf_counter() - t0
    step = StaticDecoder(prior, cache, compile=True) if compiled else \
        (lambda tok: prior.step_unchecked(cache, tok)[:, -1])
    token = logits.argmax(-1, keepdim=True)
    t0 = time.perf_counter()
    logits = step(token)  # warm-up (compiles when compiled)
    sync(device)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        logits = step(logits.argmax(-1, keepdim=True))
    sync(device)
    per = (time.perf_counter() - t0) / steps
    return {"batch": batch, "compiled": compiled, "prefill_s": prefill_s, "first_step_s": first_s,
            "s_per_step": per, "tokens_per_s": batch / per}


def priors(device: torch.device, dry: bool, budget: Budget, lanes: int, steps: int) -> dict:
    """Eager steps of every prior first (cheap), then compiled ones while the budget lasts (a compile of a
    72-layer step can take minutes), the upsampler first: it samples most of a full render's tokens."""
    dtype = None if device.type == "cpu" else torch.bfloat16
    out, built = {}, {}
    names = ("upsampler_level_0", *TOPS)
    for name in names:
        cfg = tiny(OFFICIAL_PRIORS[name]) if dry else OFFICIAL_PRIORS[name]
        t0 = time.perf_counter()
        prior = random_prior(cfg, device)
        if dtype is not None:  # the engine's reduced-precision path: bf16 projections, bf16 stream and KV cache
            cast_projections(prior.lm.transformer, dtype)
        built[name] = prior
        runs = []
        for batch in (1, lanes) if name.startswith("upsampler") else (1,):
            runs.append(_run(prior, batch, steps, dtype, False, device))
        out[name] = {"params_m": sum(p.numel() for p in prior.parameters()) / 1e6,
                     "build_s": time.perf_counter() - t0, "runs": runs}
    for name in names:
        if dry and name != TOPS[0]:
            continue  # the dry run checks the compiled path once
        for batch in (lanes, 1) if name.startswith("upsampler") else (1,):
            if budget.left() < 60 and not dry:
                out[name]["runs"].append({"batch": batch, "compiled": True, "skipped": "time budget spent"})
                continue
            out[name]["runs"].append(_run(built[name], batch, steps, dtype, True, device))
    for name in names:
        out[name]["peak_gib"] = peak_gib(device)
    return out


def _run(prior: Prior, batch: int, steps: int, dtype, compiled: bool, device: torch.device) -> dict:
    try:
        return time_prior(prior, batch, steps, dtype, compiled, device)
    except Exception as exc:  # a compile failure is a finding, not the end of the check
        return {"batch": batch, "compiled": compiled, "error": f"{type(exc).__name__}: {exc}"[:300]}


# ------------------------------------------------------------------------------------------------ VQ-VAE

@torch.no_grad()
def vqvae(device: torch.device, dry: bool, seconds: float) -> dict:
    cfg = dataclasses.replace(OFFICIAL_VQVAE, width=8, depth=1, emb_width=16, l_bins=64) if dry else OFFICIAL_VQVAE
    model = random_vqvae(cfg, device)
    hop = model.hop_lengths[0]
    z = torch.randint(0, cfg.l_bins, (1, int(seconds * SAMPLE_RATE) // hop), device=device)
    out = {}
    for precision in ("fp32", "bf16"):
        try:
            model.decode(z[:, :256], 0, precision=precision)  # warm-up
            sync(device)
            t0 = time.perf_counter()
            model.decode(z, 0, precision=precision)
            sync(device)
            out[precision] = {"seconds": time.perf_counter() - t0, "audio_seconds": seconds}
        except Exception as exc:
            out[precision] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    return out


# ------------------------------------------------------------------------------------------------ projection

def best_rate(entry: dict, batch: int) -> float | None:
    rates = [r["tokens_per_s"] for r in entry.get("runs", []) if r.get("batch") == batch and "tokens_per_s" in r]
    return max(rates) if rates else None


def project(prior_times: dict, decode: dict, lanes: int) -> dict:
    """Wall time of a 20-s full render and a 10-s draft from the measured per-token rates."""
    top = OFFICIAL_PRIORS["5b"]
    hops = OFFICIAL_VQVAE.hop_lengths
    up = prior_times.get("upsampler_level_0", {})
    dec = decode.get("bf16", {}).get("seconds") or decode.get("fp32", {}).get("seconds")
    dec_audio = decode.get("bf16", {}).get("audio_seconds") or decode.get("fp32", {}).get("audio_seconds") or 1.0
    out = {}
    for name in TOPS:
        top_rate = best_rate(prior_times.get(name, {}), 1)
        up_rate = best_rate(up, lanes) or best_rate(up, 1)
        if top_rate is None or up_rate is None:
            continue
        full_tokens_top = 20 * SAMPLE_RATE / hops[2]
        full_tokens_up = 20 * SAMPLE_RATE / hops[1] + 20 * SAMPLE_RATE / hops[0]
        full = full_tokens_top / top_rate + full_tokens_up / up_rate + (dec or 0) * 20 / dec_audio
        draft = 10 * SAMPLE_RATE / hops[2] / top_rate + (dec or 0) * 10 / dec_audio / 4  # top-level decode is cheaper
        out[name] = {"full_20s_seconds": full, "draft_10s_seconds": draft,
                     "vs_reference_v100_3h": 3 * 3600 / full, "top_context_tokens": top.n_ctx}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny configs: checks the script, measures nothing")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for the timed sections (8 min total)")
    ap.add_argument("--lanes", type=int, default=8, help="the parallel schedule's lane batch for the upsamplers")
    ap.add_argument("--steps", type=int, default=None, help="timed single-token steps (GPU 200, dry 8)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        ap.error("no CUDA device: run with --dry-run to check the script on the CPU")
    device = torch.device("cpu" if dry else "cuda")
    budget = Budget(args.budget)
    steps = args.steps or (8 if dry else 200)
    report: dict = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)",
                    "torch": torch.__version__, "dry_run": dry}
    t0 = time.perf_counter()
    sections = {"parity": lambda: parity(device, fixtures=1 if dry else None),
                "priors": lambda: priors(device, dry, budget, args.lanes, steps),
                "vqvae_decode": lambda: vqvae(device, dry, 2.0 if dry else 20.0)}
    report["section_s"] = {}
    for name, run in sections.items():
        s0 = time.perf_counter()
        report[name] = run()
        report["section_s"][name] = round(time.perf_counter() - s0, 2)
    report["projection"] = project(report["priors"], report["vqvae_decode"], args.lanes)
    report["peak_gib"] = peak_gib(device)
    report["wall_s"] = time.perf_counter() - t0
    text = json.dumps(report, indent=1, default=str)
    print(text)
    if args.json:
        args.json.write_text(text)
    return report



if __name__ == "__main__":
    main()
