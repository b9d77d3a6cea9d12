"""The training loops behind ``jukebox-bridge train vqvae|prior|export`` for the embedded default model.

Everything is sized for a 2-core CPU: 22.05 kHz mono (half the official rate: a quarter of the work for
the same seconds, and the corpus is synthesised at 22.05 kHz anyway), hops 16/64/256 (twice the
official 8/32/128 in samples, the same in milliseconds x 4: 86 top-level tokens per second), 512-code
books and transformers of a few hundred thousand to a million weights.

Runs are resumable: each writes ``ckpt.pt`` (weights, optimiser, EMA codebook state, step) to its work
folder every ``--ckpt-every`` steps and ``best.pt`` whenever the held-out metric improves; ``log.jsonl``
holds every printed line. Data sampling is seeded by the step, so a resumed run draws the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from engine.io.files import atomic_write, atomic_write_text
from engine.model.config import PriorConfig, VQVAEConfig
from engine.model.losses import spectral_convergence, stft_magnitude
from engine.model.prior import Prior
from engine.model.vqvae import VQVAE
from engine.weights.models import Models

from .data import Item, load_manifest
from .evaluate import SILENCE_FRAME
from .prior import PriorTrainConfig, PriorTrainer, init_prior
from .recordings import SILENCE_DBFS
from .vqvae import DecoderTrainer, TrainConfig, VQVAETrainer

SAMPLE_RATE = 22050
VQVAE_CFG = VQVAEConfig(
    downs_t=(3, 2, 2), emb_width=64, l_bins=1024, width=48, depth=3, multipliers=(1, 1, 1),
    sample_rate=SAMPLE_RATE, linf_k=1024,
    multispec_n_fft=(1024, 512, 256), multispec_hop=(120, 60, 25), multispec_win=(600, 300, 120))
"""The paper's hops 8/32/128 at 22.05 kHz (0.36 / 1.45 / 5.8 ms per code): twice the bitrate per level of
the first default model's 16/64/256, which capped its top level at noise (see docs/default-model.md)."""
SILENCE_RMS = 10 ** (SILENCE_DBFS / 20)  # training excerpts quieter than this RMS are drawn again


def prior_configs(vq: VQVAEConfig, n_artists: int, n_genres: int) -> list[PriorConfig]:
    """Two upsamplers and a top prior with timing; the official factorised attention (row, column, previous
    row: attn_order 2), ~3x cheaper to train than dense attention at these lengths on a CPU."""
    common = dict(levels=vq.levels, bins=vq.l_bins, artist_bins=n_artists, genre_bins=n_genres,
                  max_bow_genre_size=1, sample_rate=vq.sample_rate, attn_order=2, blocks=16, m_attn=0.5, m_mlp=2.0)
    ups = [PriorConfig(level=lv, n_ctx=512, width=128, depth=4, heads=2, raw_to_tokens=vq.hop_lengths[lv],
                       cond_down_t=vq.downs_t[lv + 1], cond_stride=vq.strides_t[lv + 1], cond_width=64,
                       cond_depth=2, cond_dilation_cycle=None, **common) for lv in range(vq.levels - 1)]
    top = PriorConfig(level=vq.levels - 1, n_ctx=1024, width=192, depth=4, heads=4, raw_to_tokens=vq.hop_lengths[-1],
                      t_bins=64, min_duration=1.0, max_duration=600.0, **common)
    return [*ups, top]


# ------------------------------------------------------------------------------------------- data


def load_audio(corpus: Path, split: str) -> list[tuple[Item, np.ndarray]]:
    out = []
    for item in load_manifest(corpus):
        if item.split == split:
            path = corpus / "audio" / f"{item.id}.flac"
            if not path.exists():  # a build running beside training may withdraw a file; train on without it
                continue
            x, sr = sf.read(path, dtype="float32")
            assert sr == SAMPLE_RATE, f"{item.id}: {sr} Hz"
            out.append((item, x))
    return out


def random_segments(audios: list[np.ndarray], n: int, length: int, rng: np.random.Generator) -> torch.Tensor:
    """n random (length,) excerpts, files chosen in proportion to their length. A silent excerpt (below
    ``SILENCE_RMS``) is drawn again, up to 8 times: silence teaches the model nothing but to fall silent."""
    lengths = np.array([max(1, len(a) - length) for a in audios], dtype=np.float64)
    out = np.zeros((n, length), np.float32)
    for row in range(n):
        for _ in range(8):
            a = audios[int(rng.choice(len(audios), p=lengths / lengths.sum()))]
            s = int(rng.integers(0, max(1, len(a) - length)))
            seg = a[s:s + length]
            if np.sqrt(np.mean(np.square(seg))) >= SILENCE_RMS:
                break
        out[row, :len(seg)] = seg
    return torch.from_numpy(out)


