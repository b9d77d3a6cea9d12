"""Priors: parity with the reference fixtures, official key maps, attention patterns and the KV cache."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from engine.dev.fixtures import load_fixture_prior
from engine.model.attention import (
    BLOCK,
    DENSE,
    ENC_DEC,
    PATTERNS,
    PREV_BLOCK,
    PRIME,
    TRANSPOSE_BLOCK,
    Geometry,
    attend,
    attn_funcs,
    full_attention,
)
from engine.model.conditioners import LabelConditioner
from engine.model.config import OFFICIAL_PRIORS, PriorConfig
from engine.model.prior import START, Prior
from engine.weights.checkpoints import CheckpointError
from engine.weights.keymaps import prior_official_keys

from .prior_fixtures import FIXTURES, fixture_prior, fixture_results, reference
from .shared import shared_path

OFFICIAL_FILES = {
    "upsampler_level_0": "prior_level_0",
    "upsampler_level_1": "prior_level_1",
    "1b_lyrics": "prior_level_2_1b_lyrics",
    "5b": "prior_level_2_5b",
    "5b_lyrics": "prior_level_2_5b_lyrics",
}
TOP_FIXTURES = ("1b_lyrics_tiny", "5b_tiny")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one thread is several times faster than two on a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def assert_close(ours, ref, rel: float = 1e-5) -> float:
    """max|ours - ref| <= rel * max|ref|; returns the error relative to max|ref|."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape
    err = float(np.abs(ours.astype(np.float64) - ref).max() / np.abs(ref).max())
    assert err <= rel, f"max|diff| = {err:.3g} * max|ref| > {rel:g}"
    return err


# ------------------------------------------------------------------------------------ fixture parity


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_teacher_forced_logits(name):
    assert_close(fixture_results(name)["logits_teacher_forced"], reference(name, "logits_teacher_forced.npy"))


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_conditioning_tensors(name):
    ours = fixture_results(name)
    assert_close(ours["cond_y_start_token"], reference(name, "cond_y_start_token.npy"))
    assert_close(ours["cond_x_cond"], reference(name, "cond_x_cond.npy"))


@pytest.mark.parity
@pytest.mark.parametrize("name", TOP_FIXTURES)
def test_timing_bins(name):
    ours, ref = fixture_results(name)["timing_bins"], reference(name, "timing_bins.npz")
    assert set(ours) == set(ref)
    for key in ref:
        np.testing.assert_array_equal(ours[key], ref[key], err_msg=key)


@pytest.mark.parity
def test_single_stream_sequence():
    ours = fixture_results("1b_lyrics_tiny")["tokens_merged_lyrics_then_music"]
    np.testing.assert_array_equal(ours, reference("1b_lyrics_tiny", "tokens_merged_lyrics_then_music.npy"))
    prior = fixture_prior("1b_lyrics_tiny")
    np.testing.assert_array_equal(prior.from_model_tokens(torch.from_numpy(ours)).numpy(),
                                  reference("1b_lyrics_tiny", "tokens.npy"))


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_incremental_logits_first64(name):
    assert_close(fixture_results(name)["logits_incremental_first64"], reference(name, "logits_incremental_first64.npy"))


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_chunked_prefill_then_step(name):
    """100 positions prefilled in chunks of 32 (16 for 5b), not a block multiple, then one step."""
    ref = reference(name, "logits_teacher_forced.npy")
    assert_close(fixture_results(name)["logits_prefill_100_plus_1"], ref[:, :101])


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_losses_in_bits(name):
    ours, ref = fixture_results(name)["losses"], reference(name, "results.json")["losses"]
    assert set(ours) == set(ref)
    for key in ref:
        assert ours[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), key


