"""Training the default model's pipeline end to end on a tiny corpus made here: the data build (and its resume),
a few steps of the VQ-VAE and a prior, each resumed from its checkpoint to the same weights as an uninterrupted
run, a warm start from a model folder, and the export loading and rendering."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.train import commands, data
from engine.train.data import Item, load_manifest, split_of, write_vocab

SR = data.SAMPLE_RATE


def _tone(seconds: float, freq: float, sr: int = SR, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    noise = np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.02 * noise).astype(np.float32)


def _ids(split: str, n: int, prefix: str) -> list[str]:
    """The first ``n`` ids ``prefix-k`` the corpus's hash split puts in ``split``."""
    return [i for i in (f"{prefix}-{k}" for k in range(1000)) if split_of(i) == split][:n]


def _build(out: Path, monkeypatch, failing: frozenset[str] = frozenset(), calls: list | None = None) -> list[Item]:
    """``data.build`` of the music21 scores, with the scores and FluidSynth replaced by synthetic audio (the Debian
    recordings have their own build tests in test_data_build.py)."""
    calls = [] if calls is None else calls
    scores = [(Item(i, "johann sebastian bach", "chorale", "public domain", f"test:{i}"), Path(i))
              for i in _ids("train", 3, "m21-test") + _ids("heldout", 1, "m21-test")]
    long_one = scores[0][0].id

    def render_score(path, item_id, genre, fluidsynth):
        calls.append(item_id)
        if item_id in failing:
            raise ValueError("music21 cannot parse this score")
        return _tone(50.0 if item_id == long_one else 7.0, 220.0, seed=len(calls)), (19, 48)

    monkeypatch.setattr(data, "music21_items", lambda: iter(scores))
    monkeypatch.setattr(data, "render_score", render_score)
    monkeypatch.setattr(data, "scores_missing", lambda: [])
    monkeypatch.setattr(data.shutil, "which", lambda name: f"/usr/bin/{name}")
    soundfont = out.parent / "fake.sf2"
    soundfont.write_bytes(b"")
    monkeypatch.setattr(data, "SOUNDFONT", soundfont)
    return data.build(out, log=lambda line: None, sources=["scores"])


def test_the_data_build_writes_flacs_and_a_manifest_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "corpus"
    calls: list[str] = []
    broken = _ids("train", 3, "m21-test")[2]
    items = _build(out, monkeypatch, failing=frozenset({broken}), calls=calls)
    assert len(calls) == 4 and len(items) == 3  # the unparsable score is skipped, not fatal
    manifest = load_manifest(out)
    assert manifest == items and {it.split for it in items} == {"train", "heldout"}
    for it in items:
        x, sr = sf.read(out / "audio" / f"{it.id}.flac", dtype="float32")
        assert sr == SR and it.seconds == pytest.approx(len(x) / SR, abs=1e-3) and it.split == split_of(it.id)
        assert np.abs(x).max() == pytest.approx(0.9, abs=1e-3)  # peak-normalised
        assert it.programs == (19, 48)
    assert items[0].seconds == data.MAX_SCORE_SECONDS  # a long score keeps one excerpt

    calls.clear()
    again = _build(out, monkeypatch, calls=calls)  # resumed: only what is missing is made
    assert calls == [broken] and len(again) == 4
    assert [it for it in load_manifest(out) if it.id != broken] == items
    artists, genres = write_vocab(again, tmp_path)
    assert artists == {"unknown": 0, "johann sebastian bach": 1} and genres == {"unknown": 0, "chorale": 1}
    assert (tmp_path / "genres.txt").read_text() == "unknown;0\nchorale;1\n"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Three 7-second files (two for training, one held out): every level's prior has a held-out window."""
    out = tmp_path_factory.mktemp("corpus")
    (out / "audio").mkdir()
    items = []
    for k, (item_id, split) in enumerate([("a", "train"), ("b", "train"), ("c", "heldout")]):
        sf.write(out / "audio" / f"{item_id}.flac", _tone(7.0, 110.0 * (k + 2), seed=k), SR, subtype="PCM_16")
        items.append(dataclasses.asdict(Item(item_id, f"artist {k % 2}", ("rock", "jazz")[k % 2], "CC0", "test", 7.0,
                                             split)))
    (out / "manifest.json").write_text(json.dumps({"sample_rate": SR, "items": items}))
    return out


