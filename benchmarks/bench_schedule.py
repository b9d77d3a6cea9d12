"""Upsampling schedules side by side: the reference's sequential windows vs parallel lanes (``schedule``).

One process, one set of weights per part, runs interleaved (reference, parallel, reference, ...) so both see the
same machine load. Figures and method: benchmarks/README.md, "Upsampling schedules".

1. Speed: full 3-level renders (``generate``, full quality) with tiny random-weight priors: the top is the 5b options
   at width 128, depth 4, 2 heads, context 1024, 16 blocks (``bench_prior.py --config tiny``), the two upsamplers the
   official upsampler options at the same size (conditioner width 128, depth 4), over the debug VQ-VAE with 2048
   bins (official hops 8/32/128 at 44.1 kHz). Batch 1 and 4 takes; medians of ``--repeats`` runs with their spread
   (min-max), wall time, the thread's CPU time, tokens/s (codes of all levels and takes / wall s), the peak of the
   process's resident memory during the run above its level before it (freed heap handed back first; sampled every
   5 ms from /proc) and the load average.
2. Sound: held-out music (``tests/engine/data/default_model_heldout``, never trained on) re-rendered with the
   embedded default model from its true level-1 codes to level 0 under both schedules (same seeds). Spectral
   convergence of each level-0 result against the original audio, and around the lane joins (+-10 ms): mean
   spectral flux (dB rise) and high-frequency (> 5 kHz) energy relative to the rest of the render, for the parallel
   render, the reference render at the same positions, an audio crossfade of the lanes (the alternative join,
   not used) and a control with hard audio splices (reference / parallel alternating at the joins). A spectrogram
   of one join goes to ``--png``.

    .venv/bin/python benchmarks/bench_schedule.py                       # both parts, ~5 min on 2 loaded cores
    .venv/bin/python benchmarks/bench_schedule.py --part speed --seconds 3 --repeats 3 --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.generate.codec import encode_audio  # noqa: E402
from engine.generate.conditioning import label_fn  # noqa: E402
from engine.generate.render import default_sampling, render  # noqa: E402
from engine.generate.sampling import (  # noqa: E402
    Lane,
    LevelJob,
    SamplingParams,
    join_lanes,
    level_lanes,
    sample_lanes,
    sample_level,
)
from engine.io import audio  # noqa: E402
from engine.model.config import OFFICIAL_PRIORS  # noqa: E402
from engine.model.fast.static_step import WARM  # noqa: E402
from engine.model.prior import Prior  # noqa: E402
from engine.request import RenderRequest  # noqa: E402
from engine.runtime.device import inference_context, release_cpu_memory  # noqa: E402
from engine.runtime.progress import CancelToken  # noqa: E402
from engine.weights.bundle import load_models  # noqa: E402
from engine.weights.debug import debug_vqvae  # noqa: E402
from engine.weights.models import Models  # noqa: E402

HELDOUT = Path(__file__).resolve().parents[1] / "tests/engine/data/default_model_heldout"
SCHEDULES = ("reference", "parallel")
N_FFT, STFT_HOP = 256, 32  # 11.6 ms frames every 1.45 ms at 22.05 kHz
JOIN_SECONDS = 0.010  # frames centred within +-10 ms of a join are "near" it
HF_HZ = 5000.0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


# ------------------------------------------------------------------------------------------------ speed

def tiny_models(seed: int = 0) -> Models:
    size = dict(width=128, depth=4, heads=2, n_ctx=1024, blocks=16)
    torch.manual_seed(seed)
    priors = [Prior(dataclasses.replace(OFFICIAL_PRIORS[f"upsampler_level_{lv}"], cond_width=128, cond_depth=4,
                                        **size)).eval() for lv in (0, 1)]
    priors.append(Prior(dataclasses.replace(OFFICIAL_PRIORS["5b"], **size)).eval())
    return Models("tiny", debug_vqvae(seed, l_bins=2048), priors, {"licence": "random weights (benchmark)"})


class PeakRSS:
    """Peak resident memory of this process above its level at start, sampled every 5 ms from /proc/self/statm."""

    def __init__(self) -> None:
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.base = self.peak = self._rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        return int(Path("/proc/self/statm").read_text().split()[1]) * self.page

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> "PeakRSS":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mib(self) -> float:
        return (self.peak - self.base) / 2**20


def speed_configs(models: Models) -> dict[str, SamplingParams]:
    """What the speed part compares: the reference's sequential schedule and the parallel one (both eager), and the
    engine's default path (``render.default_sampling``: parallel lanes and the warm compiled step)."""
    return {"reference": SamplingParams(schedule="reference"), "parallel": SamplingParams(schedule="parallel"),
            "default": default_sampling(models)}


