import gzip
import json
import shutil
import sys
import types

import pytest
import torch

from engine.weights.checkpoints import CheckpointError, load_vqvae, read_checkpoint, save_vqvae
from engine.weights.debug import debug_vqvae
from engine.weights.hf_keys import official_to_hf

from .shared import shared_path

VQVAE_FILE = ("vqvae", "vqvae_random_official_arch.pth.tar")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parity
def test_official_and_hf_layouts_give_identical_models():
    official = load_vqvae(shared_path(*VQVAE_FILE))
    hf = load_vqvae(shared_path("hf_format", "pytorch_model.bin"))
    assert _same_weights(official, hf)


@pytest.mark.parity
def test_hf_mirror_folder_with_sharded_safetensors(tmp_path):
    from safetensors.torch import save_file

    flat = torch.load(shared_path("hf_format", "pytorch_model.bin"), weights_only=True)
    keys = sorted(k for k in flat if k.startswith("vqvae."))
    halves = {"model-00001-of-00002.safetensors": keys[: len(keys) // 2],
              "model-00002-of-00002.safetensors": keys[len(keys) // 2:]}
    weight_map = {}
    for name, ks in halves.items():
        save_file({k: flat[k].contiguous() for k in ks}, str(tmp_path / name))
        weight_map.update({k: name for k in ks})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert _same_weights(load_vqvae(tmp_path), load_vqvae(shared_path(*VQVAE_FILE)))


@pytest.mark.parity
def test_hf_rules_reproduce_every_official_key():
    maps = json.loads(gzip.decompress(shared_path("hf_format", "key_map_official_checkpoints.json.gz").read_bytes()))
    levels = {"vqvae": None, "prior_level_0": 0, "prior_level_1": 1}
    wrong = [(name, o) for name, m in maps.items() for o, h in m.items() if official_to_hf(o, levels.get(name, 2)) != h]
    assert sum(len(m) for m in maps.values()) > 5000
    assert wrong == []


def test_safetensors_round_trip_and_no_overwrite(tmp_path):
    model = debug_vqvae(seed=3)
    path = save_vqvae(model, tmp_path / "codec")
    assert path.name == "codec.safetensors" and (tmp_path / "codec.json").exists()
    assert _same_weights(load_vqvae(path), model)
    assert load_vqvae(tmp_path / "codec.json").cfg == model.cfg
    with pytest.raises(CheckpointError, match="already exists"):
        save_vqvae(debug_vqvae(seed=4), tmp_path / "codec")
    assert _same_weights(load_vqvae(path), model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codec.json", "codec.safetensors"]


@pytest.mark.parity
def test_wrong_model_lists_keys_and_names_the_kind():
    with pytest.raises(CheckpointError) as err:
        load_vqvae(shared_path("priors", "upsampler_l1_tiny", "upsampler_l1_tiny.pth.tar"))
    msg = str(err.value)
    assert "looks like an upsampler prior" in msg
    assert "669 missing: encoders.0.level_blocks.0.model.0.0.weight" in msg
    assert "unexpected" in msg and "(+" in msg


@pytest.mark.parity
def test_mis_shaped_key_is_reported(tmp_path):
    ckpt = torch.load(shared_path(*VQVAE_FILE), weights_only=True)
    ckpt["model"]["bottleneck.level_blocks.1.k"] = torch.zeros(1024, 64)
    torch.save(ckpt, tmp_path / "bad.pth.tar")
    with pytest.raises(CheckpointError, match=r"1 wrong shape: bottleneck.level_blocks.1.k: file \[1024, 64\] vs model \[2048, 64\]"):
        load_vqvae(tmp_path / "bad.pth.tar")


@pytest.mark.parity
def test_truncated_and_corrupted_files(tmp_path):
    data = shared_path(*VQVAE_FILE).read_bytes()
    (tmp_path / "truncated.pth.tar").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.pth.tar").write_bytes(b"\x00not a checkpoint" * 100)
    for name in ("truncated.pth.tar", "garbage.pth.tar"):
        with pytest.raises(CheckpointError, match="truncated or corrupted"):
            load_vqvae(tmp_path / name)
    with pytest.raises(CheckpointError, match="not found"):
        load_vqvae(tmp_path / "missing.pth.tar")


class _Bomb:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (shutil.copyfile, (__file__, self.marker))


def test_pickle_bomb_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"hps": {}, "model": {"x": torch.zeros(1)}, "opt": _Bomb(str(marker))}, tmp_path / "bomb.pth.tar")
    with pytest.raises(CheckpointError, match="refused to load"):
        read_checkpoint(tmp_path / "bomb.pth.tar")
    assert not marker.exists()


@pytest.mark.parity
def test_official_hyperparams_object_is_read_as_a_plain_dict(tmp_path, monkeypatch):
    module = types.ModuleType("jukebox.hparams")

    class Hyperparams(dict):  # as jukebox/hparams.py defines it: attributes are items
        def __getattr__(self, attr):
            return self[attr]

        def __setattr__(self, attr, value):
            self[attr] = value

    Hyperparams.__module__ = "jukebox.hparams"
    Hyperparams.__qualname__ = "Hyperparams"
    module.Hyperparams = Hyperparams
    monkeypatch.setitem(sys.modules, "jukebox", types.ModuleType("jukebox"))
    monkeypatch.setitem(sys.modules, "jukebox.hparams", module)
    ckpt = torch.load(shared_path(*VQVAE_FILE), weights_only=True)
    hps = Hyperparams(levels=3, l_bins=2048)
    hps.sr = 44100
    ckpt["hps"] = hps
    ckpt["model"] = {"module." + k: v for k, v in ckpt["model"].items()}  # data-parallel prefix is stripped
    torch.save(ckpt, tmp_path / "official.pth.tar")
    monkeypatch.delitem(sys.modules, "jukebox.hparams")
    loaded = read_checkpoint(tmp_path / "official.pth.tar")
    assert loaded.layout == "official" and loaded.hps == {"levels": 3, "l_bins": 2048, "sr": 44100}
    assert _same_weights(load_vqvae(tmp_path / "official.pth.tar"), load_vqvae(shared_path(*VQVAE_FILE)))
