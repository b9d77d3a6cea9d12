"""The parity runner on a 5b_lyrics-shaped (encoder-decoder) prior fixture built here.

No shared fixture has the 5b_lyrics lyric encoder, so this builds one in the shared format from the
official hparams (shrunk): an official-layout checkpoint, inputs, and reference logits from the full
(teacher-forced) pass. The runner must load it through the official key map and find the KV-cache,
chunked-prefill and fp16 paths consistent with it, and must fail when the checkpoint is altered.
"""

import json

import numpy as np
import pytest
import torch

from engine.dev.parity import run_parity
from engine.model.config import PriorConfig
from engine.model.labels import label_vector, window_label
from engine.model.lyrics import load_lyric_vocab
from engine.model.prior import Prior
from engine.weights.checkpoints import save_official
from engine.weights.keymaps import prior_official_keys

from .shared import shared_path


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


LYRICS = "Hey you, out there in the cold, getting lonely, getting old, can you feel me? " * 3


def _tiny_5b_lyrics_hparams() -> dict:
    hps = json.loads(shared_path("hparams", "prior_level_2_5b_lyrics.json").read_text())["hparams_consulted_by_make_prior"]
    hps.update(n_ctx=128, prior_width=32, prior_depth=19, heads=2, blocks=8, n_tokens=32, prime_width=24,
               prime_depth=3, prime_heads=2, prime_blocks=4, restore_prior="")
    return hps


def _write_fixture(directory, hps: dict, seed: int = 0) -> Prior:
    torch.manual_seed(seed)
    prior = Prior(PriorConfig.from_hparams(hps)).eval()
    with torch.no_grad():
        for name, p in prior.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn_like(p) if "ln" in name and name.endswith("weight") else 0.3 * torch.randn_like(p))
    cfg = prior.cfg
    assert cfg.has_lyric_encoder and 6 in [layer.attn.attn_func for layer in prior.lm.transformer.layers]
    full_lyrics = load_lyric_vocab(2).encode(LYRICS)
    y0 = label_vector("the beatles", "pop rock", LYRICS, 44100 * 60, 0, cfg.n_ctx * cfg.raw_to_tokens, 2,
                      cfg.max_bow_genre_size, cfg.n_tokens)
    y = torch.tensor([window_label(y0, 256, cfg.raw_to_tokens, cfg.n_ctx, full_lyrics, cfg.n_tokens)])
    tokens = torch.from_numpy(np.random.default_rng(seed).integers(0, cfg.bins, (1, cfg.n_ctx)))
    directory.mkdir()
    save_official(prior, prior_official_keys, directory / f"{directory.name}.pth.tar", hps)
    (directory / "hparams.json").write_text(json.dumps({"hparams_consulted_by_make_prior": hps}))
    np.save(directory / "tokens.npy", tokens.numpy())
    np.save(directory / "y.npy", y.numpy())
    with torch.no_grad():
        cond = prior.conditioning(y)
        logits = prior.logits(tokens, cond)
        losses = {k: float(v) for k, v in prior.losses(tokens, y).items()}
        n_labels = 4 + cfg.max_bow_genre_size
        bins = prior.labels.timing_bins(y[:, :n_labels])
    np.save(directory / "logits_teacher_forced.npy", logits.numpy())
    np.save(directory / "logits_incremental_first64.npy", logits[:, :64].numpy())  # the cache must equal the full pass
    np.save(directory / "cond_y_start_token.npy", cond.y_cond.numpy())
    np.save(directory / "cond_x_cond.npy", cond.x_cond.numpy())
    np.savez(directory / "timing_bins.npz", **{k: v.numpy().astype(np.int16) for k, v in bins.items()})
    (directory / "results.json").write_text(json.dumps({"losses": losses}))
    return prior


@pytest.mark.parity
def test_parity_runs_on_an_encoder_decoder_prior(tmp_path):
    fixture = tmp_path / "5b_lyrics_tiny"
    _write_fixture(fixture, _tiny_5b_lyrics_hparams())
    results = run_parity(fixture)
    assert {"logits KV cache (first 64)", "logits chunked prefill 100 + 1", "logits fp16 sampling path (first 64)"} <= {
        r.name for r in results}
    assert [r.line() for r in results if not r.passed] == []


@pytest.mark.parity
def test_parity_fails_when_the_lyric_encoder_weights_change(tmp_path):
    fixture = tmp_path / "5b_lyrics_tiny"
    _write_fixture(fixture, _tiny_5b_lyrics_hparams())
    ckpt_path = fixture / "5b_lyrics_tiny.pth.tar"
    ckpt = torch.load(ckpt_path, weights_only=True)
    ckpt["model"]["prime_state_proj.w"] = ckpt["model"]["prime_state_proj.w"] * 1.5
    ckpt_path.unlink()
    torch.save(ckpt, ckpt_path)
    failed = {r.name for r in run_parity(fixture) if not r.passed}
    assert "logits teacher-forced" in failed