@pytest.mark.parity
@pytest.mark.parametrize("name,chunks", [("upsampler_l1_tiny", [1]), ("5b_tiny", [1]), ("1b_lyrics_tiny", [13, 1, 40])])
def test_whole_window_through_the_cache(name, chunks):
    """Every position of the window through the cache (odd chunks straddle blocks and the lyric prefix)."""
    prior = fixture_prior(name)
    tokens, y = torch.from_numpy(reference(name, "tokens.npy")), torch.from_numpy(reference(name, "y.npy"))
    upper = torch.from_numpy(reference(name, "z_cond_upper_level_codes.npy")) if name.startswith("upsampler") else None
    with torch.no_grad():
        cond = prior.conditioning(y, upper)
        inputs = torch.nn.functional.pad(prior.to_model_tokens(tokens, y)[:, :-1], (1, 0), value=START)
        cache, out, t, i = prior.start_cache(cond), [], 0, 0
        while t < inputs.shape[1]:
            c = chunks[i % len(chunks)]
            out.append(prior.step(cache, inputs[:, t : t + c]))
            t, i = t + c, i + 1
    assert_close(torch.cat(out, 1).numpy(), reference(name, "logits_teacher_forced.npy"))


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_fp16_sampling_path(name):
    """fp16 activations and KV cache (fp32 LayerNorm, softmax, logits), as the official sampling runs.

    The reference's own fp16 path deviates by 0.4-1 % of the logit std; accept 3 % and near-full argmax
    agreement, and require a deviation of the same size as the reference's (not an accidental fp32 run).
    """
    prior = fixture_prior(name)
    tokens, y = torch.from_numpy(reference(name, "tokens.npy")), torch.from_numpy(reference(name, "y.npy"))
    upper = torch.from_numpy(reference(name, "z_cond_upper_level_codes.npy")) if name.startswith("upsampler") else None
    with torch.no_grad():
        cache = prior.start_cache(prior.conditioning(y, upper, torch.float16), torch.float16)
        inputs = torch.nn.functional.pad(prior.to_model_tokens(tokens, y)[:, :63], (1, 0), value=START)
        ours = torch.cat([prior.step(cache, inputs[:, t : t + 1]) for t in range(64)], 1).numpy()
    full = reference(name, "logits_teacher_forced.npy")
    ref, results = full[:, :64], reference(name, "results.json")
    err = np.abs(ours - ref).max()
    assert err <= 0.03 * full.std()
    assert (ours.argmax(-1) == ref.argmax(-1)).mean() >= 0.95
    assert 0.5 <= err / results["fp16_incremental_vs_fp32_teacher_forced_maxabs_first64"] <= 2.0


@pytest.mark.parity
def test_official_timing_bins():
    ref = dict(np.load(shared_path("labels", "timing_bins_official.npz")))
    for setup, name in [("prior_5b", "5b"), ("prior_5b_lyrics", "5b_lyrics"), ("prior_1b_lyrics", "1b_lyrics")]:
        cfg = dataclasses.replace(OFFICIAL_PRIORS[name], width=4)
        inputs = torch.from_numpy(ref[f"{setup}__inputs_total_offset_length"])
        labels = torch.zeros(inputs.shape[0], 4 + cfg.max_bow_genre_size, dtype=torch.long)
        labels[:, :3] = inputs
        ours = LabelConditioner(cfg).timing_bins(labels)
        for key in ("total_length_emb", "absolute_pos_emb", "relative_pos_emb"):
            np.testing.assert_array_equal(ours[key].numpy(), ref[f"{setup}__{key}_bins"], err_msg=f"{setup} {key}")


@pytest.mark.parity
def test_parity_checks_catch_a_wrong_attention_type():
    """The tolerance is discriminating: computing the first PREV_BLOCK layer as BLOCK fails it."""
    prior = copy.deepcopy(fixture_prior("upsampler_l1_tiny"))
    assert prior.lm.transformer.layers[2].attn.attn_func == PREV_BLOCK
    prior.lm.transformer.layers[2].attn.attn_func = BLOCK
    y = torch.from_numpy(reference("upsampler_l1_tiny", "y.npy"))
    with torch.no_grad():
        logits = prior(torch.from_numpy(reference("upsampler_l1_tiny", "tokens.npy")), y,
                       torch.from_numpy(reference("upsampler_l1_tiny", "z_cond_upper_level_codes.npy")))
    with pytest.raises(AssertionError):
        assert_close(logits.numpy(), reference("upsampler_l1_tiny", "logits_teacher_forced.npy"))


@pytest.mark.parity
def test_loading_refuses_an_incomplete_checkpoint(tmp_path):
    ckpt = torch.load(shared_path("priors", "5b_tiny", "5b_tiny.pth.tar"), weights_only=True, map_location="cpu")
    del ckpt["model"]["prior.transformer._attn_mods.3.mlp.c_fc.b"]
    torch.save(ckpt, tmp_path / "5b_tiny.pth.tar")
    with pytest.raises(CheckpointError, match=r"1 missing: prior.transformer._attn_mods.3.mlp.c_fc.b"):
        load_fixture_prior(shared_path("priors", "5b_tiny"), tmp_path / "5b_tiny.pth.tar")


