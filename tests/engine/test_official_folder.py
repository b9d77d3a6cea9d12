"""An official Jukebox folder (``vqvae.pth.tar`` + ``prior_level_{0,1,2}.pth.tar``, the reference's container and
key names) loads into the same models and renders the same take.

The folder is written from the debug models through the official save path (``save_official``); the official
prior shapes are the debug ones for the test (``OFFICIAL_PRIORS`` patched), since the real ones are gigabytes.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from engine import LICENCE_NOTE
from engine.generate.render import render
from engine.model.config import OFFICIAL_PRIORS
from engine.request import RenderRequest
from engine.runtime.progress import CancelToken
from engine.weights import bundle
from engine.weights.checkpoints import CheckpointError, save_official
from engine.weights.debug import debug_models
from engine.weights.keymaps import prior_official_keys, vqvae_official_keys

# our VQVAEConfig field -> the reference's hparam name (engine/weights/checkpoints.py reads them back)
VQVAE_HPS = {"levels": "levels", "downs_t": "downs_t", "strides_t": "strides_t", "emb_width": "emb_width",
             "l_bins": "l_bins", "width": "width", "depth": "depth", "m_conv": "m_conv",
             "dilation_growth_rate": "dilation_growth_rate", "dilation_cycle": "dilation_cycle",
             "multipliers": "hvqvae_multipliers", "reverse_decoder_dilation": "vqvae_reverse_decoder_dilation",
             "mu": "l_mu", "commit": "commit"}


@pytest.fixture()
def official(tmp_path, monkeypatch):
    """(debug models, an official-layout folder named "5b" holding their weights)."""
    models = debug_models(seed=3)
    folder = tmp_path / "5b"
    folder.mkdir()
    cfg = models.vqvae.cfg.to_dict()
    save_official(models.vqvae, vqvae_official_keys, folder / "vqvae.pth.tar",
                  {theirs: cfg[ours] for ours, theirs in VQVAE_HPS.items()} | {"sr": cfg["sample_rate"]})
    for level, prior in enumerate(models.priors):
        save_official(prior, prior_official_keys, folder / f"prior_level_{level}.pth.tar", {"level": level})
    for name, level in (("upsampler_level_0", 0), ("upsampler_level_1", 1), ("5b", 2)):
        monkeypatch.setitem(OFFICIAL_PRIORS, name, models.priors[level].cfg)
    return models, folder


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _take(models):
    req = RenderRequest.from_fields("generate", {"seconds": 0.1, "seed": 9, "quality": "full", "channels": 1})
    return render(models, req, lambda p: None, CancelToken(), None)[0]


def test_an_official_folder_loads_the_same_weights_and_renders_the_same_take(official):
    models, folder = official
    loaded = bundle.load_models(folder, device="cpu")  # the top prior named by the folder
    assert loaded.name == "5b" and loaded.levels == 3 and loaded.meta["licence"] == LICENCE_NOTE
    assert loaded.vqvae.cfg.downs_t == models.vqvae.cfg.downs_t and loaded.vqvae.cfg.l_bins == 64
    assert _same(loaded.vqvae, models.vqvae)
    assert all(_same(a, b) for a, b in zip(loaded.priors, models.priors))
    ours, theirs = _take(models), _take(loaded)
    assert all(np.array_equal(ours.codes[lv], theirs.codes[lv]) for lv in range(3))
    np.testing.assert_array_equal(ours.audio, theirs.audio)


def test_an_official_folder_under_any_name_is_recognised_and_needs_every_file(official, tmp_path):
    models, folder = official
    unnamed = shutil.copytree(folder, tmp_path / "weights")
    assert bundle.load_models(unnamed, device="cpu").name == "5b"  # the type comes from the checkpoint
    assert bundle.load_models(unnamed, top="5b", device="cpu").name == "5b"
    with pytest.raises(CheckpointError, match=r"--top 1b_lyrics was given, but the top prior is a 5b top prior"):
        bundle.load_models(unnamed, top="1b_lyrics", device="cpu")
    (unnamed / "prior_level_1.pth.tar").unlink()
    with pytest.raises(CheckpointError, match="prior_level_1"):
        bundle.load_models(unnamed, top="5b", device="cpu")


def test_a_prior_in_the_wrong_slot_is_refused_naming_what_it_holds(official):
    models, folder = official
    (folder / "prior_level_0.pth.tar").unlink()
    shutil.copy(folder / "prior_level_2.pth.tar", folder / "prior_level_0.pth.tar")
    with pytest.raises(CheckpointError, match=r"prior_level_0.pth.tar: the level-0 slot needs an upsampler prior, "
                                              r"but it holds a 5b top prior \(width 32, 3 layers"):
        bundle.load_models(folder, device="cpu")
