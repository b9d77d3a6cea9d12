"""What a quiet source does to the model, with and without the input lift (``loudness.input_gain_db``).

    .venv/bin/python benchmarks/bench_input_level.py --heldout CORPUS_HELDOUT_DIR [--seconds 4] [--json out.json]

A producer selects regions off stems and mixes at any level; the default model was trained on peak-normalised
music and states that level (``model.json`` ``meta.input_rms_dbfs``). Two measures on held-out files, never
trained on (every FLAC/WAV in each ``--heldout`` folder; without one, the repository's three clips):

* codec: spectral convergence (STFT 2048/512) of each level's reconstruction of the middle 6 s, the source
  scaled to a peak of 0 / -12 / -24 / -36 dBFS and the reconstruction scaled back, as the model sees it without
  the lift (with it, every level is encoded at the model's input level: the 0 dB row, give or take the peak);
* continuations (mode continue, full quality) of each file's middle 5 s, its level lowered by ``--quiet-db``,
  with the lift and without it (the same model, its ``input_rms_dbfs`` removed), beside the unlowered primes:
  RMS of the continuation against its prime (before the mix gain), longest silence, and over all ordered pairs
  whether chroma / MFCC mean put a continuation closer to its own prime (``evaluate.continuation_report``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.eval_default_model import DEFAULT_HELDOUT, PRIME_SECONDS, load_heldout, middle  # noqa: E402
from engine.io.loudness import input_gain_db  # noqa: E402
from engine.model.losses import spectral_convergence  # noqa: E402
from engine.train import evaluate as ev  # noqa: E402
from engine.weights.bundle import load_models  # noqa: E402

PEAKS_DB = (0.0, -12.0, -24.0, -36.0)


def codec_by_level(models, clips: list[np.ndarray]) -> dict[str, list[float]]:
    """Median spectral convergence per level (bottom first) at each source peak, no lift."""
    v, out = models.vqvae, {}
    for peak_db in PEAKS_DB:
        per_level = [[] for _ in range(models.levels)]
        for x in clips:
            x = x[: len(x) // v.hop_lengths[-1] * v.hop_lengths[-1]]
            g = np.float32(10 ** (peak_db / 20) / max(float(np.abs(x).max()), 1e-9))
            codes = v.encode(torch.from_numpy(x * g)[None])
            for lv in range(models.levels):
                y = v.decode(codes[lv], lv, precision="fp32")[0] / g
                per_level[lv].append(float(spectral_convergence(torch.from_numpy(x)[None], y[None])))
        out[f"{peak_db:g}"] = [round(float(np.median(s)), 3) for s in per_level]
    return out


def summary(report: dict, lifts: list[float]) -> dict:
    """The continuation report's figures that a source's level can move. ``max_silence_s`` counts frames under
    -50 dBFS at the prime's level: a continuation of a prime 20 dB down crosses it 20 dB sooner."""
    rms = [r["rms_diff_db"] for r in report["renders"]]
    return {"rms_diff_db_median": round(float(np.median(rms)), 2), "rms_diff_db_worst": round(max(rms, key=abs), 2),
            "max_silence_s": round(report["max_silence_s"], 2), "input_gain_db_median": round(float(np.median(lifts)), 2),
            "chroma_own_closer": round(report["chroma_own_closer"], 3),
            "chroma_p": round(report["chroma_own_closer_p"], 3), "mfcc_own_closer": round(report["mfcc_own_closer"], 3),
            "mfcc_p": round(report["mfcc_own_closer_p"], 3)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the embedded model)")
    ap.add_argument("--heldout", type=Path, action="append", default=[])
    ap.add_argument("--seconds", type=float, default=4.0, help="continuation length")
    ap.add_argument("--quiet-db", type=float, default=20.0, help="how much quieter the quiet primes are")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    models = load_models(args.model)
    if models.input_rms_dbfs is None:
        raise SystemExit(f"{models.name} states no input level (model.json meta.input_rms_dbfs): nothing to compare")
    unlifted = dataclasses.replace(models, meta={k: v for k, v in models.meta.items() if k != "input_rms_dbfs"})
    sr = models.sample_rate
    clips = load_heldout(args.heldout or [DEFAULT_HELDOUT], sr, 60.0)
    primes = [middle(c["audio"], int(PRIME_SECONDS * sr)) for c in clips]
    quiet = [p * np.float32(10 ** (-args.quiet_db / 20)) for p in primes]
    t0 = time.perf_counter()
    result = {"model": models.name, "input_rms_dbfs": models.input_rms_dbfs, "files": [c["id"] for c in clips],
              "quiet_db": args.quiet_db, "seconds": args.seconds,
              "codec_sc_by_peak_db": codec_by_level(models, [middle(c["audio"], 6 * sr) for c in clips])}
    print(json.dumps(result["codec_sc_by_peak_db"]), file=sys.stderr)
    for name, m, p in (("as_is_lifted", models, primes), ("quiet_lifted", models, quiet),
                       ("quiet_unlifted", unlifted, quiet)):
        lifts = [input_gain_db(x, m.input_rms_dbfs) for x in p]
        result[name] = summary(ev.continuation_report(m, p, args.seconds, quality="full"), lifts)
        print(name, json.dumps(result[name]), file=sys.stderr)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    out = args.json or Path("out") / "eval" / "input_level.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