def fixed_segments(audios: list[np.ndarray], length: int, per_file: int = 2) -> torch.Tensor:
    """Evenly spaced excerpts of every held-out file: the same every evaluation."""
    rows = []
    for a in audios:
        for k in range(per_file):
            s = int((len(a) - length) * (k + 1) / (per_file + 1))
            if s >= 0:
                rows.append(a[s:s + length])
    return torch.from_numpy(np.stack(rows))


def _atomic_save(obj, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), overwrite=True)


class RunLog:
    """Print and append JSON lines to ``log.jsonl`` (the training record the model card quotes)."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path, self.t0 = folder / "log.jsonl", time.time()

    def __call__(self, **fields) -> None:
        fields = {"time": round(time.time() - self.t0, 1), **fields}
        print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items()), flush=True)
        with open(self.path, "a") as f:
            f.write(json.dumps(fields) + "\n")


# ------------------------------------------------------------------------------------------ VQ-VAE


def bandwidth_config(cfg: VQVAEConfig, audios: list[np.ndarray], seed: int = 0) -> VQVAEConfig:
    """Fold the reference's data 'bandwidth' normalisation into the loss weights: the reconstruction
    terms are divided by the data variance and the spectral term by the mean spectrogram norm, so both
    start near 1 (unnormalised, the spectral term is ~1000x the MSE and the waveform loss does nothing)."""
    x = random_segments(audios, 64, 16384, np.random.default_rng(seed))
    var = float(x.var())
    spec = float(np.mean([stft_magnitude(x, n, h, w).reshape(64, -1).norm(dim=1).mean()
                          for n, h, w in zip(cfg.multispec_n_fft, cfg.multispec_hop, cfg.multispec_win)]))
    return dataclasses.replace(cfg, lmix_l2=1.0 / var, lmix_linf=cfg.lmix_linf / var, multispectral=1.0 / spec)


@torch.no_grad()
def vqvae_heldout(model: VQVAE, held: torch.Tensor, batch: int = 8) -> list[float]:
    """Spectral convergence of each level's reconstruction of the held-out segments (lower is better)."""
    model.eval()
    sums = [0.0] * model.cfg.levels
    for chunk in held.split(batch):
        out = model(chunk)
        for lv, rec in enumerate(out.recons):
            sums[lv] += float(spectral_convergence(chunk, rec)) * len(chunk)
    return [s / len(held) for s in sums]


def train_vqvae(corpus: Path, work: Path, steps: int, batch: int = 4, seconds: float = 0.375, lr: float = 3e-4,
                ckpt_every: int = 100, eval_every: int = 100, seed: int = 0, threads: int | None = None,
                init_from: Path | str | None = None) -> Path:
    """Train (or resume from ``work``'s full training state) the VQ-VAE; ``init_from`` (a model folder, or
    "default" for the shipped model) starts a fresh run from its weights with a warm-restarted optimiser.
    Returns the best held-out checkpoint."""
    if threads:
        torch.set_num_threads(threads)
    work = work / "vqvae"
    log = RunLog(work)
    train = [x for _, x in load_audio(corpus, "train")]
    held = fixed_segments([x for _, x in load_audio(corpus, "heldout")], 32768)
    length = int(seconds * SAMPLE_RATE) // VQVAE_CFG.hop_lengths[-1] * VQVAE_CFG.hop_lengths[-1]
    ckpt = work / "ckpt.pt"
    state = torch.load(ckpt, weights_only=False) if ckpt.exists() else None
    start = None if state or init_from is None else _shipped(init_from).vqvae
    cfg = (VQVAEConfig.from_dict(state["config"]) if state else start.cfg if start is not None
           else bandwidth_config(VQVAE_CFG, train, seed))
    torch.manual_seed(seed)
    model = VQVAE(cfg)
    trainer = VQVAETrainer(model, TrainConfig(lr=lr, seed=seed))
    if start is not None:
        model.load_state_dict(start.state_dict())
        trainer.warm_start()
        log(event="warm start", model=str(init_from))
    best = math.inf
    if state:
        model.load_state_dict(state["model"])
        trainer.opt.load_state_dict(state["opt"])
        trainer.steps, best = state["steps"], state["best"]
        for ema, (k_sum, k_elem) in zip(trainer.codebooks, state["ema"]):
            ema.k_sum, ema.k_elem = k_sum, k_elem
        trainer.generator.set_state(state["generator"])
        log(event="resumed", step=trainer.steps)
    else:
        log(event="start", params=sum(p.numel() for p in model.parameters()), train_files=len(train),
            heldout_segments=len(held), config=cfg.to_dict())

    def save(path: Path) -> None:
        _atomic_save({"config": cfg.to_dict(), "model": model.state_dict(), "opt": trainer.opt.state_dict(),
                      "steps": trainer.steps, "best": best, "generator": trainer.generator.get_state(),
                      "ema": [(e.k_sum, e.k_elem) for e in trainer.codebooks]}, path)

    t0 = time.time()
    while trainer.steps < steps:
        x = random_segments(train, batch, length, np.random.default_rng([seed, trainer.steps]))
        m = trainer.step(x)
        s = trainer.steps
        if s % 25 == 0 or s == 1:
            log(step=s, loss=m["loss"], sc=m["spectral_convergence"], l2=m["l2_loss"],
                used=[round(m.get(f"used_curr_l{i}", -1)) for i in (1, 2, 3)], sec_per_step=(time.time() - t0) / 25)
            t0 = time.time()
        if s % eval_every == 0 or s == steps:
            sc = vqvae_heldout(model, held)
            if sum(sc) < best:
                best = sum(sc)
                save(work / "best.pt")
            log(step=s, heldout_sc=[round(v, 4) for v in sc], best=best)
        if s % ckpt_every == 0 or s == steps:
            save(ckpt)
            train = [x for _, x in load_audio(corpus, "train")]  # picks up files a running build has added
    return work / "best.pt"


