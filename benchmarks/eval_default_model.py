"""Score a model folder against issue 14's goals, on held-out audio, in one command.

    .venv/bin/python benchmarks/eval_default_model.py [--model DIR|debug] [--heldout DIR ...] [--quick]
                     [--json out.json] [--temperature 0.98] [--seed 0] [--threads 1]

Held-out audio: every FLAC/WAV in ``tests/engine/data/default_model_heldout`` plus each ``--heldout``
folder (labels from a ``heldout.json`` beside them, when there is one), read as mono at the model's rate.
Measures (functions in ``engine/train/evaluate.py``):

* codec: spectral convergence (STFT 2048/512) per level, against the trivial baselines at that level's
  bitrate (low-pass to the band 8-bit PCM of the same bitrate carries; another clip's codes, raw and gain
  matched) and the issue's "resample to 4 kHz"; level 0's level difference per octave band up to 8 kHz;
* continuations of each clip's middle 5 s (mode continue, full quality): RMS and integrated loudness
  against the prime, longest silent stretch, DC, and over all ordered pairs of primes how often chroma
  and MFCC-mean put a continuation closer to its own prime than to another, measurably (an exact test:
  ``evaluate.own_closer_p_value``);
* labels: mean log-mel distance between renders of different genres vs one genre with different seeds;
* draft vs full of the same seed: energy-envelope correlation, envelope spread, wall time per 10 s.

Prints a markdown table (measured vs goal) and writes everything as JSON (default ``out/eval/<model>.json``).
``--quick`` shortens everything (4-s continuations, 3-s draft label renders with 2 seeds instead of 4-s full
ones with 3, 10 s of each clip for the codec; draft and full are still timed on a real 10 s): about 30 s on
the default model, a smoke check rather than a verdict. Thresholds the issue leaves open (envelope correlation,
drone, DC, loudness tolerance, "clearly better") are constants below, marked as ours.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.io import audio
from engine.params import LIVE_DEFAULTS
from engine.request import TONES, RenderRequest
from engine.train import evaluate as ev
from engine.weights.bundle import load_models

DEFAULT_HELDOUT = Path(__file__).resolve().parents[1] / "tests" / "engine" / "data" / "default_model_heldout"
CODEC_GOAL = (0.15, 0.35, 0.65)  # spectral convergence per level, bottom first
CLEARLY_BETTER = 0.9  # "clearly better than a baseline": at most 90 % of the best baseline's spectral convergence
BAND_GOAL_DB = 3.0
RMS_GOAL_DB = 10.0
SILENCE_GOAL_S = 1.0
OWN_CLOSER_GOAL = 0.5
OWN_CLOSER_ALPHA = 0.05  # "measurably closer": evaluate.own_closer_p_value below this
ENVELOPE_GOAL = 0.5  # the issue says "follows"; this threshold is ours
NOT_A_DRONE = 0.5  # a draft's energy envelope moves at least half as much (std, dB) as the full render's (ours)
DC_GOAL_DBFS = -50.0  # the issue says "no DC" (it found -40 dBFS); this threshold is ours
LOUDNESS_GOAL_LU = 2.0  # the issue says "matches the prime's"; this tolerance is ours
DRAFT_GOAL_S, FULL_GOAL_S = 3.0, 90.0  # per 10 s of continuation
PRIME_SECONDS = 5.0
OFFICIAL_GENRES = ("classical", "rock", "jazz")  # for models with the official v2 vocabulary (e.g. debug)


def load_heldout(folders: list[Path], sr: int, max_seconds: float | None) -> list[dict]:
    clips = []
    for folder in folders:
        meta = {}
        if (folder / "heldout.json").exists():
            meta = {m["id"]: m for m in json.loads((folder / "heldout.json").read_text())["clips"]}
        for f in sorted(p for p in folder.iterdir() if p.suffix.lower() in (".flac", ".wav")):
            x, rate = sf.read(f, dtype="float32", always_2d=True)
            x = audio.resample(x.mean(axis=1), rate, sr)
            if max_seconds is not None:  # the middle max_seconds
                n = int(max_seconds * sr)
                x = x[max(0, (len(x) - n) // 2):][:n]
            m = meta.get(f.stem, {})
            clips.append({"id": f.stem, "audio": x, "artist": m.get("artist"), "genre": m.get("genre")})
    return clips


def middle(x: np.ndarray, n: int) -> np.ndarray:
    return x[max(0, (len(x) - n) // 2):][:n]


def pick_genres(models, clips: list[dict], n: int = 3) -> list[str]:
    if models.vocab is None:
        return list(OFFICIAL_GENRES[:n])
    known = models.vocab["genre"].ids
    genres = list(dict.fromkeys(c["genre"] for c in clips if c["genre"] in known))
    genres += [g for g in models.vocab["genre"].names if g != "unknown" and g not in genres]
    return genres[:n]


def fmt(v: float, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def goal_rows(r: dict) -> list[tuple[str, str, str, bool | None]]:
    rows = []
    codec = r["codec"]
    for lv in codec["levels"]:
        i = lv["level"]
        goal = CODEC_GOAL[i] if i < len(CODEC_GOAL) else float("nan")
        rows.append((f"codec level {i} (hop {lv['hop']}) spectral convergence",
                     f"{fmt(lv['sc'])} ({fmt(lv['sc_db'], '.1f')} dB)", f"<= {goal}", lv["sc"] <= goal))
        base = min(lv["sc_bandwidth"], lv["sc_other_codes"], lv["sc_other_codes_gain_matched"])
        rows.append((f"codec level {i} vs baselines at {lv['bitrate_bps'] / 1000:.1f} kbit/s",
                     (f"{fmt(lv['sc'])} vs band {fmt(lv['sc_bandwidth'])} ({lv['bandwidth_hz']:.0f} Hz), other codes "
                      f"{fmt(lv['sc_other_codes'])} / gain-matched {fmt(lv['sc_other_codes_gain_matched'])}"),
                     f"<= {CLEARLY_BETTER:g} x best baseline", lv["sc"] <= CLEARLY_BETTER * base))
    lv0 = codec["levels"][0]
    rows.append(("codec level 0 vs resampling to 4 kHz (the issue's reference)",
                 f"{fmt(lv0['sc'])} vs {fmt(codec['sc_resample'])}", "lower", lv0["sc"] < codec["sc_resample"]))
    bands = lv0["bands_db"]
    worst = max(bands, key=lambda k: abs(bands[k]))
    rows.append(("codec level 0 octave bands (worst, dB)", f"{bands[worst]:+.1f} dB at {worst} Hz; "
                 + " ".join(f"{v:+.1f}" for v in bands.values()), f"within +-{BAND_GOAL_DB:g} dB",
                 all(abs(v) <= BAND_GOAL_DB for v in bands.values())))
    c = r["continuation"]
    rows.append((f"continuation RMS vs prime, before the mix gain (worst of {len(c['renders'])})",
                 f"{c['max_abs_rms_diff_db']:.1f} dB",
                 f"within {RMS_GOAL_DB:g} dB", c["max_abs_rms_diff_db"] <= RMS_GOAL_DB))
    rows.append(("longest silent stretch (< -50 dBFS, 50-ms frames)", f"{c['max_silence_s']:.2f} s",
                 f"< {SILENCE_GOAL_S:g} s", c["max_silence_s"] < SILENCE_GOAL_S))
    for key, name in (("chroma_own_closer", "chroma"), ("mfcc_own_closer", "MFCC mean")):
        p = c.get(f"{key}_p", float("nan"))
        rows.append((f"{name}: own prime closer than another ({c['pairs']} pairs)",
                     f"{fmt(c[key], '.2f')}, p = {fmt(p, '.3f')} (prime halves: {fmt(c['ceiling'][key], '.2f')})",
                     f"> {OWN_CLOSER_GOAL:g}, p < {OWN_CLOSER_ALPHA:g} (measurably)",
                     c[key] > OWN_CLOSER_GOAL and p < OWN_CLOSER_ALPHA))
    lab = r["labels"]
    rows.append((f"labels: log-mel distance between genres vs within ({lab['quality']}, {lab['seconds']:g} s)",
                 f"{fmt(lab['between_genres_db'], '.2f')} vs {fmt(lab['within_genre_db'], '.2f')} dB",
                 "between > within", lab["between_genres_db"] > lab["within_genre_db"]))
    d = r["draft_full"]
    spread = d["draft"]["envelope_std_db"] / max(d["full"]["envelope_std_db"], 1e-9)
    rows.append(("draft follows full: envelope correlation; draft/full envelope spread",
                 (f"{fmt(d['envelope_correlation'], '.2f')}; {spread:.2f} ({d['draft']['envelope_std_db']:.1f} / "
                  f"{d['full']['envelope_std_db']:.1f} dB)"), f"> {ENVELOPE_GOAL:g}; >= {NOT_A_DRONE:g} (not a drone)",
                 d["envelope_correlation"] > ENVELOPE_GOAL and spread >= NOT_A_DRONE))
    scaled = "" if d["seconds"] == 10 else f" (from {d['seconds']:g} s, scaled)"
    rows.append(("draft wall time per 10 s" + scaled, f"{d['draft']['wall_s_per_10s']:.1f} s", f"<= {DRAFT_GOAL_S:g} s",
                 d["draft"]["wall_s_per_10s"] <= DRAFT_GOAL_S))
    rows.append(("full wall time per 10 s" + scaled, f"{d['full']['wall_s_per_10s']:.1f} s", f"<= {FULL_GOAL_S:g} s",
                 d["full"]["wall_s_per_10s"] <= FULL_GOAL_S))
    dcs = [x["dc"] for x in c["renders"]] + [d["draft"]["dc"], d["full"]["dc"]]
    dc_db = 20 * math.log10(max(max(abs(v) for v in dcs), 1e-12))
    rows.append(("DC offset of renders (worst)", f"{dc_db:.1f} dBFS", f"< {DC_GOAL_DBFS:g} dBFS", dc_db < DC_GOAL_DBFS))
    lu = [x["lufs_diff"] for x in c["renders"] if math.isfinite(x["lufs_diff"])]
    worst_lu = max(lu, key=abs) if lu else float("nan")
    rows.append(("integrated loudness of renders vs prime (worst, BS.1770)", f"{worst_lu:+.1f} LU"
                 + f" (draft {d['draft']['lufs'] - d['prime_lufs']:+.1f} LU)", f"within {LOUDNESS_GOAL_LU:g} LU",
                 bool(lu) and abs(worst_lu) <= LOUDNESS_GOAL_LU))
    return rows


def clean(o):
    """JSON-safe: non-finite floats -> None, numpy scalars -> Python."""
    if isinstance(o, dict):
        return {str(k): clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)):
        return float(o) if math.isfinite(o) else None
    if isinstance(o, np.integer):
        return int(o)
    return o


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="model folder or 'debug' (default: the embedded model)")
    ap.add_argument("--heldout", type=Path, action="append", default=[], help="another folder of held-out FLACs")
    ap.add_argument("--no-default-heldout", action="store_true", help="leave out the repository's three clips")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--temperature", type=float, default=0.98)
    ap.add_argument("--adherence", type=float, default=LIVE_DEFAULTS["adherence"],
                    help="continuations: the share of each top-level draw taken from the prime's phrases "
                         "(0: the model alone)")
    ap.add_argument("--tone", choices=TONES, default=RenderRequest.tone,
                    help="continuations: match the prime's octave balance (the engine's default) or not")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    models = load_models(args.model)
    torch.set_num_threads(args.threads)
    sr = models.sample_rate
    folders = ([] if args.no_default_heldout else [DEFAULT_HELDOUT]) + args.heldout
    q = args.quick
    clips = load_heldout(folders, sr, 10.0 if q else 60.0)
    if len(clips) < 2:
        raise SystemExit("need at least two held-out files (pairs of primes, other files' codes)")
    cont_s, label_s, label_q, n_seeds = (4.0, 3.0, "draft", 2) if q else (10.0, 4.0, "full", 3)
    df_s = 10.0  # the draft goal is for 10 s: measured at that length even in a quick run (a draft is cheap)
    primes = [middle(c["audio"], int(PRIME_SECONDS * sr)) for c in clips]
    labels = [{"artist": c["artist"], "genre": c["genre"]} for c in clips] if models.vocab else None
    if labels:  # a name the model does not know would fail the request: leave it out
        labels = [{k: v for k, v in lab.items() if v in models.vocab[k].ids} for lab in labels]

    def step(name, fn):
        t0 = time.perf_counter()
        out = fn()
        print(f"  {name}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        return out

    result = {"model": models.name, "sample_rate": sr, "hop_lengths": list(models.vqvae.hop_lengths),
              "codebook": models.vqvae.cfg.l_bins, "quick": q, "heldout": [c["id"] for c in clips],
              "folders": [str(f) for f in folders], "threads": torch.get_num_threads()}
    result["codec"] = step("codec", lambda: ev.codec_report(models, [c["audio"] for c in clips]))
    result["continuation"] = step("continuations", lambda: ev.continuation_report(
        models, primes, cont_s, args.temperature, args.seed, labels, adherence=args.adherence, tone=args.tone))
    genres = pick_genres(models, clips)
    seeds = tuple(range(args.seed, args.seed + n_seeds))
    result["labels"] = step("labels", lambda: ev.label_report(models, genres, seeds, label_s, label_q, args.temperature))
    result["draft_full"] = step("draft vs full", lambda: ev.draft_full_report(models, primes[0], df_s, args.seed,
                                                                               args.temperature))
    rows = goal_rows(result)
    result["goals"] = [{"goal": g, "measured": m, "target": t, "met": ok} for g, m, t, ok in rows]
    result["wall_s"] = time.perf_counter() - t_start
    print(f"\n### {models.name}: {len(clips)} held-out files, {result['codec']['seconds']:.0f} s"
          f"{' (quick)' if q else ''}, temperature {args.temperature:g}, adherence {args.adherence:g}, tone {args.tone}, "
          f"seed {args.seed}\n")
    print("| goal | measured | target | met |\n|---|---|---|---|")
    for g, m, t, ok in rows:
        print(f"| {g} | {m} | {t} | {'yes' if ok else 'no'} |")
    out = args.json or Path("out") / "eval" / f"{Path(str(models.name)).name}{'-quick' if q else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(clean(result), indent=1))
    print(f"\n{sum(ok for *_, ok in rows)}/{len(rows)} goals met; {result['wall_s']:.0f} s; JSON: {out}")
    return result


if __name__ == "__main__":
    main()