# ---------------------------------------------------------------------------- official structure


def _manifest(file: str) -> dict:
    return json.loads(shared_path("manifests", f"{file}.json").read_text())


def _official_shapes(prior: Prior) -> dict[str, list[int]]:
    keymap, state = prior_official_keys(prior), prior.state_dict()
    return {keymap[k].name: list(state[k].shape) for k in state}


@pytest.mark.parity
@pytest.mark.parametrize("name", OFFICIAL_FILES)
def test_official_key_sets_shapes_and_order(name):
    manifest = _manifest(OFFICIAL_FILES[name])
    with torch.device("meta"):
        prior = Prior(OFFICIAL_PRIORS[name])
    ours = _official_shapes(prior)
    assert ours == {k: v["shape"] for k, v in manifest["state_dict"].items()}
    assert list(ours) == list(manifest["state_dict"])
    assert prior.lm.transformer.attn_funcs == manifest["attn_funcs"]
    if name == "5b_lyrics":
        assert prior.lyric_encoder.lm.transformer.attn_funcs == manifest["prime_prior_attn_funcs"]
    assert all(not v.transpose for v in prior_official_keys(prior).values())


@pytest.mark.parity
@pytest.mark.parametrize("name", OFFICIAL_FILES)
def test_official_config_table_matches_reference_hparams(name):
    hps = json.loads(shared_path("hparams", f"{OFFICIAL_FILES[name]}.json").read_text())
    cfg = PriorConfig.from_hparams(hps["hparams_consulted_by_make_prior"])
    assert cfg == OFFICIAL_PRIORS[name]
    transformer = hps["derived"]["prior"]["transformer"]
    assert (cfg.n_ctx_total, cfg.block_ctx) == (transformer["n_ctx_total"], transformer["block_ctx"])
    assert PriorConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parity
@pytest.mark.parametrize("name", FIXTURES)
def test_fixture_key_sets_and_shapes(name):
    state = reference(name, "hparams.json")["state_dict"]
    assert _official_shapes(fixture_prior(name)) == {k: v["shape"] for k, v in state.items()}


# ------------------------------------------------------------------------------ attention patterns


def _naive(func: int, q, k, v, n_head: int, g: Geometry):
    """Attention by definition: the pattern table's mask over every position; no visible key -> 0."""
    t = q.shape[1]
    i, j = torch.arange(t)[:, None], torch.arange(t)[None, :]
    mask = PATTERNS[func].sees(i, j, g)
    return attend(q, k, v, n_head, mask) * mask.any(1)[None, :, None]


@pytest.mark.parametrize("func", [DENSE, BLOCK, TRANSPOSE_BLOCK, PREV_BLOCK, PRIME])
@pytest.mark.parametrize("t", [48, 43])
def test_blocked_attention_equals_the_pattern_table(func, t):
    g = Geometry(block_ctx=8, n_ctx=48, prime_len=16)
    gen = torch.Generator().manual_seed(func * 100 + t)
    q, k, v = (torch.randn(2, t, 12, generator=gen) for _ in range(3))
    torch.testing.assert_close(full_attention(func, q, k, v, 3, g), _naive(func, q, k, v, 3, g), rtol=1e-5,
                               atol=1e-6)


def test_attention_orders():
    assert attn_funcs(2, 6) == [1, 2, 3, 1, 2, 3]
    order10 = attn_funcs(10, 79)
    assert [d for d, f in enumerate(order10) if f == ENC_DEC] == [18, 28, 38, 48, 58, 68, 78]
    order12 = attn_funcs(12, 72)
    assert [d for d, f in enumerate(order12) if f == PRIME] == [15, 31, 63]
    assert [d for d, f in enumerate(order12) if f == DENSE] == [47]
    with pytest.raises(ValueError):
        attn_funcs(99, 3)


# -------------------------------------------------------------- 5b_lyrics-shaped encoder-decoder prior


