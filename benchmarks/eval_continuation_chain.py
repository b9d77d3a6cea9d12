"""Where a continuation loses its prime: the own-prime test of ``eval_default_model.py`` at each link of the chain.

    .venv/bin/python benchmarks/eval_continuation_chain.py [--model DIR] [--heldout DIR ...] [--json out.json]

For each held-out clip, the prime is 5 s from the middle and the *truth* is the 4 s that follow it in the file.
Every row asks the same question over all ordered pairs of primes: is output i closer (chroma, MFCC mean) to
prime i than to prime j, measurably (``evaluate.own_closer_p_value``)? Rows, from the music to the render:

* ``truth``: the file's own next 4 s (what a perfect continuation could score);
* ``codec level N``: the truth encoded and decoded at level N (the codec alone; no prior);
* ``upsampled from level N``: the truth re-rendered from its true codes at level N and above (mode rerender with
  ``level`` N - 1: the upsamplers below N);
* ``continuation draft`` / ``continuation full``: 4-s continuations of the prime (the top prior, then all).

A row that drops below the one above it names the part that loses the prime: the codec, the upsamplers or the
top prior. Renders are measured before the mix gain, like ``evaluate.continuation_report``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_default_model import DEFAULT_HELDOUT, PRIME_SECONDS, load_heldout
from engine.params import LIVE_DEFAULTS
from engine.request import TONES, RenderRequest
from engine.train import evaluate as ev
from engine.weights.bundle import load_models

TRUTH_SECONDS = 4.0  # as the quick evaluation's continuations


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument("--heldout", type=Path, action="append", default=[], help="more held-out folders")
    ap.add_argument("--no-default-heldout", action="store_true")
    ap.add_argument("--temperature", type=float, default=0.98)
    ap.add_argument("--adherence", type=float, default=LIVE_DEFAULTS["adherence"],
                    help="continuations: the share of each top-level draw taken from the prime's phrases (0: the "
                         "model alone)")
    ap.add_argument("--tone", choices=TONES, default=RenderRequest.tone,
                    help="continuations: match the prime's octave balance (the engine's default) or not")
    ap.add_argument("--prime-seconds", type=float, default=PRIME_SECONDS)
    ap.add_argument("--truth-seconds", type=float, default=TRUTH_SECONDS, help="also the continuations' length")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    models = load_models(args.model)
    sr, top_hop = models.sample_rate, models.vqvae.hop_lengths[-1]
    folders = ([] if args.no_default_heldout else [DEFAULT_HELDOUT]) + args.heldout
    p, n = int(args.prime_seconds * sr), int(args.truth_seconds * sr) // top_hop * top_hop
    clips = [c for c in load_heldout(folders, sr, None) if len(c["audio"]) >= p + n]
    if len(clips) < 2:
        raise SystemExit(f"need two or more held-out clips of at least {(p + n) / sr:.1f} s; add --heldout DIR")
    primes, truths = [], []
    for c in clips:
        start = (len(c["audio"]) - p - n) // 2
        primes.append(c["audio"][start:start + p])
        truths.append(c["audio"][start + p:start + p + n])
    labels = [{k: c[k] for k in ("artist", "genre") if models.vocab and c[k] in models.vocab[k].ids} for c in clips]
    rows: dict[str, dict] = {}

    def row(name: str, outputs: list[np.ndarray]) -> None:
        r = ev.own_closer_report(outputs, primes, sr)
        rows[name] = {k: r[k] for k in ("chroma_own_closer", "chroma_own_closer_p", "mfcc_own_closer",
                                         "mfcc_own_closer_p")}
        rows[name]["rms_vs_prime_db_median"] = float(np.median([ev.rms_dbfs(y) - ev.rms_dbfs(x)
                                                                for y, x in zip(outputs, primes)]))
        print(f"{name:28s} chroma {r['chroma_own_closer']:.2f} (p {r['chroma_own_closer_p']:.3f})  "
              f"MFCC {r['mfcc_own_closer']:.2f} (p {r['mfcc_own_closer_p']:.3f})", flush=True)

    def rendered(mode: str, sources: list[np.ndarray], **fields) -> list[np.ndarray]:
        out = []
        for i, x in enumerate(sources):
            y, _, gain = ev._render(models, mode, {"seed": i, "temperature": args.temperature, "quality": "full",
                                                   **fields, **(labels[i] if mode == "continue" else {})}, x)
            out.append(y * np.float32(10 ** (-gain / 20)))
        return out

    t0 = time.perf_counter()
    row("truth", truths)
    for level in reversed(range(models.levels)):
        with torch.inference_mode():
            row(f"codec level {level}", [models.vqvae.decode(models.vqvae.encode(torch.from_numpy(x)[None],
                                                                                  levels=(level,))[0], level)[0].numpy()
                                         for x in truths])
    for level in reversed(range(1, models.levels)):  # a re-render keeps the codes above its ``level``
        row(f"upsampled from level {level}", rendered("rerender", truths, level=level - 1))
    cont = {"seconds": n / sr, "adherence": args.adherence, "tone": args.tone}
    row("continuation draft", rendered("continue", primes, quality="draft", **cont))
    row("continuation full", rendered("continue", primes, **cont))
    result = {"model": models.name, "clips": len(clips), "pairs": len(clips) * (len(clips) - 1),
              "temperature": args.temperature, "adherence": args.adherence, "tone": args.tone,
              "rows": rows,
              "wall_s": time.perf_counter() - t0}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