def run_render(models: Models, schedule: str, takes: int, seconds: float, seed: int,
               params: SamplingParams | None = None) -> dict:
    req = RenderRequest.from_fields("generate", {"seconds": seconds, "quality": "full", "takes": takes, "seed": seed})
    load = os.getloadavg()[0]
    release_cpu_memory()  # freed heap back to the OS, so the peak below is this run's (the engine keeps freed memory)
    with PeakRSS() as mem:
        t0, c0 = time.perf_counter(), time.process_time()
        out = render(models, req, lambda p: None, CancelToken(), sampling=params or SamplingParams(schedule=schedule))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = sum(len(z) for take in out for z in take.codes.values())
    return {"wall": wall, "cpu": cpu, "tokens": tokens, "tokens_per_s": tokens / wall, "peak_mib": mem.mib,
            "load": (load + os.getloadavg()[0]) / 2}


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def speed(args) -> dict:
    models = tiny_models()
    total = int(round(args.seconds * models.sample_rate)) // 128 * 128 + 128
    lanes = {f"takes {n}": {f"level {lv}": len(level_lanes(models.priors[lv], 0, total // models.vqvae.hop_lengths[lv],
                                                           SamplingParams(), n)) or 1 for lv in (1, 0)}
             for n in args.takes}
    print(f"tiny priors, {args.seconds:g} s full render; lanes under the parallel schedule: {lanes}")
    configs = speed_configs(models)
    run_render(models, "parallel", 1, 0.5, 0)  # warm-up: allocator, kernels
    for n in args.takes:  # as a warm engine: the default path's step shapes compiled in the background first
        run_render(models, "default", n, args.seconds, 0, configs["default"])
    t0 = time.perf_counter()
    print(f"compiled steps ready: {WARM.wait(timeout=1800)} ({time.perf_counter() - t0:.0f} s more)", flush=True)
    runs: dict[str, list[dict]] = {}
    for r in range(args.repeats):
        for n in args.takes:
            for schedule, params in configs.items():
                res = run_render(models, schedule, n, args.seconds, seed=r, params=params)
                runs.setdefault(f"{schedule} x{n}", []).append(res)
                print(f"  repeat {r} takes {n} {schedule:<9} wall {res['wall']:6.2f} s cpu {res['cpu']:6.2f} s "
                      f"{res['tokens_per_s']:7.0f} tok/s peak +{res['peak_mib']:5.0f} MiB load {res['load']:.1f}",
                      flush=True)
    summary = {key: {k: spread([v[k] for v in vals]) for k in ("wall", "cpu", "tokens_per_s", "peak_mib", "load")}
               for key, vals in runs.items()}
    print(f"\n{'render':<16} {'wall s (min-max)':>22} {'CPU s':>8} {'tokens/s':>9} {'peak MiB':>9} {'load':>5} "
          "speed-up")
    for n in args.takes:
        ref = summary[f"reference x{n}"]["wall"]["median"]
        for schedule in configs:
            s = summary[f"{schedule} x{n}"]
            w = s["wall"]
            print(f"{schedule + ' x' + str(n):<16} {w['median']:7.2f} ({w['min']:.2f}-{w['max']:.2f}) "
                  f"{s['cpu']['median']:8.2f} {s['tokens_per_s']['median']:9.0f} {s['peak_mib']['median']:9.0f} "
                  f"{s['load']['median']:5.1f} {ref / w['median']:6.2f}x")
    return {"lanes": lanes, "runs": runs, "summary": summary}


# ------------------------------------------------------------------------------------------------ sound

def stft_mag(x: np.ndarray) -> np.ndarray:
    t = torch.stft(torch.from_numpy(np.ascontiguousarray(x)).float(), N_FFT, STFT_HOP,
                   window=torch.hann_window(N_FFT), center=True, return_complex=True)
    return t.abs().numpy()  # (bins, frames)


def spectral_convergence(x: np.ndarray, ref: np.ndarray) -> float:
    X, R = stft_mag(x), stft_mag(ref)
    return float(np.linalg.norm(X - R) / np.linalg.norm(R))