def tiny_5b_lyrics() -> Prior:
    """The official 5b_lyrics structure (attn_order 10: ENC_DEC layers 18 and 28) at tiny widths."""
    cfg = dataclasses.replace(OFFICIAL_PRIORS["5b_lyrics"], n_ctx=64, width=32, depth=29, heads=2, blocks=8,
                              n_tokens=16, prime_width=24, prime_depth=3, prime_heads=2, prime_blocks=4)
    torch.manual_seed(0)
    prior = Prior(cfg).eval()
    with torch.no_grad():  # large random weights, so that a wrong path changes the logits a lot
        for name, p in prior.named_parameters():
            if name.endswith(".w") or name.endswith("lm_head.weight") or name.endswith("x_out.weight"):
                p.normal_(std=1 / math.sqrt(p.shape[0] if name.endswith(".w") else p.shape[1]))
            elif ".ln" in name and name.endswith("weight"):
                p.normal_(1.0, 0.1)
            elif p.dim() == 1:
                p.normal_(std=0.1)
            else:
                p.normal_(std=0.5)
    return prior


def _tiny_inputs(prior: Prior, seed: int = 0):
    cfg = prior.cfg
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, cfg.bins, (2, cfg.n_ctx), generator=gen)
    lyrics = torch.randint(0, cfg.n_vocab, (2, cfg.n_tokens), generator=gen)
    labels = torch.tensor([[7938000, 98304, 64 * 128, 278, 14, 8, 6, -1, -1],
                           [2646000, 0, 64 * 128, 5, 3, -1, -1, -1, -1]])
    return tokens, torch.cat([labels, lyrics], dim=1)


def test_encoder_decoder_prior_cache_equals_full_pass():
    prior = tiny_5b_lyrics()
    tokens, y = _tiny_inputs(prior)
    with torch.no_grad():
        full = prior(tokens, y)
        cond = prior.conditioning(y)
        cache = prior.start_cache(cond)
        stepwise = prior.prefill(cache, tokens[:, :-1], chunk_size=1)
        cache = prior.start_cache(cond)
        prefill = prior.prefill(cache, tokens[:, :20], chunk_size=7)  # straddles blocks of 8
        steps = [prior.step(cache, tokens[:, t : t + 1]) for t in range(20, 30)]
        other_lyrics = y.clone()
        other_lyrics[:, 9:] = (other_lyrics[:, 9:] + 1) % prior.cfg.n_vocab
        moved = prior(tokens, other_lyrics)
    scale = full.abs().max()
    assert (stepwise - full).abs().max() <= 1e-5 * scale
    assert (torch.cat([prefill, *steps], 1) - full[:, :31]).abs().max() <= 1e-5 * scale
    assert (moved - full).abs().max() > 1e-2 * scale  # the lyrics reach the music through ENC_DEC layers
    losses = prior.losses(tokens, y)
    assert losses["prime_loss"] > 0 and torch.isclose(
        losses["loss"], (0.4 * losses["prime_loss"] * 16 + losses["gen_loss"] * 64) / 80)


@pytest.mark.parity
def test_encoder_decoder_keys_follow_the_official_manifest():
    prior = tiny_5b_lyrics()
    cfg = prior.cfg
    official = _manifest("prior_level_2_5b_lyrics")["state_dict"]

    def kept(key: str) -> bool:  # the official keys of the depth-truncated structure
        for prefix, depth in (("prior.transformer._attn_mods.", cfg.depth), ("prime_prior.transformer._attn_mods.",
                                                                             cfg.prime_depth)):
            if key.startswith(prefix):
                return int(key[len(prefix) :].split(".")[0]) < depth
        return True

    assert list(_official_shapes(prior)) == [k for k in official if kept(k)]
    ours = _official_shapes(prior)
    assert ours["prior.transformer._attn_mods.18.attn.c_attn.w"] == [32, 8]  # queries only
    assert ours["prior.transformer._attn_mods.28.attn.c_enc_kv.w"] == [32, 16]
    assert ours["prime_state_proj.w"] == [24, 32] and ours["prime_x_out.weight"] == [80, 32]


def test_step_validates_its_inputs():
    prior = tiny_5b_lyrics()
    tokens, y = _tiny_inputs(prior)
    with torch.no_grad():
        cache = prior.start_cache(prior.conditioning(y))
        with pytest.raises(ValueError, match="START"):
            prior.step(cache, tokens[:, :3])  # position 0 needs the start token
        prior.step(cache, torch.full((2, 1), START))
        with pytest.raises(ValueError, match="START"):
            prior.step(cache, torch.full((2, 1), START))
        with pytest.raises(ValueError, match="y must be"):
            prior.conditioning(y[:, :9])
