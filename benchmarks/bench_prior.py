"""Prior sampling throughput: new tokens per second of ``engine.generate.sampling.sample_window`` on CPU.

Two models, both with random weights (figures and method: benchmarks/README.md, "Prior sampling"):

- ``--config tiny``: the 5b options scaled to width 128, depth 4, 2 heads, context 1024, 16 blocks, the
  model of the reference CPU timings (docs: jukebox_reference_notes.md section 6.2);
- ``--config 1b_lyrics``: the real-size 1b_lyrics top prior (~3.8 GB in fp32), built on the meta device
  and filled in place with small random values.

One window per repeat: conditioning, a validated prefill of the prime (and, for 1b_lyrics, the 384 lyric
tokens), then ``--tokens`` new tokens drawn one by one. Reported per repeat, then as medians:

- ``window``: new tokens x batch / wall seconds of the whole ``sample_window`` call;
- ``loop``: the token loop alone (draw + step), from ``on_token`` timestamps: (tokens - 1) x batch /
  seconds between the first and the last token. This is the figure comparable to the reference's
  per-step timing of the 1b prior (prefill excluded) and, for the tiny prior, the steady state.

CPU seconds of the thread are printed beside wall seconds: on a shared machine the gap is time the
process spent descheduled.

Reduced precision touches only the transformer's projections (``Conv1D``: ~99 % of the weights); the
residual stream, LayerNorm, attention, KV cache, embeddings and head stay fp32. ``--dtype bf16``: bf16
weights and products (``cast_projections``); ``--dtype int8``: int8 weights, products on int16-rounded
inputs by the w8a16 AVX-512 VNNI kernel (``quantize_projections(.., "w8a16")``); ``--dtype int8w``: int8
weights on bf16 inputs with ``torch._weight_int8pack_mm`` (``"weight_only"``); ``--dtype bf16-all``: bf16 weights and a
bf16 residual stream and KV cache (``SamplingParams.dtype``, like the reference's fp16 sampling). Each
first compares their logits with fp32 on a fixed random sequence (teacher-forced
through the same prefill + single-token steps as sampling) and print max |diff|, max |diff| / std of
the fp32 logits and the argmax agreement. ``--compile`` uses the compiled fixed-shape step
(``SamplingParams.compile``); its first (warm-up) window includes the compilation, printed separately.

    .venv/bin/python benchmarks/bench_prior.py --config tiny --batch 1 --tokens 512
    .venv/bin/python benchmarks/bench_prior.py --config tiny --batch 4 --compile
    .venv/bin/python benchmarks/bench_prior.py --config 1b_lyrics --dtype bf16 --tokens 32 --repeats 3
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.dev.random_weights import random_labels as labels  # noqa: E402
from engine.dev.random_weights import random_prior  # noqa: E402
from engine.generate.sampling import SamplingParams, Window, sample_window  # noqa: E402
from engine.model.config import OFFICIAL_PRIORS, PriorConfig  # noqa: E402
from engine.model.fast.projections import cast_projections, quantize_projections  # noqa: E402
from engine.model.fast.static_step import StaticDecoder  # noqa: E402
from engine.model.prior import Prior  # noqa: E402

# --dtype -> transformer activation dtype (SamplingParams.dtype): fp32 in every mode; the projections'
# weights and products follow ``convert``. "bf16-all" also runs the residual stream and KV cache in bf16.
DTYPES = {"fp32": None, "bf16": None, "int8": None, "int8w": None, "bf16-all": torch.bfloat16}


def tiny_config() -> PriorConfig:
    return dataclasses.replace(OFFICIAL_PRIORS["5b"], width=128, depth=4, heads=2, n_ctx=1024, blocks=16)


def build(name: str, seed: int = 0) -> Prior:
    """Random weights (``engine.dev.random_weights``): tiny, or a real-size official prior."""
    torch.manual_seed(seed)
    return random_prior(tiny_config() if name == "tiny" else OFFICIAL_PRIORS[name], "cpu", seed)


def convert(prior: Prior, dtype: str) -> None:
    if dtype in ("bf16", "bf16-all"):
        cast_projections(prior.lm.transformer, torch.bfloat16)
    elif dtype == "int8":
        quantize_projections(prior.lm.transformer, "w8a16")
    elif dtype == "int8w":
        quantize_projections(prior.lm.transformer, "weight_only")
    gc.collect()


@torch.no_grad()
def decode_logits(prior: Prior, y: torch.Tensor, seq: torch.Tensor, n_prefill: int, dtype) -> torch.Tensor:
    """Logits of the positions after ``n_prefill`` music tokens, teacher-forced along ``seq`` (N, T) through
    the sampling path: one prefill, then single-token steps. (N, T - n_prefill, bins) fp32."""
    cond = prior.conditioning(y, None, dtype)
    model_seq = prior.to_model_tokens(seq, y)
    n_prime = prior.cfg.n_prime
    cache = prior.start_cache(cond, dtype)
    out = [prior.prefill(cache, model_seq[:, : n_prime + n_prefill])[:, -1]]
    for t in range(n_prime + n_prefill, model_seq.shape[1] - 1):
        out.append(prior.step(cache, model_seq[:, t : t + 1])[:, -1])
    return torch.stack(out, 1)


@torch.inference_mode()
def compiled_step_parity(prior: Prior, y: torch.Tensor, batch: int, prefill: int = 40, steps: int = 80) -> dict:
    """Logits of the compiled fixed-shape step vs ``Prior.step`` along one random sequence (this also
    compiles the step for ``batch``): max |diff| / max |logit|, which the parity tests hold below 1e-5."""
    cfg = prior.cfg
    seq = torch.randint(0, cfg.bins, (batch, prefill + steps), generator=torch.Generator().manual_seed(3))
    model_seq = prior.to_model_tokens(seq, y)
    n0 = cfg.n_prime + prefill
    cond = prior.conditioning(y)
    ref_cache, cache = prior.start_cache(cond), prior.start_cache(cond)
    prior.prefill(ref_cache, model_seq[:, :n0])
    prior.prefill(cache, model_seq[:, :n0])
    t = time.perf_counter()
    dec = StaticDecoder(prior, cache, compile=True)
    step_in = [model_seq[:, i : i + 1].clone() for i in range(n0, model_seq.shape[1])]  # as sampling feeds them
    ours = [dec(step_in[0])]
    first = time.perf_counter() - t
    ref = [prior.step(ref_cache, step_in[0])[:, -1]]
    for token in step_in[1:]:
        ours.append(dec(token))
        ref.append(prior.step(ref_cache, token)[:, -1])
    ref, ours = torch.stack(ref, 1), torch.stack(ours, 1)
    return {"rel_max_diff": float((ours - ref).abs().max() / ref.abs().max()), "first_call_s": first}


def logit_error(ref: torch.Tensor, ours: torch.Tensor) -> dict:
    diff = (ours - ref).abs()
    return {"max_abs_diff": float(diff.max()), "max_diff_over_std": float(diff.max() / ref.std()),
            "mean_diff_over_std": float(diff.mean() / ref.std()), "logit_std": float(ref.std()),
            "argmax_agreement": float((ours.argmax(-1) == ref.argmax(-1)).float().mean()),
            "positions": int(ref.shape[0] * ref.shape[1])}


def run_window(prior: Prior, y, known, new: int, params: SamplingParams, seeds) -> dict:
    stamps = []
    length = known.shape[1] + new
    window = Window(prior.cfg.level, 0, 0, length)
    t0, c0 = time.perf_counter(), time.thread_time()
    out = sample_window(prior, y, known, length, params, seeds, window,
                        on_token=lambda: stamps.append((time.perf_counter(), time.thread_time())))
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    assert out.shape == (known.shape[0], length)
    n, steps = known.shape[0], len(stamps) - 1
    loop_wall, loop_cpu = stamps[-1][0] - stamps[0][0], stamps[-1][1] - stamps[0][1]
    return {"wall_s": wall, "cpu_s": cpu, "window_tok_s": new * n / wall, "window_tok_per_cpu_s": new * n / cpu,
            "loop_tok_s": steps * n / loop_wall, "loop_tok_per_cpu_s": steps * n / loop_cpu,
            "prefill_s": stamps[0][0] - t0, "tokens": out}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", choices=["tiny", "1b_lyrics"], default="tiny")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--tokens", type=int, default=None, help="new tokens per window (tiny 512, 1b_lyrics 32)")
    ap.add_argument("--prime", type=int, default=None, help="known music tokens first (tiny 64, 1b_lyrics 16)")
    ap.add_argument("--dtype", choices=list(DTYPES), default="fp32")
    ap.add_argument("--compile", action="store_true", help="compiled fixed-shape step (SamplingParams.compile)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=None, help="timed windows (tiny 7, 1b_lyrics 3)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed windows first (compilation happens here)")
    ap.add_argument("--check-positions", type=int, default=None,
                    help="positions compared with fp32 for bf16/int8 (tiny 256, 1b_lyrics 32); 0: skip")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    tiny = args.config == "tiny"
    new = args.tokens or (512 if tiny else 32)
    prime = args.prime if args.prime is not None else (64 if tiny else 16)
    repeats = args.repeats or (7 if tiny else 3)
    check = args.check_positions if args.check_positions is not None else (256 if tiny else 32)
    torch.set_num_threads(args.threads)
    result: dict = {"config": args.config, "batch": args.batch, "tokens": new, "prime": prime, "dtype": args.dtype,
                    "compile": args.compile, "threads": args.threads, "torch": torch.__version__,
                    "loadavg_start": os.getloadavg()[0]}
    print(f"# {args.config} batch {args.batch} dtype {args.dtype} compile {args.compile} threads {args.threads} "
          f"prime {prime} new {new}; load average {os.getloadavg()[0]:.1f}", flush=True)

    t = time.perf_counter()
    prior = build(args.config)
    result["build_s"] = time.perf_counter() - t
    cfg = prior.cfg
    dtype = DTYPES[args.dtype]
    gen = torch.Generator().manual_seed(2)

    if args.dtype != "fp32" and check > 0:  # quality first, while the fp32 weights exist
        y1 = labels(cfg, 1)
        seq = torch.randint(0, cfg.bins, (1, prime + check + 1), generator=gen)
        t = time.perf_counter()
        ref = decode_logits(prior, y1, seq, prime, None)
        convert(prior, args.dtype)
        ours = decode_logits(prior, y1, seq, prime, dtype)
        result["logit_error_vs_fp32"] = err = logit_error(ref, ours)
        print(f"logits vs fp32 over {err['positions']} positions: max|diff| {err['max_abs_diff']:.4g} = "
              f"{err['max_diff_over_std']:.3g} std (mean {err['mean_diff_over_std']:.3g} std, logit std "
              f"{err['logit_std']:.3g}), argmax agreement {err['argmax_agreement']:.3f} "
              f"[{time.perf_counter() - t:.0f} s]", flush=True)
    else:
        convert(prior, args.dtype)

    params = SamplingParams(dtype=dtype, compile=args.compile)
    y = labels(cfg, args.batch)
    if args.compile:
        result["compiled_step"] = par = compiled_step_parity(prior, y, args.batch)
        note = " (fp32 parity tests allow 1e-5)" if args.dtype == "fp32" else " (reduced-precision products)"
        print(f"compiled step: first call (compilation) {par['first_call_s']:.1f} s; logits vs Prior.step: "
              f"max|diff| = {par['rel_max_diff']:.2e} x max|logit|{note}", flush=True)
    known = torch.randint(0, cfg.bins, (args.batch, prime), generator=gen)
    seeds = list(range(100, 100 + args.batch))
    runs = []
    for i in range(args.warmup + repeats):
        r = run_window(prior, y, known, new, params, seeds)
        tag = "warm-up" if i < args.warmup else f"run {i - args.warmup + 1}"
        print(f"{tag:8s} wall {r['wall_s']:7.2f} s  cpu {r['cpu_s']:7.2f} s  prefill {r['prefill_s']:6.2f} s  "
              f"window {r['window_tok_s']:8.1f} tok/s  loop {r['loop_tok_s']:8.1f} tok/s  | per CPU second: "
              f"window {r['window_tok_per_cpu_s']:8.1f} loop {r['loop_tok_per_cpu_s']:8.1f}", flush=True)
        if i == 0:
            first = r["tokens"]
            result["first_window_s"] = r["wall_s"]
        else:
            assert torch.equal(r["tokens"], first), "same seeds, different tokens"
        if i >= args.warmup:
            runs.append({k: v for k, v in r.items() if k != "tokens"})
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result.update(runs=runs, median=med, loadavg_end=os.getloadavg()[0])
    print(f"median   wall {med['wall_s']:7.2f} s  cpu {med['cpu_s']:7.2f} s  window {med['window_tok_s']:8.1f} tok/s  "
          f"loop {med['loop_tok_s']:8.1f} tok/s  | per CPU second: window {med['window_tok_per_cpu_s']:8.1f} loop "
          f"{med['loop_tok_per_cpu_s']:8.1f}  (best loop {max(r['loop_tok_s'] for r in runs):.1f} tok/s); "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    del prior
    gc.collect()
    return result


if __name__ == "__main__":
    main()