def _state(path: Path, key: str) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False)[key]


RESUME_TOLERANCE = 1e-6
"""How far a resumed run's floats may sit from an uninterrupted run's: the sums inside BLAS and oneDNN may take
another order when anything else in the process changes their threading, while a resume that lost state (the
optimiser's moments, a step, the data order) moves weights by about the learning rate (1e-3)."""


def _parted(a, b, tol: float = 0.0, key: str = "") -> str | None:
    """Where two nested states (dicts, lists, tensors, numbers) part, None where they match; floats to ``tol``
    (absolute for tensors, relative for Python floats; 0: bit for bit)."""
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return f"{key}: keys {sorted(map(str, a))} != {sorted(map(str, b))}"
        return next((d for k in a if (d := _parted(a[k], b[k], tol, f"{key}.{k}")) is not None), None)
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return f"{key}: {len(a)} != {len(b)} items"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := _parted(x, y, tol, f"{key}[{i}]"))), None)
    if isinstance(a, torch.Tensor):
        if a.shape != b.shape or a.dtype != b.dtype:
            return f"{key}: {a.dtype}{tuple(a.shape)} != {b.dtype}{tuple(b.shape)}"
        if a.is_floating_point() and tol > 0:
            close = torch.allclose(a, b, rtol=0.0, atol=tol)
            return None if close else f"{key}: differs by up to {(a - b).abs().max().item():.3g}"
        return None if torch.equal(a, b) else f"{key}: values differ"
    if isinstance(a, float) and isinstance(b, float) and tol > 0:
        return None if math.isclose(a, b, rel_tol=tol) else f"{key}: {a!r} != {b!r}"
    return None if a == b else f"{key}: {a!r} != {b!r}"


def _equal(a, b) -> bool:
    return _parted(a, b) is None


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def vqvae_work(corpus, tmp_path_factory) -> Path:
    """A work folder with a VQ-VAE trained 2 steps without a break. One thread, as the tests that compare with it:
    a module fixture is set up before the suite's per-test ``one_torch_thread``, so run first in a process it would
    train under the default count, and sums in another order differ in the last bits."""
    work = tmp_path_factory.mktemp("straight")
    commands.train_vqvae(corpus, work, steps=2, batch=1, ckpt_every=1, eval_every=1, threads=1)
    return work


@pytest.mark.slow
def test_vqvae_training_resumed_from_its_checkpoint_equals_an_uninterrupted_run(corpus, vqvae_work, tmp_path):
    commands.train_vqvae(corpus, tmp_path, steps=1, batch=1, ckpt_every=1, eval_every=1)
    best = commands.train_vqvae(corpus, tmp_path, steps=2, batch=1, ckpt_every=1, eval_every=1)  # resumes at step 1
    assert best == tmp_path / "vqvae" / "best.pt" and best.exists()
    assert any(e.get("event") == "resumed" and e.get("step") == 1 for e in _events(tmp_path / "vqvae"))
    straight, resumed = torch.load(vqvae_work / "vqvae" / "ckpt.pt", weights_only=False), \
        torch.load(tmp_path / "vqvae" / "ckpt.pt", weights_only=False)
    assert resumed["steps"] == straight["steps"] == 2
    for key in ("model", "opt", "ema", "best"):
        parted = _parted(straight[key], resumed[key], RESUME_TOLERANCE, key)
        assert parted is None, parted