def train_decoder(corpus: Path, work: Path, level: int, steps: int, batch: int = 4, seconds: float = 0.75,
                  lr: float = 5e-5, log_weight: float = 1.0, band_weight: float = 0.0, ckpt_every: int = 100,
                  eval_every: int = 100, seed: int = 0, threads: int | None = None,
                  init_from: Path | str | None = None) -> Path:
    """Fine-tune (or resume) one level's decoder of ``work``'s codec on its frozen encoder's codes, with the
    log-spectral (and, with ``band_weight``, band-envelope) loss added (``vqvae.DecoderTrainer``): the codes do not
    change, so the priors stay valid. Kept in ``work/decoder``; ``best.pt`` (the whole codec, by the trainer's
    held-out ``objective``) is what
    ``codec_checkpoint`` and so ``export`` use from then on. ``init_from``: the codec to tune when ``work`` has none."""
    if threads:
        torch.set_num_threads(threads)
    run = work / "decoder"
    log = RunLog(run)
    adopt_codec(work, init_from, log)
    model = load_vqvae_checkpoint(work / "vqvae" / "best.pt")
    if model.cfg.level_output_eq(level):  # fitted to the decoder this run changes: refit it after (`train eq`)
        model.cfg = model.cfg.with_level_output_eq(level, ())
        log(event="output EQ dropped", level=level)
    trainer = DecoderTrainer(model, level, TrainConfig(lr=lr, seed=seed), log_weight, band_weight)
    train = [x for _, x in load_audio(corpus, "train")]
    held = fixed_segments([x for _, x in load_audio(corpus, "heldout")], 32768)
    length = int(seconds * SAMPLE_RATE) // model.hop_lengths[-1] * model.hop_lengths[-1]
    ckpt, best = run / "ckpt.pt", math.inf
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        if state["level"] != level:
            raise ValueError(f"{run} fine-tunes level {state['level']}'s decoder; use another work folder")
        model.load_state_dict(state["model"])
        trainer.opt.load_state_dict(state["opt"])
        trainer.steps, best = state["steps"], state["best"]
        log(event="resumed", step=trainer.steps)
    else:
        log(event="start", level=level, log_weight=log_weight, band_weight=band_weight, heldout_segments=len(held))

    def evaluate() -> tuple[float, float, dict[str, float]]:
        """Held-out objective, spectral convergence and octave-band levels (dB, as the codec report)."""
        from .evaluate import band_levels_db

        with torch.no_grad():
            outs = [(x, trainer.reconstruct(x)) for x in held.split(8)]
            objective = float(np.mean([trainer.objective(x, y) for x, y in outs]))
            sc = float(np.mean([float(spectral_convergence(x, y)) for x, y in outs]))
        x, y = (torch.cat(t).numpy() for t in zip(*outs))
        bands = band_levels_db(list(x), list(y), model.cfg.sample_rate)
        return objective, sc, {k: round(v, 2) for k, v in bands.items()}

    def save(path: Path, **extra: Any) -> None:
        _atomic_save({"config": model.cfg.to_dict(), "model": model.state_dict(), **extra}, path)

    if trainer.steps == 0:  # the shipped decoder is the one to beat: best.pt only when the fine-tune does better
        best, sc, bands = evaluate()
        log(step=0, heldout_objective=round(best, 4), heldout_sc=round(sc, 4), heldout_bands_db=bands)
    t0 = time.time()
    while trainer.steps < steps:
        m = trainer.step(random_segments(train, batch, length, np.random.default_rng([seed, level, trainer.steps])))
        s = trainer.steps
        if s % 25 == 0 or s == 1:
            log(step=s, **{k: round(v, 4) for k, v in m.items()}, sec_per_step=(time.time() - t0) / 25)
            t0 = time.time()
        if s % eval_every == 0 or s == steps:
            objective, sc, bands = evaluate()
            if objective < best:
                best = objective
                save(run / "best.pt", level=level, steps=s, heldout_objective=objective, heldout_sc=sc,
                     heldout_bands_db=bands)
            log(step=s, heldout_objective=round(objective, 4), heldout_sc=round(sc, 4), heldout_bands_db=bands,
                best=round(best, 4))
        if s % ckpt_every == 0 or s == steps:
            save(ckpt, level=level, opt=trainer.opt.state_dict(), steps=s, best=best)
    return run / "best.pt"