def join_ratios(x: np.ndarray, joins: list[float], sr: int) -> tuple[float, float, float]:
    """Near the joins (frames centred within +-10 ms of one) / elsewhere (the first and last 20 ms left out):
    (mean spectral flux, mean > 5 kHz energy, the largest > 5 kHz energy of one join's frames). Flux: the mean over
    bins of the rise in dB from the previous frame (80 dB range), so it follows onsets and clicks, not loudness."""
    S = stft_mag(x)
    db = 20 * np.log10(S + 1e-7)
    db = np.maximum(db, db.max() - 80.0)
    flux = np.maximum(0.0, db[:, 1:] - db[:, :-1]).mean(0)
    flux = np.concatenate([flux[:1], flux])
    hf = (S[int(HF_HZ / (sr / N_FFT)):] ** 2).sum(0)
    centres = np.arange(S.shape[1]) * STFT_HOP
    edge = (centres < 0.02 * sr) | (centres > len(x) - 0.02 * sr)
    each = [(np.abs(centres - j) <= JOIN_SECONDS * sr) & ~edge for j in joins]
    near = np.logical_or.reduce(each)
    far = ~near & ~edge
    return (float(flux[near].mean() / flux[far].mean()), float(hf[near].mean() / hf[far].mean()),
            max(float(hf[m].mean() / hf[far].mean()) for m in each))


def crossfade(lane_audio: np.ndarray, lanes: list[Lane], hop: int, n: int) -> np.ndarray:
    """Lanes decoded one by one, overlap-added with an equal-power (sin/cos) crossfade over each overlap."""
    out = np.zeros(n, np.float32)
    for i, (a, lane) in enumerate(zip(lane_audio, lanes)):
        w = np.ones(len(a), np.float32)
        if i > 0:
            k = (lanes[i - 1].end - lane.start) * hop
            w[:k] *= np.sin(np.pi / 2 * (np.arange(k) + 0.5) / k)
        if i + 1 < len(lanes):
            k = (lane.end - lanes[i + 1].start) * hop
            w[-k:] *= np.cos(np.pi / 2 * (np.arange(k) + 0.5) / k)
        out[lane.start * hop: lane.end * hop] += a * w
    return out


