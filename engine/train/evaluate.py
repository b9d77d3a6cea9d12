"""Held-out metrics of a model folder: what the default model's card and its test report.

* VQ-VAE: spectral convergence (``losses.spectral_convergence``, the paper's Table 1 metric) of each
  level's reconstruction; lower is better.
* Priors: bits per token of held-out codes under teacher forcing (``Prior.losses``), the top level
  against two unigram baselines over the same codes: the codes' own empirical entropy (the best any
  context-free model could do, optimistic on few tokens) and the cross-entropy of the training set's
  code frequencies (what a context-free model trained on the same data actually gets).

Held-out clips are stored as FLAC beside a JSON of their labels, so a test needs only the repository.

Issue 14's goals (``benchmarks/eval_default_model.py`` runs them all on a model folder): ``codec_report``
(spectral convergence at STFT 2048/512 against the trivial baselines at each level's bitrate, octave-band
levels), ``continuation_report`` (RMS, silence, DC, loudness, chroma / MFCC own-prime tests over all pairs),
``label_report`` (genres vs seeds in mean log-mel distance) and ``draft_full_report`` (envelope, wall time),
built on numpy/scipy/torch features (chroma, MFCC, log-mel) and pyloudnorm (BS.1770).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from engine.io.loudness import rms_dbfs
from engine.model.losses import spectral_convergence, stft_magnitude
from engine.params import LIVE_DEFAULTS
from engine.weights.bundle import Models

from .recordings import SILENCE_DBFS


def entropy_bits(codes: np.ndarray, bins: int) -> float:
    p = np.bincount(codes.ravel(), minlength=bins).astype(np.float64)
    p = p[p > 0] / p.sum()
    return float(-(p * np.log2(p)).sum())


def cross_entropy_bits(codes: np.ndarray, counts: np.ndarray) -> float:
    """Bits per token of ``codes`` under add-one-smoothed frequencies ``counts``."""
    q = (counts.astype(np.float64) + 1.0) / (counts.sum() + len(counts))
    return float(-np.log2(q[codes.ravel()]).mean())


def save_clips(folder: Path, clips: list[dict], train_top_counts: np.ndarray) -> None:
    """clips: {"id", "audio" (T,), "sr", "artist", "genre", "total", "offset"} -> FLACs + heldout.json."""
    folder.mkdir(parents=True, exist_ok=True)
    meta = []
    for c in clips:
        sf.write(folder / f"{c['id']}.flac", c["audio"], c["sr"], subtype="PCM_16")
        meta.append({k: c[k] for k in ("id", "sr", "artist", "genre", "total", "offset")})
    (folder / "heldout.json").write_text(json.dumps({"clips": meta, "train_top_counts": train_top_counts.tolist()}))


def load_clips(folder: Path) -> tuple[list[dict], np.ndarray]:
    doc = json.loads((folder / "heldout.json").read_text())
    clips = []
    for m in doc["clips"]:
        x, _ = sf.read(folder / f"{m['id']}.flac", dtype="float32")
        clips.append({**m, "audio": x})
    return clips, np.array(doc["train_top_counts"])


def _y(models: Models, level: int, clip: dict, start_token: int) -> torch.Tensor:
    cfg = models.priors[level].cfg
    ids = [models.vocab[k].ids.get(clip[k], 0) if models.vocab else 0 for k in ("artist", "genre")]
    offset = clip["offset"] + start_token * cfg.raw_to_tokens
    return torch.tensor([[clip["total"], offset, cfg.n_ctx * cfg.raw_to_tokens, ids[0],
                          ids[1], *[-1] * (cfg.max_bow_genre_size - 1)]])


@torch.no_grad()
def evaluate(models: Models, clips: list[dict], train_top_counts: np.ndarray | None = None) -> dict:
    """Per-level spectral convergence and bits per token over the clips (token-weighted means)."""
    vq, levels = models.vqvae, models.levels
    top_hop = vq.hop_lengths[-1]
    sc = [[] for _ in range(levels)]
    bits = [[0.0, 0] for _ in range(levels)]
    top_codes = []
    for clip in clips:
        x = torch.from_numpy(clip["audio"][: len(clip["audio"]) // top_hop * top_hop])[None]
        zs = vq.encode(x)
        for lv in range(levels):
            rec = vq.decode(zs[lv], lv)
            sc[lv].append(float(spectral_convergence(x, rec)))
        top_codes.append(zs[-1].numpy())
        for lv, prior in enumerate(models.priors):
            cfg = prior.cfg
            up = cfg.upsampling
            n = zs[lv].shape[1]
            for s in range(0, n, cfg.n_ctx):
                e = min(n, s + cfg.n_ctx) // up * up
                if e - s < up:
                    continue
                upper = zs[lv + 1][:, s // up: e // up] if cfg.has_upper_conditioner else None
                b = float(prior.losses(zs[lv][:, s:e], _y(models, lv, clip, s), upper)["bpd"])
                bits[lv][0] += b * (e - s)
                bits[lv][1] += e - s
    codes = np.concatenate([c.ravel() for c in top_codes])
    out = {"spectral_convergence": [float(np.mean(v)) for v in sc],
           "spectral_convergence_db": [20 * math.log10(max(float(np.mean(v)), 1e-9)) for v in sc],
           "bits_per_token": [b / max(1, n) for b, n in bits],
           "top_unigram_entropy": entropy_bits(codes, vq.cfg.l_bins), "top_tokens": int(codes.size)}
    if train_top_counts is not None:
        out["top_unigram_train_cross_entropy"] = cross_entropy_bits(codes, train_top_counts)
    return out


# ---------------------------------------------------------------------------------------------------------
# Issue 14's goals, measured on any model folder: codec against trivial baselines, continuations, labels,
# draft against full, DC and loudness. Signals are mono float32 (T,) at the model's rate unless said.
# ---------------------------------------------------------------------------------------------------------

SC_N_FFT, SC_HOP = 2048, 512  # the spectral convergence: STFT 2048/512 at the model's rate
OCTAVE_BANDS = tuple((62.5 * 2**k, 125.0 * 2**k) for k in range(7))  # 62.5-125 Hz ... 4-8 kHz
SILENCE_FRAME = 0.05  # a silent stretch: 50-ms frames under SILENCE_DBFS RMS
PCM_BITS = 8  # the bandwidth baseline: 8-bit PCM (G.711-like) at a level's bitrate carries bitrate / 16 Hz
RESAMPLE_BASELINE_RATE = 4000  # the "resampling to 4 kHz": a 4 kHz sample rate (2 kHz band) and back


def _power_spec(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """(T,) -> (frames, n_fft // 2 + 1) power, periodic Hann window of n_fft, centred (reflect) frames."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if len(t) <= n_fft // 2:  # reflect padding needs more samples than half a window
        t = torch.nn.functional.pad(t, (0, n_fft // 2 + 1 - len(t)))
    return (stft_magnitude(t[None], n_fft, hop, n_fft)[0] ** 2).T.double().numpy()


def spectral_convergence_np(x: np.ndarray, y: np.ndarray, n_fft: int = SC_N_FFT, hop: int = SC_HOP) -> float:
    """||S(x) - S(y)||_F / ||S(x)||_F of STFT magnitudes (x the reference), over their common length."""
    n = min(len(x), len(y))
    sx, sy = np.sqrt(_power_spec(x[:n], n_fft, hop)), np.sqrt(_power_spec(y[:n], n_fft, hop))
    return float(np.linalg.norm(sx - sy) / max(np.linalg.norm(sx), 1e-12))


def to_db(ratio: float) -> float:
    return 20 * math.log10(max(ratio, 1e-12))


def lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    """Brick-wall low-pass (FFT bins above ``cutoff`` Hz zeroed), same length."""
    spec = np.fft.rfft(x.astype(np.float64))
    spec[np.fft.rfftfreq(len(x), 1 / sr) > cutoff] = 0
    return np.fft.irfft(spec, len(x)).astype(np.float32)


def resample_roundtrip(x: np.ndarray, sr: int, rate: float) -> np.ndarray:
    """Resample to ``rate`` Hz and back (soxr VHQ): what a ``rate`` Hz stream keeps of x."""
    import soxr

    y = soxr.resample(soxr.resample(x.astype(np.float32), sr, rate, quality="VHQ"), rate, sr, quality="VHQ")
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


def band_levels_db(x: np.ndarray | list[np.ndarray], y: np.ndarray | list[np.ndarray], sr: int,
                   bands=OCTAVE_BANDS, n_fft: int = SC_N_FFT, hop: int = SC_HOP) -> dict[str, float]:
    """Energy of y relative to x per band, in dB (negative: y lost level), energies pooled over a list of
    signal pairs. Bands above Nyquist are left out."""
    xs, ys = (x, y) if isinstance(x, list) else ([x], [y])
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    ex = np.zeros(len(freqs))
    ey = np.zeros(len(freqs))
    for a, b in zip(xs, ys):
        n = min(len(a), len(b))
        ex += _power_spec(a[:n], n_fft, hop).sum(0)
        ey += _power_spec(b[:n], n_fft, hop).sum(0)
    out = {}
    for lo, hi in bands:
        if hi > sr / 2 + 1e-6:
            continue
        m = (freqs >= lo) & (freqs < hi)
        out[f"{lo:g}-{hi:g}"] = 10 * math.log10(max(ey[m].sum(), 1e-20) / max(ex[m].sum(), 1e-20))
    return out


def level_bitrate(hop: int, bins: int, sr: int) -> float:
    """Bits per second of one level's codes: tokens per second x log2(codebook size)."""
    return sr / hop * math.log2(bins)


def _aligned(y: np.ndarray, n: int) -> np.ndarray:
    """y cut or tiled to n samples."""
    return np.resize(y, n).astype(np.float32) if len(y) < n else y[:n]


@torch.no_grad()
def codec_report(models: Models, clips: list[np.ndarray], pcm_bits: int = PCM_BITS,
                 resample_rate: int = RESAMPLE_BASELINE_RATE) -> dict:
    """Per level: spectral convergence (STFT 2048/512, mean over clips) of the reconstruction and of the
    trivial baselines at the level's bitrate: ``bandwidth`` (low-passed to what ``pcm_bits``-bit PCM of the
    same bitrate carries: bitrate / (2 * pcm_bits) Hz) and ``other_codes`` (decoding every *other* clip's
    codes of that level, cut or tiled to this clip's length; mean over pairs; ``_gain_matched`` also scales
    that decode to the clip's RMS). Silence scores 1.0. Also each level's per-octave band level difference
    in dB (up to 8 kHz, energies pooled over clips) and, once, the "resample to 4 kHz" (sample rate)
    baseline."""
    from engine.generate.codec import encode_audio

    vq, sr = models.vqvae, models.sample_rate
    clips = [np.asarray(c, dtype=np.float32) for c in clips]
    recs = [[] for _ in range(models.levels)]
    for x in clips:
        zs = encode_audio(vq, x)
        for lv in range(models.levels):
            z = torch.from_numpy(zs[lv]).to(next(vq.parameters()).device)
            recs[lv].append(np.clip(vq.decode(z, lv)[0].cpu().numpy()[: len(x)], -1, 1))
    levels = []
    for lv in range(models.levels):
        hop = vq.hop_lengths[lv]
        bitrate = level_bitrate(hop, vq.cfg.l_bins, sr)
        bw = min(bitrate / (2 * pcm_bits), sr / 2)
        sc = [spectral_convergence_np(x, r) for x, r in zip(clips, recs[lv])]
        sc_bw = [spectral_convergence_np(x, lowpass(x, sr, bw)) for x in clips]
        pairs = [(x, _aligned(recs[lv][j], len(x))) for i, x in enumerate(clips) for j in range(len(clips)) if j != i]
        sc_other = [spectral_convergence_np(x, y) for x, y in pairs]
        # the same with the other decode scaled to this clip's RMS (a codec that also sent one gain)
        sc_other_gain = [spectral_convergence_np(x, y * 10 ** ((rms_dbfs(x) - rms_dbfs(y)) / 20)) for x, y in pairs]
        levels.append({
            "level": lv, "hop": hop, "bitrate_bps": bitrate, "sc": float(np.mean(sc)), "sc_db": to_db(float(np.mean(sc))),
            "sc_per_clip": sc, "bandwidth_hz": bw, "sc_bandwidth": float(np.mean(sc_bw)),
            "sc_other_codes": float(np.mean(sc_other)) if sc_other else float("nan"),
            "sc_other_codes_gain_matched": float(np.mean(sc_other_gain)) if sc_other_gain else float("nan"),
            "bands_db": band_levels_db(clips, recs[lv], sr)})
    sc_rs = [spectral_convergence_np(x, resample_roundtrip(x, sr, resample_rate)) for x in clips]
    return {"sample_rate": sr, "clips": len(clips), "seconds": sum(len(c) for c in clips) / sr,
            "n_fft": SC_N_FFT, "hop": SC_HOP, "pcm_bits": pcm_bits, "levels": levels,
            "resample_rate": resample_rate, "sc_resample": float(np.mean(sc_rs))}


# --- level, silence, DC, loudness -------------------------------------------------------------------------

def longest_silence(x: np.ndarray, sr: int, threshold_db: float = SILENCE_DBFS, frame: float = SILENCE_FRAME) -> float:
    """Seconds of the longest run of consecutive ``frame``-second frames whose RMS is under ``threshold_db``."""
    n = max(1, round(frame * sr))
    frames = len(x) // n
    if frames == 0:
        return 0.0
    rms = np.sqrt(np.mean(np.square(x[: frames * n].reshape(frames, n), dtype=np.float64), axis=1))
    silent = 20 * np.log10(np.maximum(rms, 1e-10)) < threshold_db
    best = run = 0
    for s in silent:
        run = run + 1 if s else 0
        best = max(best, run)
    return best * n / sr


def dc_offset(x: np.ndarray) -> float:
    return float(np.mean(x, dtype=np.float64))


def loudness_lufs(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (ITU-R BS.1770-4) of mono audio, as renders are matched: -inf for silence, nan under
    one 0.4-s gating block."""
    from engine.io.loudness import meter_lufs

    return meter_lufs(x, sr)


# --- chroma, MFCC, log-mel ----------------------------------------------------------------------------------

def _mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, unit peak."""
    fmax = sr / 2 if fmax is None else fmax
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    edges = 700.0 * (10 ** (np.linspace(_mel(fmin), _mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    return np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))


def log_mel(x: np.ndarray, sr: int, n_mels: int = 64, n_fft: int = SC_N_FFT, hop: int = SC_HOP) -> np.ndarray:
    """(frames, n_mels) log-mel power in dB."""
    return 10 * np.log10(_power_spec(x, n_fft, hop) @ mel_filterbank(sr, n_fft, n_mels).T + 1e-10)


def mfcc_mean(x: np.ndarray, sr: int, n_mfcc: int = 13, n_mels: int = 40) -> np.ndarray:
    """Mean over frames of MFCCs 1..n_mfcc-1 (DCT-II of log-mel; c0, the overall level, left out): timbre."""
    from scipy.fft import dct

    return dct(log_mel(x, sr, n_mels), type=2, norm="ortho", axis=1)[:, 1:n_mfcc].mean(0)


def chroma_mean(x: np.ndarray, sr: int, fmin: float = 65.0, fmax: float = 5000.0) -> np.ndarray:
    """Unit-norm 12-bin pitch-class profile (C = 0): STFT power (~0.19-s window) folded onto the nearest
    semitone's pitch class between fmin and fmax, each frame normalised to sum 1, averaged over frames."""
    n_fft = 1 << round(math.log2(sr * 0.186))
    freqs = np.fft.rfftfreq(n_fft, 1 / sr)
    use = (freqs >= fmin) & (freqs <= fmax)
    pc = np.round(69 + 12 * np.log2(freqs[use] / 440.0)).astype(int) % 12
    fold = np.zeros((use.sum(), 12))
    fold[np.arange(use.sum()), pc] = 1.0
    c = _power_spec(x, n_fft, n_fft // 4)[:, use] @ fold
    total = c.sum(1)
    keep = total > 1e-10 * max(float(total.max(initial=0.0)), 1e-30)  # frames with sound in the range
    v = (c[keep] / total[keep, None]).mean(0) if keep.any() else np.zeros(12)
    return v / max(np.linalg.norm(v), 1e-12)


def chroma_distance(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """1 - cosine similarity of the mean chroma profiles (0 = same pitch-class balance)."""
    return float(1.0 - chroma_mean(a, sr) @ chroma_mean(b, sr))


def mfcc_distance(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    return float(np.linalg.norm(mfcc_mean(a, sr) - mfcc_mean(b, sr)))


def log_mel_distance(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """RMS over mel bands of the difference of time-averaged log-mel spectra, in dB."""
    return float(np.sqrt(np.mean((log_mel(a, sr).mean(0) - log_mel(b, sr).mean(0)) ** 2)))


def envelope_db(x: np.ndarray, sr: int, smooth: float = 0.25) -> np.ndarray:
    """Frame energy over time (log-mel power summed per frame, in dB), moving-averaged over ``smooth`` s."""
    e = 10 * np.log10(np.sum(10 ** (log_mel(x, sr) / 10), axis=1) + 1e-10)
    k = max(1, round(smooth * sr / SC_HOP))
    return np.convolve(e, np.ones(k) / k, mode="valid") if len(e) >= k else e


def envelope_correlation(a: np.ndarray, b: np.ndarray, sr: int) -> float:
    """Pearson correlation of two signals' energy envelopes over their common length (nan if one is flat)."""
    n = min(len(a), len(b))
    ea, eb = envelope_db(a[:n], sr), envelope_db(b[:n], sr)
    if len(ea) < 2 or ea.std() < 1e-9 or eb.std() < 1e-9:
        return float("nan")
    return float(np.corrcoef(ea, eb)[0, 1])


def _own_closer_count(dist: np.ndarray) -> int:
    """dist[i, j]: distance from continuation i to prime j. Ordered pairs (i != j) where continuation i is
    closer to its own prime than to prime j (ties are not closer)."""
    return sum(int(np.sum(dist[i, i] < np.delete(dist[i], i))) for i in range(len(dist)))


def own_closer_fraction(dist: np.ndarray) -> float:
    """Fraction of ordered pairs (i != j) where continuation i is closer to its own prime than to prime j."""
    n = len(dist)
    return _own_closer_count(dist) / (n * (n - 1)) if n > 1 else float("nan")


def own_closer_p_value(dist: np.ndarray) -> float:
    """One-sided p-value of ``own_closer_fraction`` under the null that a continuation owes its prime nothing:
    then its own prime is one of n exchangeable primes, so the number of others it is closer to is uniform on
    0..n-1, independently per continuation (each has its own seed), and the total is their sum (exact, by
    convolution; ties count as not closer, which only makes the test stricter). Small: "measurably closer"."""
    n = len(dist)
    if n < 2:
        return float("nan")
    observed = _own_closer_count(dist)
    total = np.ones(1)
    for _ in range(n):
        total = np.convolve(total, np.full(n, 1.0 / n))
    return float(total[observed:].sum())


def halves_own_closer(primes: list[np.ndarray], sr: int) -> dict:
    """What the own-prime test gives real music: each prime's second half against every prime's first half
    (a ceiling for continuations, and a check that the features tell these primes apart at all)."""
    r = own_closer_report([x[len(x) // 2:] for x in primes], [x[: len(x) // 2] for x in primes], sr)
    return {"chroma_own_closer": r["chroma_own_closer"], "mfcc_own_closer": r["mfcc_own_closer"]}


# --- renders through the engine ---------------------------------------------------------------------------

def _render(models: Models, mode: str, fields: dict, prime: np.ndarray | None = None) -> tuple[np.ndarray, float, float]:
    """One take through ``engine.generate.render.render`` at the model rate, mono: (audio (T,) as delivered,
    wall seconds, the gain in dB the render's mix step applied (0 where it applied none))."""
    import tempfile
    import time

    from engine.generate.render import render
    from engine.request import RenderRequest
    from engine.runtime.progress import CancelToken

    fields = {"sample_rate": models.sample_rate, "channels": 1, "takes": 1, **fields}
    with tempfile.TemporaryDirectory() as tmp:
        if prime is not None:
            path = Path(tmp) / "prime.wav"
            sf.write(path, np.asarray(prime, dtype=np.float32), models.sample_rate, subtype="FLOAT")
            fields = {"source": str(path), "start": 0.0, **fields}
        req = RenderRequest.from_fields(mode, fields)
        t0 = time.perf_counter()
        take = render(models, req, lambda p: None, CancelToken())[0]
        gain = (getattr(take, "loudness", None) or {}).get("gain_db") or 0.0
        return take.audio[:, 0].astype(np.float32), time.perf_counter() - t0, float(gain)


def continuation_report(models: Models, primes: list[np.ndarray], seconds: float = 10.0, temperature: float = 0.98,
                        seed: int = 0, labels: list[dict] | None = None, quality: str = "full",
                        top_p: float = 1.0, adherence: float = LIVE_DEFAULTS["adherence"], tone: str = "match") -> dict:
    """Continue each prime by ``seconds`` (mode continue, model rate, mono) and measure: RMS against the
    prime's, the longest silent stretch, DC, integrated loudness, wall time, and over every ordered pair of
    primes whether chroma / MFCC-mean distance from continuation i to prime i beats that to prime j.
    ``labels``: optional {"artist", "genre"} per prime. Take i uses seed ``seed + i``.

    RMS, silence, chroma and MFCC describe the music, so they are measured before the render's mix gain
    (``rms_db``; the gain is divided out) but after its match EQ when ``tone`` is "match" (the engine's default: what
    the producer gets; "off" measures the decoder's output); DC and loudness describe what the DAW gets
    (``delivered_*``)."""
    sr = models.sample_rate
    conts, renders = [], []
    for i, prime in enumerate(primes):
        lab = {k: v for k, v in (labels[i] if labels else {}).items() if k in ("artist", "genre") and v}
        out, dt, gain = _render(models, "continue", {"seconds": float(seconds), "temperature": float(temperature),
                                                     "top_p": float(top_p), "adherence": float(adherence), "tone": tone,
                                                     "seed": seed + i, "quality": quality,
                                                     **lab}, prime)
        y = out * np.float32(10 ** (-gain / 20))
        conts.append(y)
        renders.append({"seconds": len(y) / sr, "wall_s": dt, "mix_gain_db": gain, "prime_rms_db": rms_dbfs(prime),
                        "rms_db": rms_dbfs(y), "rms_diff_db": rms_dbfs(y) - rms_dbfs(prime),
                        "longest_silence_s": longest_silence(y, sr), "delivered_rms_db": rms_dbfs(out),
                        "dc": dc_offset(out), "prime_dc": dc_offset(prime),
                        "prime_lufs": loudness_lufs(prime, sr), "lufs": loudness_lufs(out, sr)})
        renders[-1]["lufs_diff"] = renders[-1]["lufs"] - renders[-1]["prime_lufs"]
    return {"seconds": seconds, "temperature": temperature, "top_p": top_p, "adherence": adherence, "tone": tone,
            "seed": seed,
            "quality": quality,
            "renders": renders, **own_closer_report(conts, primes, sr), "ceiling": halves_own_closer(primes, sr),
            "max_abs_rms_diff_db": max(abs(r["rms_diff_db"]) for r in renders),
            "max_silence_s": max(r["longest_silence_s"] for r in renders)}


def own_closer_report(outputs: list[np.ndarray], primes: list[np.ndarray], sr: int) -> dict:
    """Chroma and MFCC-mean distances from output i to prime j over every ordered pair, how often output i is
    closer to prime i than to another, and the exact one-sided test of that (``own_closer_p_value``)."""
    n = len(primes)
    cc, cp = [chroma_mean(y, sr) for y in outputs], [chroma_mean(x, sr) for x in primes]
    mc, mp = [mfcc_mean(y, sr) for y in outputs], [mfcc_mean(x, sr) for x in primes]
    chroma = np.array([[1.0 - cc[i] @ cp[j] for j in range(n)] for i in range(n)])
    mfcc = np.array([[np.linalg.norm(mc[i] - mp[j]) for j in range(n)] for i in range(n)])
    return {"chroma_distance": chroma.tolist(), "mfcc_distance": mfcc.tolist(), "pairs": n * (n - 1),
            "chroma_own_closer": own_closer_fraction(chroma), "mfcc_own_closer": own_closer_fraction(mfcc),
            "chroma_own_closer_p": own_closer_p_value(chroma), "mfcc_own_closer_p": own_closer_p_value(mfcc)}


def label_report(models: Models, genres: list[str], seeds: tuple[int, ...] = (0, 1), seconds: float = 3.0,
                 quality: str = "full", temperature: float = 0.98, artist: str | None = None) -> dict:
    """Generate ``seconds`` per (genre, seed) and compare mean log-mel distances: between renders of
    different genres (same seed) against between renders of one genre (different seeds)."""
    sr = models.sample_rate
    out = {}
    for g in genres:
        for s in seeds:
            fields = {"seconds": float(seconds), "seed": s, "quality": quality, "temperature": float(temperature),
                      "genre": g, **({"artist": artist} if artist else {})}
            y, _, gain = _render(models, "generate", fields)
            out[(g, s)] = y * np.float32(10 ** (-gain / 20))  # the model's output, before the mix gain
    within = [log_mel_distance(out[(g, a)], out[(g, b)], sr) for g in genres for a in seeds for b in seeds if a < b]
    between = [log_mel_distance(out[(g, s)], out[(h, s)], sr) for s in seeds
               for i, g in enumerate(genres) for h in genres[i + 1:]]
    w = float(np.mean(within)) if within else float("nan")
    b = float(np.mean(between)) if between else float("nan")
    return {"genres": genres, "seeds": list(seeds), "seconds": seconds, "quality": quality,
            "within_genre_db": w, "between_genres_db": b, "ratio": b / w if w > 0 else float("nan")}


def draft_full_report(models: Models, prime: np.ndarray, seconds: float = 10.0, seed: int = 0,
                      temperature: float = 0.98) -> dict:
    """The same continuation (same seed) in draft and full quality: wall times (of a warm engine: each quality
    rendered once before, and its compiled steps ready), the correlation of their energy envelopes, each one's
    envelope spread (a drone has little), DC and loudness."""
    from engine.model.fast.static_step import WARM

    sr = models.sample_rate
    out = {"seconds": seconds, "seed": seed}
    audio = {}
    for q in ("draft", "full"):  # as in a warm engine: the shapes these renders use compiled first (warm_up)
        _render(models, "continue", {"seconds": 1.0, "seed": seed, "quality": q}, prime)
    out["warm"] = WARM.wait(timeout=600)
    for q in ("draft", "full"):
        y, dt, gain = _render(models, "continue", {"seconds": float(seconds), "seed": seed, "quality": q,
                                                   "temperature": float(temperature)}, prime)
        audio[q] = y
        out[q] = {"wall_s": dt, "wall_s_per_10s": dt * 10.0 / seconds, "rms_db": rms_dbfs(y), "mix_gain_db": gain,
                  "envelope_std_db": float(envelope_db(y, sr).std()), "dc": dc_offset(y), "lufs": loudness_lufs(y, sr)}
    out["envelope_correlation"] = envelope_correlation(audio["draft"], audio["full"], sr)
    out["prime_lufs"] = loudness_lufs(prime, sr)
    return out