def codec_checkpoint(work: Path) -> Path:
    """The codec a work folder exports: its decoder fine-tune's best (``train_decoder``) if there is one, else the
    VQ-VAE's best. Both hold the same encoders and codebooks, so codes (and the priors) do not depend on which."""
    tuned = work / "decoder" / "best.pt"
    return tuned if tuned.exists() else work / "vqvae" / "best.pt"


OUTPUT_EQ_FILE = "output_eq.json"


def fit_output_eq(corpus: Path, work: Path, level: int = 0, files: int = 60, seconds: float = 10.0) -> dict:
    """Fit level ``level``'s output EQ (``engine.model.output_eq``) to the band levels its decoder loses on
    *training* audio (the middle ``seconds`` of up to ``files`` training files, evenly spread; held-out files are
    for judging it), measured with that level's EQ off. Written to ``work/output_eq.json`` with the codec
    checkpoint's sha256, which ``export`` applies and checks (a decoder trained since needs a new fit)."""
    from engine.io.files import file_sha256
    from engine.model.output_eq import fit_points

    from .evaluate import band_levels_db

    ckpt = codec_checkpoint(work)
    if not ckpt.exists():
        raise FileNotFoundError(f"{work} holds no codec to fit an output EQ to: train one there first (train vqvae, "
                                "or train decoder --init-from default)")
    if corpus is None or not (corpus / "manifest.json").exists():
        raise FileNotFoundError(f"--corpus {corpus}: not a corpus folder (no manifest.json); make one with "
                                "`jukebox-bridge data build --out CORPUS`")
    vq = load_vqvae_checkpoint(ckpt)
    vq.cfg = vq.cfg.with_level_output_eq(level, ())
    items = [it for it in load_manifest(corpus) if it.split == "train"]
    picked = items[:: max(1, math.ceil(len(items) / files))]
    xs, ys = [], []
    for it in picked:
        x = encoded_audio(corpus, it, seconds, vq.hop_lengths[-1])
        (z,) = vq.encode(torch.from_numpy(x)[None], levels=(level,))
        xs.append(x)
        ys.append(np.clip(vq.decode(z, level, precision="fp32")[0].numpy()[: len(x)], -1, 1))
    bands = band_levels_db(xs, ys, SAMPLE_RATE)
    fit = {"level": level, "codec": ckpt.name, "codec_sha256": file_sha256(ckpt), "files": len(picked),
           "seconds_each": seconds, "bands_db": {k: round(v, 2) for k, v in bands.items()}, "points": fit_points(bands)}
    atomic_write_text(work / OUTPUT_EQ_FILE, json.dumps(fit, indent=1), overwrite=True)
    return fit


def _fitted_output_eq(work: Path, vqvae: VQVAE, ckpt: Path) -> None:
    """Apply ``work/output_eq.json`` (``fit_output_eq``) to the codec being exported, if there is one."""
    path = work / OUTPUT_EQ_FILE
    if not path.exists():
        return
    from engine.io.files import file_sha256

    fit = json.loads(path.read_text())
    if fit["codec_sha256"] != file_sha256(ckpt):
        raise ValueError(f"{path} was fitted to another codec than {ckpt} (trained since?): run "
                         f"`jukebox-bridge train eq --work {work} --corpus CORPUS --level {fit['level']}` again, or "
                         "delete it to export without an output EQ")
    vqvae.cfg = vqvae.cfg.with_level_output_eq(fit["level"], tuple(tuple(p) for p in fit["points"]))