def sound(args) -> dict:
    models = load_models(None)
    sr, hop = models.sample_rate, models.vqvae.hop_lengths[0]
    prior = models.priors[0]
    clips = json.loads((HELDOUT / "heldout.json").read_text())["clips"]
    rows, example = [], None
    for clip in clips:
        x = audio.to_model_input(audio.read_region(HELDOUT / f"{clip['id']}.flac"), sr)
        codes = encode_audio(models.vqvae, x)
        total = codes[0].shape[1]
        original = np.pad(x, (0, total * hop - len(x)))
        req = RenderRequest.from_fields("generate", {"seconds": len(x) / sr, "artist": clip["artist"],
                                                     "genre": clip["genre"], "seed": 1})
        job = LevelJob(prior, total, label_fn(models, 0, req, total * hop, 1), torch.from_numpy(codes[1]))
        params = {s: SamplingParams(schedule=s) for s in SCHEDULES}
        lanes = level_lanes(prior, 0, total, params["parallel"], 1)
        cuts = [(b.start + a.end) // 2 * hop for a, b in zip(lanes, lanes[1:])]
        mids = [(b.start + a.end) * hop / 2 for a, b in zip(lanes, lanes[1:])]
        for seed in args.seeds:
            none = torch.zeros(1, 0, dtype=torch.long)
            with inference_context(models.device):
                t0 = time.perf_counter()
                z_ref = sample_level(job, none, params["reference"], [seed])
                t_ref = time.perf_counter() - t0
                t0 = time.perf_counter()
                lane_codes = sample_lanes(job, none, params["parallel"], [seed], lanes)
                z_par = join_lanes(none, lane_codes, lanes)
                t_par = time.perf_counter() - t0
                dec = lambda z: models.vqvae.decode(z, 0, precision="fp32").cpu().numpy()  # noqa: E731
                y_ref, y_par, y_true = dec(z_ref)[0], dec(z_par)[0], dec(torch.from_numpy(codes[0]))[0]
                y_fade = crossfade(dec(lane_codes[0]), lanes, hop, total * hop)
            bounds = [0, *cuts, len(y_ref)]
            y_splice = np.concatenate([(y_ref, y_par)[i % 2][lo:hi]  # hard cuts between the two renders
                                       for i, (lo, hi) in enumerate(zip(bounds, bounds[1:]))])
            row = {"clip": clip["id"], "seed": seed, "lanes": len(lanes), "joins": len(cuts),
                   "overlap_ms": 1000 * (lanes[0].end - lanes[1].start) * hop / sr,
                   "level0_seconds": {"reference": t_ref, "parallel": t_par},
                   "sc": {"true codes": spectral_convergence(y_true, original),
                          "reference": spectral_convergence(y_ref, original),
                          "parallel": spectral_convergence(y_par, original),
                          "crossfade": spectral_convergence(y_fade, original)},
                   "join_flux_hf": {"parallel": join_ratios(y_par, cuts, sr),
                                    "reference": join_ratios(y_ref, cuts, sr),
                                    "crossfade": join_ratios(y_fade, mids, sr),
                                    "splice": join_ratios(y_splice, cuts, sr)}}
            rows.append(row)
            print(f"  {clip['id'][:24]:<24} seed {seed} lanes {len(lanes)} level 0 {t_ref:5.1f} s -> {t_par:4.1f} s SC "
                  + " ".join(f"{k} {v:.4f}" for k, v in row["sc"].items()) + "  near joins: flux/HF/worst HF "
                  + " ".join(f"{k} {a:.2f}/{b:.2f}/{c:.2f}" for k, (a, b, c) in row["join_flux_hf"].items()),
                  flush=True)
            if example is None:
                example = (clip["id"], y_ref, y_par, original, cuts, lanes, hop, sr)
    med = lambda f: statistics.median(f(r) for r in rows)  # noqa: E731
    summary = {
        "sc": {k: med(lambda r, k=k: r["sc"][k]) for k in ("true codes", "reference", "parallel", "crossfade")},
        "sc_parallel_vs_reference_percent": med(lambda r: 100 * (r["sc"]["parallel"] / r["sc"]["reference"] - 1)),
        "sc_crossfade_vs_reference_percent": med(lambda r: 100 * (r["sc"]["crossfade"] / r["sc"]["reference"] - 1)),
        "join_flux": {k: med(lambda r, k=k: r["join_flux_hf"][k][0]) for k in rows[0]["join_flux_hf"]},
        "join_hf": {k: med(lambda r, k=k: r["join_flux_hf"][k][1]) for k in rows[0]["join_flux_hf"]},
        "worst_join_hf": {k: max(r["join_flux_hf"][k][2] for r in rows) for k in rows[0]["join_flux_hf"]},
        "level0_seconds": {k: med(lambda r, k=k: r["level0_seconds"][k]) for k in SCHEDULES},
    }
    print(f"\nmedians over {len(rows)} renders: SC {summary['sc']}; parallel vs reference "
          f"{summary['sc_parallel_vs_reference_percent']:+.2f} %, crossfade vs reference "
          f"{summary['sc_crossfade_vs_reference_percent']:+.2f} %")
    for key, label in (("join_flux", "flux"), ("join_hf", "> 5 kHz energy"), ("worst_join_hf", "worst join > 5 kHz")):
        print(f"near joins / elsewhere, {label}: " + ", ".join(f"{k} {v:.2f}" for k, v in summary[key].items()))
    if args.png:
        plot_join(Path(args.png), *example)
        print(f"spectrogram of a join: {args.png} ({Path(args.png).stat().st_size // 1024} KB)")
    return {"rows": rows, "summary": summary}


def plot_join(path: Path, clip: str, y_ref, y_par, original, cuts, lanes, hop, sr) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    j = cuts[len(cuts) // 2]
    i = len(cuts) // 2
    lo, hi = j - int(0.15 * sr), j + int(0.15 * sr)
    fig, axes = plt.subplots(1, 3, figsize=(9, 2.8), sharey=True, dpi=80)
    for ax, (name, y) in zip(axes, (("original", original), ("reference schedule", y_ref),
                                    ("parallel schedule (join)", y_par))):
        S = 20 * np.log10(stft_mag(y[lo:hi]) + 1e-5)
        ax.imshow(S, origin="lower", aspect="auto", cmap="magma", vmin=S.max() - 80, vmax=S.max(),
                  extent=(-150, 150, 0, sr / 2000))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("ms from the join", fontsize=8)
        ax.tick_params(labelsize=7)
        if "parallel" in name:  # the lanes' overlap above the plot, the cut (the join) as ticks at both edges
            a, b = (lanes[i + 1].start * hop - j) / sr * 1000, (lanes[i].end * hop - j) / sr * 1000
            ax.axvspan(a, b, ymin=0.96, ymax=1.0, color="c")
            ax.axvline(0, ymin=0.0, ymax=0.04, color="c", lw=2)
    axes[0].set_ylabel("kHz", fontsize=8)
    fig.suptitle(f"{clip}: level 0 re-rendered from the true level-1 codes (default model); "
                 "cyan: lane overlap and join", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    from PIL import Image  # a 128-colour palette keeps the PNG small
    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["speed", "sound", "both"], default="both")
    ap.add_argument("--seconds", type=float, default=3.0, help="speed: seconds of music per render")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--takes", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="sound: seeds per held-out clip")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--png", default=str(Path(__file__).resolve().parent / "schedule_join.png"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"load {os.getloadavg()}")
    results = {"cpu": cpu_name(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    if args.part in ("speed", "both"):
        results["speed"] = speed(args)
    if args.part in ("sound", "both"):
        results["sound"] = sound(args)
    results["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process peak RSS (getrusage) {results['ru_maxrss_mib']:.0f} MiB, load {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