@pytest.mark.slow
def test_prior_training_resumes_exports_and_the_export_renders(corpus, vqvae_work, tmp_path):
    resumed = tmp_path / "resumed"
    shutil.copytree(vqvae_work / "vqvae", resumed / "vqvae")
    commands.train_prior(corpus, resumed, 1, steps=1, batch=1, ckpt_every=1, eval_every=1)
    commands.train_prior(corpus, resumed, 1, steps=2, batch=1, ckpt_every=1, eval_every=1)
    assert any(e.get("event") == "resumed" and e.get("step") == 1 for e in _events(resumed / "prior_level_1"))
    for level in range(3):  # the straight run, and every level for the export
        commands.train_prior(corpus, vqvae_work, level, steps=2 if level == 1 else 1, batch=1, ckpt_every=1,
                             eval_every=1)
    parted = _parted(_state(vqvae_work / "prior_level_1" / "ckpt.pt", "trainer"),
                     _state(resumed / "prior_level_1" / "ckpt.pt", "trainer"), RESUME_TOLERANCE, "trainer")
    assert parted is None, parted

    folder = commands.export(vqvae_work, tmp_path / "model", name="smoke")
    from engine.generate.render import render
    from engine.weights.bundle import load_models
    from engine.weights.registry import verify

    checked = verify("default", path=folder)  # what `models verify default` runs on the shipped folder
    assert checked and all(status.startswith("ok") for _, status in checked), checked

    models = load_models(folder, device="cpu")
    assert models.name == "smoke" and models.vocab["genre"].names[0] == "unknown"
    req = RenderRequest.from_fields("generate", {"seconds": 0.2, "seed": 1, "quality": "draft", "channels": 1,
                                                 "artist": "artist 1", "genre": "jazz"})
    take = render(models, req, lambda p: None, CancelToken(), None)[0]
    assert take.audio.shape == (round(0.2 * 44100), 1) and np.isfinite(take.audio).all()
    assert 0 <= take.codes[2].min() and take.codes[2].max() < models.vqvae.cfg.l_bins

    warm = tmp_path / "warm"  # a fresh run from the exported folder alone: its codec and its prior
    commands.train_prior(corpus, warm, 1, steps=1, batch=1, ckpt_every=1, eval_every=1, init_from=folder)
    assert [e["event"] for e in _events(warm / "prior_level_1") if "event" in e][:2] == ["codec adopted", "warm start"]
    start_bits = [e["heldout_bpd"] for e in _events(warm / "prior_level_1") if e.get("step") == 0]
    assert start_bits and torch.load(warm / "prior_level_1" / "best.pt", weights_only=False)["heldout_bpd"] < start_bits[0]
    assert _equal(_state(warm / "vqvae" / "best.pt", "model"), models.vqvae.state_dict())
    start = models.priors[1].state_dict()
    after = _state(warm / "prior_level_1" / "best.pt", "model")
    drift = max(float((after[k].float() - start[k].float()).abs().max()) for k in start)
    assert 0 < drift < 0.05  # one small step away from the shipped weights, not a fresh initialisation
    again = load_models(commands.export(warm, tmp_path / "model2", name="smoke2"), device="cpu")
    for level in (0, 2):  # levels this round did not train come from the model the round started from
        assert _equal(again.priors[level].state_dict(), models.priors[level].state_dict())
    assert not _equal(again.priors[1].state_dict(), models.priors[1].state_dict())
    tuned = tmp_path / "decoder"  # a round that tunes only the decoder exports the rest, labels too, from its origin
    commands.train_decoder(corpus, tuned, 0, steps=1, batch=1, ckpt_every=1, eval_every=1, init_from=folder)
    fit = commands.fit_output_eq(corpus, tuned, 0, files=2, seconds=2.0)  # the tuned decoder's roll-off, undone
    assert fit["files"] == 2 and [p[0] for p in fit["points"]] == sorted(p[0] for p in fit["points"])
    decoded = load_models(commands.export(tuned, tmp_path / "model4", name="smoke4"), device="cpu")
    assert decoded.vocab["artist"].names == models.vocab["artist"].names
    assert all(_equal(decoded.priors[lv].state_dict(), models.priors[lv].state_dict()) for lv in range(3))
    assert decoded.vqvae.cfg.level_output_eq(0) == tuple(tuple(p) for p in fit["points"])
    assert decoded.vqvae.cfg.level_output_eq(1) == () and models.vqvae.cfg.output_eq == ()
    retuned = tmp_path / "decoder2"  # a decoder tuned from a codec with an EQ drops it: fitted to the old decoder
    commands.train_decoder(corpus, retuned, 0, steps=1, batch=1, ckpt_every=1, eval_every=1,
                           init_from=tmp_path / "model4")
    assert any(e.get("event") == "output EQ dropped" for e in _events(retuned / "decoder"))
    assert commands.load_vqvae_checkpoint(retuned / "decoder" / "ckpt.pt").cfg.output_eq == ()
    best = commands.codec_checkpoint(tuned)  # a decoder changed since the fit: export refuses the stale EQ
    state = torch.load(best, weights_only=False)
    state["model"] = {k: v + 1e-3 if k.startswith("decoders.0.") else v for k, v in state["model"].items()}
    torch.save(state, best)
    with pytest.raises(ValueError, match="train eq"):
        commands.export(tuned, tmp_path / "model5")
    commands.train_vqvae(corpus, warm / "v", steps=1, batch=1, ckpt_every=1, eval_every=1, init_from=folder)
    assert any(e.get("event") == "warm start" for e in _events(warm / "v" / "vqvae"))
    with pytest.raises(FileNotFoundError, match="prior_level_0"):  # no origin to take a missing level from
        commands.export(resumed, tmp_path / "model3")


