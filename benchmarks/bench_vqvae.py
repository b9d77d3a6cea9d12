"""VQ-VAE encode/decode speed and exactness on the official-size model (see benchmarks/README.md).

    python benchmarks/bench_vqvae.py --seconds 5 --threads 1 --repeats 3

Times ``VQVAE.encode`` (all levels) and ``VQVAE.decode`` from each level for every precision kept in
the engine, plus ``plain``: the pre-optimisation code path (reference modules with autograd's
out-of-place branch, the whole distance matrix at once), which is also the ground truth for the
checks. Prints real-time factors (seconds of compute per second of audio; < 1 is faster than real
time) as medians over ``--repeats`` timed runs after one warm-up, both wall-clock and process CPU
time (CPU time is less disturbed by other jobs on the machine). Checks: codes equal to the plain
path at every position, and each decode's max abs difference / relative error / SNR against it;
with the fixture directory present, also the 3-s chord against the stored reference codes/decodes.

The machine's malloc policy is process-wide: ``--malloc off`` measures with glibc's defaults
(``engine.runtime.device.configure_cpu_allocator``). Exit status 1 if any encode is not exact.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.model.vqvae import VQVAE  # noqa: E402
from engine.runtime.device import Precision, configure_cpu_allocator, set_threads  # noqa: E402
from engine.weights.checkpoints import load_vqvae  # noqa: E402

SR = 44100
FIXTURE_DIR = REPO.parent / "shared" / "jukebox_reference" / "vqvae"
DEFAULT_CKPT = FIXTURE_DIR / "vqvae_random_official_arch.pth.tar"


def test_signal(seconds: float, seed: int = 0) -> torch.Tensor:
    """Deterministic music-like mono signal (1, T), T a multiple of 128: a chord progression of
    decaying harmonic notes, a sweep, a little noise; peak ~0.8."""
    n = int(seconds * SR) // 128 * 128
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    y = np.zeros(n)
    note_len = int(0.5 * SR)
    for start in range(0, n, note_len):
        seg = slice(start, min(n, start + 2 * note_len))
        tt = t[seg] - t[start]
        for _ in range(3):
            f0 = 110 * 2 ** (rng.integers(0, 36) / 12)
            for h in range(1, 6):
                y[seg] += 0.12 / h * np.sin(2 * np.pi * f0 * h * tt + rng.uniform(0, 2 * np.pi)) * np.exp(-3 * tt)
    y += 0.05 * np.sin(2 * np.pi * (200 * t + 400 * t**2 / max(seconds, 1e-9)))
    y += 0.01 * rng.standard_normal(n)
    y *= 0.8 / max(1e-9, np.abs(y).max())
    return torch.from_numpy(y.astype(np.float32))[None]


def plain_encode(model: VQVAE, x: torch.Tensor) -> list[torch.Tensor]:
    """The pre-optimisation encode: reference modules on their autograd (out-of-place) branch and one
    (T, 2048) distance matrix per level. Parameters must not require grad (no graph is built)."""
    with torch.enable_grad():
        xx = model._as_nct(x)
        return [model.bottleneck.levels[lv].encode(model.encoders[lv](xx)) for lv in range(model.cfg.levels)]


def plain_decode(model: VQVAE, codes: torch.Tensor, level: int) -> torch.Tensor:
    with torch.enable_grad():
        return model.decoders[level](model.bottleneck.levels[level].decode(codes))[:, 0, :]


def timed(fn, repeats: int):
    """(median wall s, median CPU s, last result) over ``repeats`` runs after one warm-up.

    The warm-up's wall time is kept in ``timed.first`` (it includes building oneDNN's kernels for new
    shapes, shared between variants that use the same kernels, so read it only as an indication)."""
    w = time.perf_counter()
    out = fn()
    timed.first = time.perf_counter() - w
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    return statistics.median(walls), statistics.median(cpus), out


def compare(y: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    y, ref = y.double(), ref.double()
    err = (y - ref).abs()
    noise = float(((y - ref) ** 2).sum())
    return {
        "max_abs": float(err.max()),
        "rel_to_peak": float(err.max() / ref.abs().max().clamp_min(1e-30)),
        "snr_db": math.inf if noise == 0 else 10 * math.log10(float((ref**2).sum()) / noise),
    }


def fixture_checks(model: VQVAE, directory: Path) -> list[str]:
    """The 3-s chord fixture: exact codes, and each precision's decode against the stored decodes."""
    lines = []
    x = torch.from_numpy(np.load(directory / "input_chord3s.npy"))[None]
    codes = model.encode(x)
    for lv in range(model.cfg.levels):
        ref_codes = np.load(directory / f"codes_chord3s_level{lv}.npy")
        ok = np.array_equal(codes[lv].numpy(), ref_codes)
        lines.append(f"fixture codes level {lv}: {'EXACT' if ok else 'MISMATCH'}")
        ref = torch.from_numpy(np.load(directory / f"decoded_chord3s_from_level{lv}.npy"))[..., 0]
        for p in Precision:
            c = compare(model.decode(torch.from_numpy(ref_codes), lv, precision=p), ref)
            lines.append(f"fixture decode level {lv} {p.value:>5}: max abs {c['max_abs']:.3g} "
                         f"(rel {c['rel_to_peak']:.2g}), SNR {c['snr_db']:.1f} dB")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="test-signal length (default 5)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per measurement (median; default 3)")
    ap.add_argument("--checkpoint", type=Path, default=DEFAULT_CKPT, help=f"VQ-VAE checkpoint (default {DEFAULT_CKPT})")
    ap.add_argument("--precisions", default=",".join(p.value for p in Precision),
                    help="decode precisions to time (default: all of engine.runtime.device.Precision)")
    ap.add_argument("--no-plain", action="store_true", help="skip timing the pre-optimisation path")
    ap.add_argument("--malloc", choices=("reuse", "off"), default=None, help="allocator policy (default: engine's)")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    policy = configure_cpu_allocator(args.malloc)
    set_threads(args.threads)
    precisions = [Precision.parse(p) for p in args.precisions.split(",") if p]
    model = load_vqvae(args.checkpoint).eval()
    model.requires_grad_(False)
    x = test_signal(args.seconds)
    secs = x.shape[1] / SR
    levels = range(model.cfg.levels)

    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads {torch.get_num_threads()}, "
          f"malloc {policy}, signal {secs:.2f} s ({x.shape[1]} samples), repeats {args.repeats}")
    results: dict = {"seconds": secs, "threads": torch.get_num_threads(), "malloc": policy, "rows": []}
    ok = True

    def row(what: str, variant: str, wall: float, cpu: float, check: str) -> None:
        results["rows"].append({"what": what, "variant": variant, "wall_s": wall, "cpu_s": cpu, "first_s": timed.first,
                                "rtf_wall": wall / secs, "rtf_cpu": cpu / secs, "check": check})
        print(f"{what:<11} {variant:<6} RTF {wall / secs:6.3f}x wall {cpu / secs:6.3f}x cpu "
              f"({wall:6.3f} s; first call {timed.first:6.3f} s)  {check}")

    w, c, codes = timed(lambda: model.encode(x), args.repeats)
    ref_codes = plain_encode(model, x)
    same = [torch.equal(a, b) for a, b in zip(codes, ref_codes)]
    ok &= all(same)
    row("encode all", "exact", w, c, "codes " + " ".join(
        f"L{lv}:{'=' if s else 'DIFF(%d)' % int((a != b).sum())}" for lv, s, a, b in zip(levels, same, codes, ref_codes)))
    if not args.no_plain:
        w, c, _ = timed(lambda: plain_encode(model, x), args.repeats)
        row("encode all", "plain", w, c, "(pre-optimisation path)")
    for lv in levels:
        w, c, _ = timed(lambda: model.encode(x, (lv,)), args.repeats)
        row(f"encode L{lv}", "exact", w, c, "")

    for lv in levels:
        ref = None
        for p in precisions:
            w, c, y = timed(lambda: model.decode(ref_codes[lv], lv, precision=p), args.repeats)
            ref = plain_decode(model, ref_codes[lv], lv) if ref is None else ref
            cmp = compare(y, ref)
            row(f"decode L{lv}", p.value, w, c,
                f"max abs {cmp['max_abs']:.3g} (rel {cmp['rel_to_peak']:.2g}), SNR {cmp['snr_db']:.1f} dB")
            results["rows"][-1].update(cmp)
        if not args.no_plain:
            w, c, _ = timed(lambda: plain_decode(model, ref_codes[lv], lv), args.repeats)
            row(f"decode L{lv}", "plain", w, c, "(pre-optimisation path)")

    directory = args.checkpoint.parent
    if (directory / "input_chord3s.npy").exists():
        lines = fixture_checks(model, directory)
        ok &= not any("MISMATCH" in ln for ln in lines)
        results["fixture"] = lines
        print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print("encode exact: " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