def _shipped(folder: Path | str) -> Models:
    """A model folder's weights to train on from ("default": the embedded model)."""
    from engine.weights.bundle import load_models

    return load_models(None if str(folder) == "default" else folder, device="cpu")


def adopt_codec(work: Path, init_from: Path | str | None, log: RunLog) -> None:
    """A work folder with no codec of its own takes ``init_from``'s (a model folder, or "default") as
    ``work/vqvae/best.pt``, so a new round of priors or a decoder fine-tune starts from shipped weights alone:
    the codes, and so the priors, stay those of the shipped model."""
    path = work / "vqvae" / "best.pt"
    if path.exists() or init_from is None:
        return
    vqvae = _shipped(init_from).vqvae
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_save({"config": vqvae.cfg.to_dict(), "model": vqvae.state_dict()}, path)
    atomic_write_text(work / ORIGIN_FILE, str(init_from), overwrite=True)  # export takes untrained levels from there
    log(event="codec adopted", model=str(init_from))


ORIGIN_FILE = "origin.txt"  # the model folder (or "default") a work folder's codec came from


def load_vqvae_checkpoint(path: Path) -> VQVAE:
    state = torch.load(path, weights_only=False)
    model = VQVAE(VQVAEConfig.from_dict(state["config"]))
    model.load_state_dict(state["model"])
    return model.eval()


# ------------------------------------------------------------------------------------------- priors


def encode_corpus(vqvae: VQVAE, corpus: Path, work: Path, train_seconds: float | None = None,
                  shard: tuple[int, int] = (0, 1), levels: tuple[int, ...] | None = None) -> dict[str, dict]:
    """Codes of every corpus file at ``levels`` (None: all), cached in ``work/codes`` (keyed by the VQ-VAE file).

    ``train_seconds``: encode at most this much of each training file (its middle), since encoding all of a
    large corpus on a CPU costs more than the priors' training then reads; held-out files are encoded whole.
    ``shard`` (i, n): encode only every n-th file from the i-th, so n processes can share the work.
    ``levels``: the levels' encoders share no work, so a prior that reads one level (and its upper one) encodes
    only those; a later call that needs more levels encodes just the missing ones into the same file."""
    levels = tuple(range(vqvae.cfg.levels)) if levels is None else tuple(sorted(set(levels)))
    out_dir = work / "codes"
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {}
    for k, item in enumerate(load_manifest(corpus)):
        f = out_dir / f"{item.id}.npz"
        have = dict(np.load(f)) if f.exists() else {}
        missing = tuple(lv for lv in levels if f"level{lv}" not in have)
        if missing and k % shard[1] != shard[0]:
            continue
        if missing:
            x = encoded_audio(corpus, item, train_seconds, vqvae.hop_lengths[-1])
            with torch.inference_mode():
                zs = vqvae.encode(torch.from_numpy(x)[None], levels=missing)
            have.update({f"level{lv}": z[0].numpy().astype(np.int16) for lv, z in zip(missing, zs)})
            atomic_write(f, lambda fh: np.savez(fh, **have), overwrite=True)
        result[item.id] = {"item": item, **{lv: have[f"level{lv}"].astype(np.int64) for lv in levels}}
    return result