def test_codes_over_near_silence_weigh_less_in_a_priors_loss():
    hop = 128
    loud = 0.1 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR)  # -23 dBFS RMS
    x = np.concatenate([loud, 10 ** (-70 / 20) * np.sign(loud), loud]).astype(np.float32)  # a -70 dBFS pause
    w, quiet = commands.token_weights(x, hop), np.float32(commands.QUIET_TOKEN_WEIGHT)
    per_second = SR // hop
    assert w.shape == (len(x) // hop,) and np.array_equal(np.unique(w), [quiet, 1.0])
    margin = per_second // 10  # the 50-ms RMS window reaches over the edges of the pause
    assert (w[:per_second - margin] == 1).all() and (w[2 * per_second + margin:] == 1).all()
    assert (w[per_second + margin:2 * per_second - margin] == quiet).all()

    from engine.model.prior import Prior
    from engine.train.prior import init_prior

    torch.manual_seed(0)
    cfg = dataclasses.replace(commands.prior_configs(commands.VQVAE_CFG, 4, 4)[2], n_ctx=64, width=32, depth=1)
    prior = init_prior(Prior(cfg))
    tokens = torch.randint(0, cfg.bins, (2, 64))
    y = torch.tensor([commands.label_row(cfg, 64 * 128 * 4, 0, 1, 2)] * 2)
    plain = prior.losses(tokens, y)
    assert torch.isclose(prior.losses(tokens, y, weights=torch.ones(2, 64))["loss"], plain["loss"])
    half = torch.ones(2, 64)
    half[:, 32:] = 0.0  # the loss of the first halves alone; the reported bits stay those of every token
    weighted = prior.losses(tokens, y, weights=half)
    assert torch.isclose(weighted["bpd"], plain["bpd"]) and not torch.isclose(weighted["loss"], plain["loss"])
    logits = prior(tokens, y)[:, cfg.n_prime:][:, :32]
    first = torch.nn.functional.cross_entropy(logits.reshape(-1, cfg.bins), tokens[:, :32].reshape(-1)) / math.log(2)
    assert torch.isclose(weighted["loss"], first, rtol=1e-5)


@pytest.mark.slow
def test_codes_of_one_level_then_the_others_equal_every_level_at_once(corpus, vqvae_work, tmp_path):
    vq = commands.load_vqvae_checkpoint(vqvae_work / "vqvae" / "best.pt")
    top = commands.encode_corpus(vq, corpus, tmp_path, levels=(2,))
    assert all(set(c) == {"item", 2} for c in top.values())
    merged = commands.encode_corpus(vq, corpus, tmp_path)  # encodes levels 0 and 1 into the same files
    whole = commands.encode_corpus(vq, corpus, tmp_path / "all")
    assert merged.keys() == whole.keys()
    for key, codes in whole.items():
        assert all(np.array_equal(merged[key][lv], codes[lv]) for lv in range(3)), key


@pytest.mark.slow
def test_a_prior_without_a_held_out_window_is_refused_before_training(corpus, vqvae_work, tmp_path):
    short = tmp_path / "corpus"
    shutil.copytree(corpus, short)
    x, _ = sf.read(short / "audio" / "c.flac", dtype="float32")
    sf.write(short / "audio" / "c.flac", x[: 3 * SR], SR)  # 3 s held out: no 1024-token top-level window
    work = tmp_path / "work"
    shutil.copytree(vqvae_work / "vqvae", work / "vqvae")
    with pytest.raises(ValueError, match="held-out"):
        commands.train_prior(short, work, 2, steps=1, batch=1)


@pytest.mark.slow
def test_decoder_fine_tune_keeps_the_codes_resumes_and_is_what_export_takes(corpus, vqvae_work, tmp_path):
    """``train decoder``: only level 0's decoder moves (encoders and codebooks, so every code, stay), a resumed run
    equals an uninterrupted one, and ``codec_checkpoint`` (what export reads) is the tuned codec once it beats the
    original on held-out audio, the original before."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    for work in (straight, resumed):
        shutil.copytree(vqvae_work / "vqvae", work / "vqvae")
    assert commands.codec_checkpoint(straight) == straight / "vqvae" / "best.pt"
    commands.train_decoder(corpus, straight, 0, steps=2, batch=1, lr=1e-3, ckpt_every=1, eval_every=1)
    commands.train_decoder(corpus, resumed, 0, steps=1, batch=1, lr=1e-3, ckpt_every=1, eval_every=1)
    commands.train_decoder(corpus, resumed, 0, steps=2, batch=1, lr=1e-3, ckpt_every=1, eval_every=1)
    assert any(e.get("event") == "resumed" and e.get("step") == 1 for e in _events(resumed / "decoder"))
    a, b = torch.load(straight / "decoder" / "ckpt.pt", weights_only=False), \
        torch.load(resumed / "decoder" / "ckpt.pt", weights_only=False)
    for key in ("model", "opt", "best"):
        parted = _parted(a[key], b[key], RESUME_TOLERANCE, key)
        assert parted is None, parted
    original = _state(vqvae_work / "vqvae" / "best.pt", "model")
    tuned = a["model"]
    moved = {k for k in original if not torch.equal(original[k], tuned[k])}
    assert moved and all(k.startswith("decoders.0.") for k in moved), sorted(moved)[:5]
    events = _events(straight / "decoder")
    start = next(e["heldout_objective"] for e in events if e.get("step") == 0 and "heldout_objective" in e)
    better = any(e.get("heldout_objective", math.inf) < start for e in events if e.get("step", 0) > 0)
    want = straight / "decoder" / "best.pt" if better else straight / "vqvae" / "best.pt"
    assert commands.codec_checkpoint(straight) == want and want.exists()


def test_train_resume_takes_the_work_folders_state_or_else_the_shipped_model(monkeypatch, tmp_path):
    """``train … --resume``: a work folder's full state when it has one (the commands resume it themselves), else a
    warm start from the shipped weights; an explicit --init-from still wins."""
    from jukebox_bridge import cli

    seen = []
    for what in ("prior", "decoder", "vqvae"):
        monkeypatch.setattr(commands, f"train_{what}", lambda *a, **k: seen.append(k.get("init_from")))
    base = ["--corpus", str(tmp_path), "--work", str(tmp_path / "w"), "--steps", "1"]
    for what in ("prior", "decoder", "vqvae"):
        assert cli.main(["train", what, "--resume", *base]) == 0
    assert cli.main(["train", "prior", *base]) == 0
    assert cli.main(["train", "prior", "--resume", "--init-from", str(tmp_path / "m"), *base]) == 0
    assert seen == ["default", "default", "default", None, str(tmp_path / "m")]


def test_an_output_eq_fit_without_a_codec_or_a_corpus_says_which_is_missing(corpus, vqvae_work, tmp_path):
    with pytest.raises(FileNotFoundError, match="no codec"):
        commands.fit_output_eq(corpus, tmp_path / "empty", 0)
    with pytest.raises(FileNotFoundError, match="data build"):
        commands.fit_output_eq(tmp_path / "nowhere", vqvae_work, 0)
    assert not (vqvae_work / commands.OUTPUT_EQ_FILE).exists() and not (tmp_path / "empty").exists()
