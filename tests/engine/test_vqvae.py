import numpy as np
import pytest
import torch

from engine.dev.parity import run_parity
from engine.model.bottleneck import Codebook, EMACodebookTrainer
from engine.model.config import VQVAEConfig
from engine.model.vqvae import VQVAE
from engine.train.vqvae import TrainConfig, VQVAETrainer
from engine.weights.debug import debug_vqvae
from engine.weights.keymaps import vqvae_official_keys

from .shared import shared_path


@pytest.mark.parity
@pytest.mark.parametrize("checkpoint", [None, "hf_format/pytorch_model.bin"])
def test_codes_decodes_and_losses_match_reference(checkpoint):
    ckpt = shared_path(checkpoint) if checkpoint else None
    results = run_parity(shared_path("vqvae"), ckpt)
    names = {r.name for r in results}
    assert {f"chord3s codes level {lv}" for lv in range(3)} <= names
    assert {f"chord3s decode from level {lv}" for lv in range(3)} <= names
    assert [r.line() for r in results if not r.passed] == []
    codes = [r for r in results if "codes" in r.name]
    assert all(r.max_abs_error == 0 for r in codes)  # exact at every position, not just clear-margin ones


@pytest.mark.parity
def test_parity_fails_on_a_tampered_fixture(tmp_path):
    src = shared_path("vqvae")
    for f in src.iterdir():
        (tmp_path / f.name).symlink_to(f)
    codes = np.load(src / "codes_chord3s_level2.npy").copy()
    codes[0, 500] = (codes[0, 500] + 1) % 2048
    (tmp_path / "codes_chord3s_level2.npy").unlink()
    np.save(tmp_path / "codes_chord3s_level2.npy", codes)
    failed = [r.name for r in run_parity(tmp_path) if not r.passed]
    assert "chord3s codes level 2" in failed and "chord3s decode from level 2" in failed


@pytest.mark.parity
def test_official_structure_matches_manifest():
    import json

    manifest = json.loads(shared_path("manifests", "vqvae.json").read_text())["state_dict"]
    model = VQVAE(VQVAEConfig())
    keymap = vqvae_official_keys(model)
    own = model.state_dict()
    assert [keymap[k].name for k in own] == list(manifest)
    assert all(list(own[k].shape) == manifest[keymap[k].name]["shape"] for k in own)


def test_every_level_decodes_to_the_input_length():
    model = debug_vqvae()
    x = torch.randn(2, 128 * 20) * 0.1
    with torch.no_grad():
        codes = model.encode(x)
        assert [tuple(z.shape) for z in codes] == [(2, 320), (2, 80), (2, 20)]
        for level, z in enumerate(codes):
            assert z.dtype == torch.int64 and int(z.max()) < 64
            assert model.decode(z, level).shape == (2, 128 * 20)
    with pytest.raises(ValueError, match="level must be in 0..2"):
        model.decode(codes[0], 3)


def _tones(n: int, seconds_samples: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(seconds_samples) / 44100
    freqs = 110 * 2 ** (torch.randint(0, 36, (n, 1), generator=g) / 12)
    return 0.5 * torch.sin(2 * torch.pi * freqs * t) * torch.exp(-3 * t)


@pytest.mark.slow
def test_training_lowers_the_loss():
    torch.manual_seed(0)
    model = debug_vqvae()
    trainer = VQVAETrainer(model, TrainConfig(lr=3e-3, seed=0))
    batch = _tones(4, 4096, seed=1)
    first = trainer.step(batch)
    for _ in range(50):
        last = trainer.step(batch)
    assert last["loss"] < 0.8 * first["loss"], (first["loss"], last["loss"])
    assert last["multispectral_loss"] < 0.8 * first["multispectral_loss"]


def test_dead_codes_are_restarted_from_the_batch():
    book = Codebook(bins=8, width=2)
    ema = EMACodebookTrainer(book, mu=0.5, threshold=1.0, generator=torch.Generator().manual_seed(0))
    data = torch.randn(64, 2) + 10.0  # far from where any code will end up unused
    ema.init(data)
    book.codebook[7] = torch.tensor([-100.0, -100.0])  # a code no vector will ever choose
    ema.k_sum[7], ema.k_elem[7] = book.codebook[7].clone(), torch.tensor(1.0)
    codes, _ = book.quantise(data)
    assert 7 not in codes.tolist()
    stats = ema.update(data, codes)  # count of code 7 decays to 0.5 < threshold -> restart
    assert stats["restarted"] >= 1
    assert torch.cdist(book.codebook[7:8], data).min() < 1.0  # now sits on (noisy) real data


def test_the_band_envelope_loss_asks_for_each_octaves_energy_not_its_fine_structure():
    """Two independent noises of one spectrum are near 0 apart (a decoder may invent the top octave's detail), a
    copy without its top octave is far (it must not drop it); the log-spectral loss cannot tell these apart as
    well, since it also counts every bin's fine structure."""
    from engine.train.evaluate import lowpass
    from engine.train.vqvae import band_envelope_loss, log_spectral_loss

    sr, g = 22050, torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 1, sr, generator=g).unbind(0)
    dull = torch.from_numpy(lowpass(a[0].numpy(), sr, 4000.0))[None]
    same, lost = band_envelope_loss(a, b, sr), band_envelope_loss(a, dull, sr)
    assert float(band_envelope_loss(a, a, sr)) == 0.0
    assert float(same) < 0.1 and float(lost) > 5 * float(same), (float(same), float(lost))
    assert float(log_spectral_loss(a, b, VQVAEConfig())) > 5 * float(same)