def encoded_audio(corpus: Path, item: Item, train_seconds: float | None, top_hop: int) -> np.ndarray:
    """The samples of a corpus file that ``encode_corpus`` encodes: the middle ``train_seconds`` of a training file
    (all of it when None, and always all of a held-out one), cut to whole top-level codes."""
    x, _ = sf.read(corpus / "audio" / f"{item.id}.flac", dtype="float32")
    if train_seconds is not None and item.split == "train" and len(x) > train_seconds * SAMPLE_RATE:
        n = int(train_seconds * SAMPLE_RATE)
        x = x[(len(x) - n) // 2:][:n]
    return x[: len(x) // top_hop * top_hop]


QUIET_TOKEN_WEIGHT = 0.1  # a prior's loss weight for a code over near-silence (below SILENCE_RMS): see token_weights


def token_weights(x: np.ndarray, hop: int) -> np.ndarray:
    """Loss weights (float32, one per code of hop ``hop``) for a prior trained on the codes of audio ``x``: codes over
    near-silence (RMS below ``SILENCE_RMS`` over ``evaluate.SILENCE_FRAME``, the evaluation's silence) weigh
    ``QUIET_TOKEN_WEIGHT``, the rest 1.

    The data build trims silence only at a file's ends; pauses, fades and breaks inside a file remain, and at full
    weight they teach a prior to render near-silence. (Continuations that faded had a larger cause, the timing
    labels: ``Models.song_seconds``.)"""
    n = len(x) // hop
    power = np.square(x[: n * hop], dtype=np.float64).reshape(n, hop).mean(axis=1)
    k = max(1, round(SILENCE_FRAME * SAMPLE_RATE / hop))
    smooth = np.convolve(power, np.ones(k) / k, mode="same")
    return np.where(smooth < SILENCE_RMS ** 2, QUIET_TOKEN_WEIGHT, 1.0).astype(np.float32)


def read_vocab(path: Path) -> dict[str, int]:
    return {name: int(i) for name, i in (line.rsplit(";", 1) for line in path.read_text().splitlines() if line)}


def label_row(cfg: PriorConfig, total: int, start_token: int, artist: int, genre: int) -> list[int]:
    """y for a window: [total, offset, window length (samples), artist, genre]."""
    return [int(total), int(start_token * cfg.raw_to_tokens), int(cfg.n_ctx * cfg.raw_to_tokens), artist, genre]


def prior_batch(cfg: PriorConfig, codes: list[dict], vocab: tuple[dict, dict], n: int, rng: np.random.Generator,
                length: int | None = None, starts: list[tuple[int, int]] | None = None):
    """Windows of a level's codes with their labels, the level-above codes (upsamplers; None at the top) and the
    per-token loss weights (None unless every file has its ``"weights"``, see ``token_weights``)."""
    lv, length = cfg.level, length or cfg.n_ctx
    up = cfg.upsampling
    if starts is None:
        sizes = np.array([max(1, len(c[lv]) - length) for c in codes], np.float64)
        files = rng.choice(len(codes), size=n, p=sizes / sizes.sum())
        starts = [(int(i), int(rng.integers(0, max(1, len(codes[i][lv]) - length + 1)) // up * up)) for i in files]
    toks, ys, uppers, weights = [], [], [], []
    for i, s in starts:
        c = codes[i]
        toks.append(c[lv][s:s + length])
        if "weights" in c:
            weights.append(c["weights"][s:s + length])
        item = c["item"]
        total = len(c[lv]) * cfg.raw_to_tokens
        ys.append(label_row(cfg, total, s, vocab[0].get(item.artist, 0), vocab[1].get(item.genre, 0)))
        if cfg.has_upper_conditioner:
            uppers.append(c[lv + 1][s // up:(s + length) // up])
    upper = torch.from_numpy(np.stack(uppers)) if uppers else None
    w = torch.from_numpy(np.stack(weights)) if len(weights) == len(toks) else None
    return torch.from_numpy(np.stack(toks)), torch.tensor(ys), upper, w


def heldout_starts(codes: list[dict], level: int, length: int, up: int) -> list[tuple[int, int]]:
    """Non-overlapping windows covering each held-out file (the last partial one dropped)."""
    return [(i, s) for i, c in enumerate(codes) for s in range(0, len(c[level]) - length + 1, length)
            if s % up == 0]


def train_prior(corpus: Path, work: Path, level: int, steps: int, batch: int = 8, lr: float = 6e-4,
                ckpt_every: int = 100, eval_every: int = 200, seed: int = 0, threads: int | None = None,
                init_from: Path | str | None = None, encode_seconds: float | None = None) -> Path:
    """Train (or resume from ``work``) one level's prior on the codes of ``work``'s best VQ-VAE; ``init_from``
    starts a fresh run from a model folder's prior of this level (same config), optimiser warm-restarted, and
    from its codec when ``work`` has none. ``encode_seconds``: see ``encode_corpus`` (None: whole files)."""
    if threads:
        torch.set_num_threads(threads)
    run = work / f"prior_level_{level}"
    log = RunLog(run)
    adopt_codec(work, init_from, log)
    vqvae = load_vqvae_checkpoint(work / "vqvae" / "best.pt")
    all_codes = encode_corpus(vqvae, corpus, work, encode_seconds, levels=(level, level + 1)[:vqvae.cfg.levels - level])
    items = load_manifest(corpus)
    vocab_dir = work / "vocab"
    vocab_dir.mkdir(exist_ok=True)
    from .data import write_vocab

    vocab = write_vocab(items, vocab_dir)
    cfg = prior_configs(vqvae.cfg, len(vocab[0]), len(vocab[1]))[level]
    train = [c for c in all_codes.values() if c["item"].split == "train"]
    held = [c for c in all_codes.values() if c["item"].split == "heldout"]
    for c in train:  # held-out bits stay unweighted: the figure the card compares across rounds
        c["weights"] = token_weights(encoded_audio(corpus, c["item"], encode_seconds, vqvae.hop_lengths[-1]),
                                     vqvae.hop_lengths[level])[:len(c[level])]
    up = cfg.upsampling
    h_starts = heldout_starts(held, level, cfg.n_ctx, up)[:64]
    if not h_starts:  # else every evaluation is NaN, no best.pt is ever written and the export fails at the end
        raise ValueError(f"no held-out file holds one level-{level} window ({cfg.n_ctx * cfg.raw_to_tokens / SAMPLE_RATE:.1f} "
                         f"s); add longer held-out audio to {corpus / 'manifest.json'}")
    torch.manual_seed(seed)
    prior = init_prior(Prior(cfg))
    trainer = PriorTrainer(prior, PriorTrainConfig(lr=lr, total_steps=steps, seed=seed))
    if init_from is not None and not (run / "ckpt.pt").exists():
        shipped = _shipped(init_from).priors[level]
        if shipped.cfg != cfg:
            raise ValueError(f"{init_from}: its level-{level} prior has another configuration (codec or labels "
                             "changed); train this level from scratch instead")
        prior.load_state_dict(shipped.state_dict())
        log(event="warm start", model=str(init_from))
    ckpt, best = run / "ckpt.pt", math.inf
    if ckpt.exists():
        state = torch.load(ckpt, weights_only=False)
        trainer.load_state_dict(state["trainer"])
        best = state["best"]
        log(event="resumed", step=trainer.steps)
    else:
        log(event="start", level=level, params=sum(p.numel() for p in prior.parameters()), config=cfg.to_dict(),
            train_tokens=sum(len(c[level]) for c in train), heldout_windows=len(h_starts),
            quiet_tokens=float(np.mean(np.concatenate([c["weights"] for c in train]) < 1)))

    def evaluate() -> float:
        bits = [trainer.evaluate(*prior_batch(cfg, held, vocab, 0, None, starts=h_starts[k:k + 8]))
                for k in range(0, len(h_starts), 8)]
        return float(np.mean(bits))

    if trainer.steps == 0 and init_from is not None:  # the weights it starts from are the ones to beat
        best = evaluate()
        log(step=0, heldout_bpd=best)
    t0 = time.time()
    while trainer.steps < steps:
        m = trainer.step(*prior_batch(cfg, train, vocab, batch, np.random.default_rng([seed, level, trainer.steps])))
        s = trainer.steps
        if s % 25 == 0 or s == 1:
            log(step=s, bpd=m["bpd"], lr=m["lr"], grad_norm=m["grad_norm"], sec_per_step=(time.time() - t0) / 25)
            t0 = time.time()
        if s % eval_every == 0 or s == steps:
            bpd = evaluate()
            if bpd < best:
                best = bpd
                _atomic_save({"config": cfg.to_dict(), "model": prior.state_dict(), "steps": s, "heldout_bpd": bpd},
                             run / "best.pt")
            log(step=s, heldout_bpd=bpd, best=best)
        if s % ckpt_every == 0 or s == steps:
            _atomic_save({"trainer": trainer.state_dict(), "best": best}, ckpt)
    return run / "best.pt"


# ------------------------------------------------------------------------------------------- export


# what every render of the exported model records (docs/default-model.md, "Licence of outputs")
DEFAULT_MODEL_META = {
    "licence": "trained only on freely licensed and public-domain music (GPL-2+, GPL-3+, CC BY-SA 3.0/4.0, CC BY "
               "3.0, public domain); none of the official weights' non-commercial restriction; see docs/default-model.md",
    "attribution": "Jukebox Bridge default model, trained on the soundtracks of 26 free games packaged by Debian "
                   "(Battle for Wesnoth, Warzone 2100, UFO: Alien Invasion, SuperTux, SuperTuxKart, Widelands, "
                   "Hyperrogue and others; composers listed in docs/default-model.md)",
    "card": "docs/default-model.md",
    # the median RMS of 5-s training windows of the corpus (-17.8 dBFS over 1283 windows; its 5th-95th percentiles
    # -28 to -12): quieter sources are lifted to it before encoding (``loudness.input_gain_db``)
    "input_rms_dbfs": -18.0,
    # the song length the top prior's timing labels describe (``Models.song_seconds``): between the training
    # files' median (132 s) and the corpus's 180-s cap, so a continuation is not rendered as a short piece's ending
    "song_seconds": 150.0,
}


def export(work: Path, out: Path, name: str = "jukebox-bridge-default") -> Path:
    """Best checkpoints -> a model folder (safetensors + configs + ``artists.txt``/``genres.txt``), with the output
    EQ ``fit_output_eq`` wrote, if any."""
    from engine.model.labels import load_label_vocab_file
    from engine.weights.bundle import SHA256SUMS, Models, save_models

    codec = codec_checkpoint(work)
    vqvae = load_vqvae_checkpoint(codec)
    _fitted_output_eq(work, vqvae, codec)
    origin = (work / ORIGIN_FILE).read_text() if (work / ORIGIN_FILE).exists() else None
    origin_models = functools.cache(lambda: _shipped(origin))
    priors = []
    for lv in range(vqvae.cfg.levels):
        path = work / f"prior_level_{lv}" / "best.pt"
        if not path.exists():  # a level this round did not train: the model its codec came from has it
            if origin is None:
                raise FileNotFoundError(f"{path} is missing: train that level first (train prior --level {lv} "
                                        f"--work {work}), or start the round with --init-from/--resume")
            priors.append(origin_models().priors[lv].eval())
            continue
        state = torch.load(path, weights_only=False)
        prior = Prior(PriorConfig.from_dict(state["config"]))
        prior.load_state_dict(state["model"])
        priors.append(prior.eval())
    meta = dict(DEFAULT_MODEL_META)
    if (work / "vocab").is_dir():
        vocab = {kind: load_label_vocab_file(work / "vocab" / f"{kind}s.txt", kind) for kind in ("artist", "genre")}
    elif origin is not None:  # a round that trained no prior (a decoder fine-tune): the labels of its origin
        vocab = origin_models().vocab
    else:
        raise FileNotFoundError(f"{work / 'vocab'} is missing: train a prior in {work} first, or start the round "
                                "with --init-from/--resume")
    directory = save_models(Models(name, vqvae, priors, meta, vocab), out)
    from engine.io.files import file_sha256

    pins = {f.name: {"size": f.stat().st_size, "sha256": file_sha256(f)} for f in sorted(directory.iterdir())
            if f.name != SHA256SUMS}  # a file cannot pin its own hash
    (directory / "SHA256SUMS.json").write_text(json.dumps(pins, indent=1))  # `models verify default`
    return directory


def evaluate_and_pick_clips(work: Path, corpus: Path, model_dir: Path, clips_dir: Path | None,
                            clip_seconds: float = 5.0, n_clips: int = 3) -> dict:
    """Metrics on every held-out file (written to ``work/metrics.json``) and, optionally, a few short
    held-out clips for the repository's self-contained test."""
    from engine.weights.bundle import load_models

    from .evaluate import evaluate, save_clips

    models = load_models(model_dir)
    codes = encode_corpus(models.vqvae, corpus, work)
    counts = np.zeros(models.vqvae.cfg.l_bins, np.int64)
    for c in codes.values():
        if c["item"].split == "train":
            counts += np.bincount(c[models.levels - 1], minlength=len(counts))
    held = load_audio(corpus, "heldout")
    full = [{"id": it.id, "audio": x, "sr": SAMPLE_RATE, "artist": it.artist, "genre": it.genre,
             "total": len(x), "offset": 0} for it, x in held]
    metrics = {"heldout_files": len(full), "heldout_seconds": sum(len(c["audio"]) for c in full) / SAMPLE_RATE,
               **evaluate(models, full, counts)}
    (work / "metrics.json").write_text(json.dumps(metrics, indent=1))
    if clips_dir is not None:
        picked, genres = [], set()
        prefer = ["orchestral", "electronic", "chiptune", "ambient"]  # three styles of the corpus
        for it, x in sorted(held, key=lambda p: (prefer.index(p[0].genre) if p[0].genre in prefer else 9, p[0].id)):
            if it.genre not in genres and len(picked) < n_clips:
                genres.add(it.genre)
                start = len(x) // 3 // 256 * 256
                n = int(clip_seconds * SAMPLE_RATE) // 256 * 256
                picked.append({"id": it.id, "audio": x[start:start + n], "sr": SAMPLE_RATE, "artist": it.artist,
                               "genre": it.genre, "total": len(x), "offset": start})
        save_clips(clips_dir, picked, counts)
    return metrics
