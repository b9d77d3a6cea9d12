"""Official weights as users have them (issue 18): any folder name, HuggingFace mirror folders, fp16 tops,
pre-zip files, tied heads, ``models verify``, the long-render estimate and converted files' modes.

Real checkpoints are gigabytes, so every folder here holds tiny models with the official *structure* and key
names (the official configs with small widths and depths, described by the hparams an official container
carries or the mirror's ``config.json``); official sizes are checked against the shared manifests on the meta
device, without weights.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import stat
import subprocess
import sys

import pytest
import torch

from engine.dev.random_weights import random_prior
from engine.errors import ErrorCode, RequestError
from engine.model.config import OFFICIAL_PRIORS, PriorConfig, prior_kind
from engine.model.transformer import Conv1D, LayerNorm
from engine.request import RenderRequest
from engine.weights import bundle, checkpoints, registry
from engine.weights.checkpoints import CheckpointError, save_official
from engine.weights.debug import debug_vqvae
from engine.weights.detect import conv_weight_keys, describe, detect_kind, expected_state, fp16_keys, matches
from engine.weights.hf_config import hf_model_config
from engine.weights.hf_keys import official_to_hf
from engine.weights.keymaps import prior_official_keys, vqvae_official_keys
from engine.weights.models import Models

from .shared import shared_path

BINS = 64  # the debug VQ-VAE's codebook
# our VQVAEConfig field -> the reference's hparam name (what an official vqvae.pth.tar carries)
VQVAE_HPS = {"levels": "levels", "downs_t": "downs_t", "strides_t": "strides_t", "emb_width": "emb_width",
             "l_bins": "l_bins", "width": "width", "depth": "depth", "m_conv": "m_conv",
             "dilation_growth_rate": "dilation_growth_rate", "dilation_cycle": "dilation_cycle",
             "multipliers": "hvqvae_multipliers", "reverse_decoder_dilation": "vqvae_reverse_decoder_dilation",
             "mu": "l_mu", "commit": "commit"}


def tiny(kind: str, level: int = 2) -> PriorConfig:
    """The official config of ``kind`` (or the level's upsampler) at a test size, same structure and key names."""
    small = dict(n_ctx=64, width=32, depth=3, blocks=8, bins=BINS)
    if level < 2:
        return dataclasses.replace(OFFICIAL_PRIORS[f"upsampler_level_{level}"], **small, cond_width=16, cond_depth=2)
    extra = {"1b_lyrics": dict(n_tokens=16), "5b": dict(heads=2),
             "5b_lyrics": dict(heads=2, depth=19, n_tokens=16, prime_width=16, prime_depth=3, prime_heads=2,
                               prime_blocks=4)}[kind]
    return dataclasses.replace(OFFICIAL_PRIORS[kind], **{**small, **extra})


def tiny_models(kind: str, seed: int = 0) -> Models:
    vq = debug_vqvae(seed)
    priors = [random_prior(tiny(kind, level), seed=seed + level) for level in range(3)]
    return Models(kind, vq, priors, {})


def _prior_state(prior, fp16: bool = True) -> dict[str, torch.Tensor]:
    """The official file's state dict: fp16 Conv1D weights for fp16_params tops (as the released 5b files)."""
    own, half = prior.state_dict(), fp16_keys(prior) if fp16 else frozenset()
    return {fk.name: own[k].half() if k in half else own[k] for k, fk in prior_official_keys(prior).items()}


def write_official(models: Models, folder, legacy: bool = False) -> None:
    folder.mkdir(parents=True)
    cfg = models.vqvae.cfg.to_dict()
    save_official(models.vqvae, vqvae_official_keys, folder / "vqvae.pth.tar",
                  {theirs: cfg[ours] for ours, theirs in VQVAE_HPS.items()} | {"sr": cfg["sample_rate"]})
    for level, prior in enumerate(models.priors):
        container = {"hps": prior.cfg.to_hparams(models.vqvae.cfg), "model": _prior_state(prior), "opt": None, "step": 0}
        torch.save(container, folder / f"prior_level_{level}.pth.tar", _use_new_zipfile_serialization=not legacy)


def hf_state(models: Models) -> dict[str, torch.Tensor]:
    """The mirror's flat state dict: every tensor fp32 (transformers' converter), tied heads sharing storage."""
    own = models.vqvae.state_dict()
    flat = {official_to_hf(fk.name, None): own[k].float() for k, fk in vqvae_official_keys(models.vqvae).items()}
    for level, prior in enumerate(models.priors):
        own = prior.state_dict()
        flat |= {official_to_hf(fk.name, level): own[k].float() for k, fk in prior_official_keys(prior).items()}
    return flat


def write_hf(models: Models, folder, fmt: str = "bin", shards: int = 3) -> None:
    """A sharded mirror folder: config.json, the index and ``shards`` weight files."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    flat = hf_state(models)
    if fmt == "safetensors":  # save_pretrained drops a tied duplicate there (tied again on load)
        def tied(key: str) -> bool:
            return key.endswith("prior.fc_proj_out.weight") and not models.priors[2 - int(key.split(".")[1])].cfg.merged_decoder

        flat = {k: v for k, v in flat.items() if not tied(k)}
    keys = list(flat)
    weight_map = {}
    for i in range(shards):
        part = keys[i * len(keys) // shards:(i + 1) * len(keys) // shards]
        name = (f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin" if fmt == "bin"
                else f"model-{i + 1:05d}-of-{shards:05d}.safetensors")
        chunk = {k: flat[k] for k in part}
        if fmt == "bin":
            torch.save(chunk, folder / name)
        else:
            save_file({k: v.contiguous() for k, v in chunk.items()}, str(folder / name))
        weight_map |= {k: name for k in part}
    index = "pytorch_model.bin.index.json" if fmt == "bin" else "model.safetensors.index.json"
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(hf_model_config(models.vqvae.cfg, [p.cfg for p in models.priors])))


def same_weights(a: torch.nn.Module, b: torch.nn.Module, exact_dtype: bool = False) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    if sa.keys() != sb.keys():
        return False
    return all(torch.equal(sa[k], sb[k]) if exact_dtype else torch.equal(sa[k].float(), sb[k].float()) for k in sa)


def same_models(a: Models, b: Models) -> bool:
    return same_weights(a.vqvae, b.vqvae) and all(same_weights(p, q) for p, q in zip(a.priors, b.priors))


def rounded(models: Models) -> Models:
    """``models`` with the fp16_params tops' Conv1D weights rounded to fp16, as their official files hold them."""
    for prior in models.priors:
        with torch.no_grad():
            for name, m in prior.named_modules():
                if isinstance(m, Conv1D) and f"{name}.w" in fp16_keys(prior):
                    m.w.copy_(m.w.half().float())
    return models


@pytest.fixture(scope="module")
def made():
    return {kind: rounded(tiny_models(kind, seed=i)) for i, kind in enumerate(("1b_lyrics", "5b", "5b_lyrics"))}


# ------------------------------------------------------------------------------------ 1. the type, detected


@pytest.mark.parity
@pytest.mark.parametrize("name,kind", [("prior_level_0", "upsampler"), ("prior_level_1", "upsampler"),
                                       ("prior_level_2_1b_lyrics", "1b_lyrics"), ("prior_level_2_5b", "5b"),
                                       ("prior_level_2_5b_lyrics", "5b_lyrics"), ("vqvae", "vqvae")])
def test_every_official_checkpoint_is_recognised_from_its_keys_and_shapes(name, kind):
    manifest = json.loads(shared_path("manifests", f"{name}.json").read_text())
    shapes = {k: v["shape"] for k, v in manifest["state_dict"].items()}
    assert detect_kind(shapes) == kind
    if kind == "vqvae":
        return
    template = OFFICIAL_PRIORS[kind if kind != "upsampler" else f"upsampler_{name.removeprefix('prior_')}"]
    assert matches(template, shapes, "official")  # so the official config is used, whatever the folder's name
    # and the dtypes `models verify` derives sizes from are the manifest's (fp16 Conv1D weights of the 5b tops)
    dtypes = {k: str(d).removeprefix("torch.") for k, _, d, _ in expected_state(template)}
    assert dtypes == {k: v["dtype"] for k, v in manifest["state_dict"].items()}
    entry = registry.REGISTRY["5b" if kind in ("upsampler", "vqvae") else kind]
    file = "prior_level_2.pth.tar" if kind not in ("upsampler",) else f"{name}.pth.tar"
    index = json.loads(shared_path("manifests", "index.json").read_text())["models"][name]
    assert registry.expected_files(entry)[file].data_bytes == index["in_memory_bytes_after_make_prior"]
    if kind != "upsampler":
        assert describe(kind, shapes).startswith(f"a {kind} top prior")
    hf = json.loads(gzip.decompress(shared_path("hf_format", "key_map_official_checkpoints.json.gz").read_bytes()))
    level = {"prior_level_0": 0, "prior_level_1": 1}.get(name, 2)
    prefix = {0: "priors.2.", 1: "priors.1.", 2: "priors.0."}[level]
    mirror = {hf[name][k].removeprefix(prefix): v for k, v in shapes.items()}
    assert detect_kind(mirror) == kind  # the mirror's names too


@pytest.mark.parametrize("kind", ["1b_lyrics", "5b", "5b_lyrics"])
def test_an_official_folder_under_any_name_loads_as_the_model_it_holds(made, kind, tmp_path):
    folder = tmp_path / "jukebox weights (copy)"
    write_official(made[kind], folder)
    loaded = bundle.load_models(folder, device="cpu")
    assert loaded.name == kind and prior_kind(loaded.top.cfg) == kind
    assert same_models(loaded, made[kind])
    assert bundle.load_models(folder, top=kind, device="cpu").name == kind
    other = next(k for k in ("1b_lyrics", "5b", "5b_lyrics") if k != kind)
    with pytest.raises(CheckpointError, match=rf"--top {other} was given, but the top prior is a {kind} top prior "
                                              rf"\(width 32, \d+ layers"):
        bundle.load_models(folder, top=other, device="cpu")


def test_top_is_an_option_of_every_loading_command_and_of_the_config_file(tmp_path):
    from bridge.server import load_config
    from jukebox_bridge.cli import build_parser

    parser = build_parser()
    for argv in (["serve"], ["sample"], ["artists"], ["genres"], ["listen"], ["batch", "a.wav", "--mode", "continue",
                 "--out", "o"], ["models", "convert", "1b_lyrics", "--out", "o"]):
        assert parser.parse_args([*argv, "--top", "1b_lyrics"]).top == "1b_lyrics", argv
    toml = tmp_path / "config.toml"
    toml.write_text('model = "/weights"\ntop = "5b_lyrics"\nmax_wait = 600\n')
    cfg = load_config(toml)
    assert (cfg.top, cfg.max_wait) == ("5b_lyrics", 600.0)
    assert load_config(toml, {"top": "1b_lyrics"}).top == "1b_lyrics"
    toml.write_text('top = "7b"\n')
    with pytest.raises(ValueError, match="setting top must be 5b, 5b_lyrics or 1b_lyrics"):
        load_config(toml)


# ------------------------------------------------------------------------------ 2. HuggingFace mirror folders


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_a_sharded_mirror_folder_loads_and_converts(made, fmt, tmp_path):
    models = made["1b_lyrics"]
    mirror = tmp_path / "openai-jukebox-1b-lyrics"
    write_hf(models, mirror, fmt)
    loaded = bundle.load_models(mirror, device="cpu")
    assert loaded.name == "1b_lyrics" and same_models(loaded, models)
    assert loaded.top.lm.x_out.weight is loaded.top.lm.x_emb.weight  # tied again, also when stored once
    name, vq = bundle.load_model_vqvae(mirror)  # the codec commands read only the shards holding vqvae.*
    assert same_weights(vq, models.vqvae)
    out = registry.convert("hf-1b_lyrics", tmp_path / "converted", path=mirror)
    back = bundle.load_models(out, device="cpu")
    assert back.name == "1b_lyrics" and same_models(back, models)
    sums = json.loads((out / "SHA256SUMS.json").read_text())
    assert {v["recorded"] for v in sums.values()} == {"conversion"} and "prior_level_2.safetensors" in sums
    assert all(s.startswith("ok (sha256 as recorded at conversion") for _, s in registry.verify("1b_lyrics", out))


# ------------------------------------------------------------------------------------ 3. fp16 stays fp16


def _dtypes(prior) -> set[torch.dtype]:
    return {m.w.dtype for m in prior.modules() if isinstance(m, Conv1D)}


def test_fp16_weights_stay_fp16_with_fp32_norms_and_logits(made, tmp_path):
    models = made["5b"]
    write_official(models, tmp_path / "official")
    write_hf(models, tmp_path / "mirror", "safetensors")
    for folder in ("official", "mirror"):  # the mirror stores fp32: narrowed to the reference's fp16
        top = bundle.load_models(tmp_path / folder, device="cpu").top
        assert _dtypes(top) == {torch.float16}, folder
        assert all(m.weight.dtype == torch.float32 for m in top.modules() if isinstance(m, LayerNorm))
        assert top.lm.x_out.weight.dtype == top.lm.x_emb.weight.dtype == torch.float32
        y = torch.zeros(1, top.cfg.y_len, dtype=torch.long)
        y[0, 0], y[0, 2] = 80 * 44100, 64 * 128  # total length, window length
        logits = top(torch.zeros(1, 8, dtype=torch.long), y)
        assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    upsampler = bundle.load_models(tmp_path / "official", device="cpu").priors[0]
    assert _dtypes(upsampler) == {torch.float32}  # the reference keeps those fp32


def test_a_1b_size_model_stored_in_fp16_stays_fp16(made, tmp_path):
    models = made["1b_lyrics"]  # the official 1b_lyrics is fp32; a re-saved fp16 copy must not be widened
    folder = tmp_path / "fp16 copy"
    write_official(models, folder)
    top = models.top
    state = {fk.name: t.half() if k in conv_weight_keys(top) else t
             for (k, fk), t in zip(prior_official_keys(top).items(), top.state_dict().values())}
    (folder / "prior_level_2.pth.tar").unlink()
    torch.save({"hps": top.cfg.to_hparams(models.vqvae.cfg), "model": state}, folder / "prior_level_2.pth.tar")
    loaded = bundle.load_models(folder, device="cpu")
    assert _dtypes(loaded.top) == {torch.float16} and _dtypes(loaded.priors[0]) == {torch.float32}
    assert loaded.top.lm.x_out.weight is loaded.top.lm.x_emb.weight


def test_weights_go_to_the_device_tensor_by_tensor_in_their_own_dtype(made, tmp_path):
    """On a GPU nothing is widened on the way: each tensor moves (here to the meta device) as read, fp16 as fp16."""
    write_official(made["5b"], tmp_path / "w")
    prior = bundle.load_prior(tmp_path / "w" / "prior_level_2.pth.tar", None, device="meta",
                              vqvae=made["5b"].vqvae.cfg)
    assert all(p.is_meta for p in prior.parameters()) and _dtypes(prior) == {torch.float16}


# --------------------------------------------------------------------------- 4. pre-zip files: mapped cache


def test_a_pre_zip_checkpoint_is_converted_once_to_a_memory_mapped_cache(made, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(checkpoints.MMAP_CACHE_ENV, str(tmp_path / "cache"))
    write_official(made["1b_lyrics"], tmp_path / "old", legacy=True)
    path = tmp_path / "old" / "prior_level_2.pth.tar"
    assert checkpoints.is_legacy_torch_file(path)
    first = checkpoints.read_checkpoint(path)
    err = capsys.readouterr().err
    assert "pre-1.6 format, which cannot be memory-mapped; converting it once" in err and "converted in" in err
    cache = checkpoints.legacy_cache_path(path)
    assert cache.exists() and stat.S_IMODE(cache.stat().st_mode) == checkpoints.user_file_mode()

    def no_full_read(p):
        raise AssertionError(f"read {p} whole again")

    monkeypatch.setattr(checkpoints, "_torch_load", no_full_read)
    again = checkpoints.read_checkpoint(path)
    assert capsys.readouterr().err == ""
    assert again.hps == first.hps and again.tensors.keys() == first.tensors.keys()
    assert all(torch.equal(again.tensors[k], first.tensors[k]) for k in first.tensors)
    monkeypatch.undo()
    monkeypatch.setenv(checkpoints.MMAP_CACHE_ENV, str(tmp_path / "cache"))
    assert same_models(bundle.load_models(tmp_path / "old", device="cpu"), made["1b_lyrics"])


# ------------------------------------------------------------------------------------------- 5. tied heads


def test_a_tied_head_stored_untied_and_different_is_refused(made, tmp_path):
    write_official(made["1b_lyrics"], tmp_path / "w")
    path = tmp_path / "w" / "prior_level_2.pth.tar"
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["prior.x_out.weight"] = ckpt["model"]["prior.x_out.weight"].clone() + 0.5
    path.unlink()
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match=r"prior.x_out.weight must be the same tensor as prior.x_emb.weight .*"
                                              r"max difference 0.5"):
        bundle.load_models(tmp_path / "w", device="cpu")


def test_a_tied_head_loads_tied_and_convert_publishes_only_what_loads_back(made, tmp_path, monkeypatch):
    write_official(made["1b_lyrics"], tmp_path / "w")
    loaded = bundle.load_models(tmp_path / "w", device="cpu")
    for prior in loaded.priors[:2] + [loaded.top]:
        assert prior.lm.x_out.weight is prior.lm.x_emb.weight
    real = checkpoints.save_model

    def broken(model, filename, metadata=None, force_contiguous=False):  # a writer that drops the last tensor
        from safetensors.torch import save_file
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(dict(list(state.items())[:-1]), filename)

    monkeypatch.setattr(checkpoints, "save_model", broken)
    with pytest.raises(CheckpointError, match="does not match its own vqvae config"):
        bundle.save_models(loaded, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"]  # nothing published, no temporary left
    monkeypatch.setattr(checkpoints, "save_model", real)
    assert same_models(bundle.load_models(bundle.save_models(loaded, tmp_path / "out"), device="cpu"), loaded)


# ------------------------------------------------------------------------------------------ 6. models verify


@pytest.fixture()
def official_entry(made, monkeypatch, tmp_path):
    """A 1b_lyrics folder whose official sizes are the tiny ones (OFFICIAL_PRIORS and the VQ-VAE patched)."""
    models = made["1b_lyrics"]
    for name, level in (("upsampler_level_0", 0), ("upsampler_level_1", 1), ("1b_lyrics", 2)):
        monkeypatch.setitem(OFFICIAL_PRIORS, name, models.priors[level].cfg)
    monkeypatch.setattr(registry, "VQVAE_CONFIG", models.vqvae.cfg)
    expected_state.cache_clear()
    folder = tmp_path / "downloaded"
    write_official(models, folder)
    yield folder
    expected_state.cache_clear()


def test_models_verify_checks_size_keys_and_a_recorded_sha256(official_entry, capsys):
    folder = official_entry
    first = dict(registry.verify("1b_lyrics", folder))
    assert set(first) == {"vqvae.pth.tar", "prior_level_0.pth.tar", "prior_level_1.pth.tar", "prior_level_2.pth.tar"}
    assert all(s.startswith("ok (size and keys as expected; sha256 recorded now") for s in first.values()), first
    assert set(json.loads((folder / "SHA256SUMS.json").read_text())) == set(first)
    assert all(s.startswith("ok (sha256 as recorded") for _, s in registry.verify("1b_lyrics", folder))

    data = bytearray((folder / "prior_level_2.pth.tar").read_bytes())  # one byte of a weight changes, same size
    data[len(data) // 2] ^= 0xFF
    (folder / "prior_level_2.pth.tar").write_bytes(bytes(data))
    (folder / "prior_level_1.pth.tar").write_bytes((folder / "prior_level_1.pth.tar").read_bytes()[:5000])
    (folder / "prior_level_0.pth.tar").unlink()  # the top prior in the level-0 slot: wrong keys
    (folder / "prior_level_0.pth.tar").write_bytes((folder / "prior_level_2.pth.tar").read_bytes())
    status = dict(registry.verify("1b_lyrics", folder))
    assert status["prior_level_2.pth.tar"].startswith("changed since its sha256 was recorded (first verify")
    assert "truncated" in status["prior_level_1.pth.tar"]
    assert not status["prior_level_0.pth.tar"].startswith("ok")
    assert status["vqvae.pth.tar"].startswith("ok")
    args = registry.argparse.Namespace(action="verify", name="1b_lyrics", path=folder, dir=None)
    assert registry.main(args) == 1
    assert "1 of 4 file(s) ok" in capsys.readouterr().out


# -------------------------------------------------------------------------------- 7. the long-render estimate


def slow_speed():
    """The official upsamplers' speed on a CPU (~4 tokens/s), at every level."""
    from engine.generate.estimate import Speed

    pair = lambda s: {lv: (s, s * 1.2) for lv in range(3)}  # noqa: E731
    return Speed("cpu", pair(0.25), pair(0.5), pair(0.5), 0.13)


def test_a_long_render_is_refused_with_its_estimate_and_offers():
    from engine.generate.estimate import check_render_time, measure_speed

    models = bundle.load_models("debug", device="cpu")
    req = RenderRequest.from_fields("generate", {"seconds": 10})
    with pytest.raises(RequestError) as err:
        check_render_time(models, req, slow_speed(), 300)
    assert err.value.code == ErrorCode.TOO_LONG
    msg = str(err.value)
    assert msg.startswith("this full-quality render of 10 s would take about ")
    assert "draft quality (the top level only) takes about" in msg and '"max_wait": 0' in msg
    offer = json.loads(msg.split("[estimate ")[1].rstrip("]"))
    assert offer["seconds"] > 300 and offer["limit"] == 300 and 0 < offer["fits_length"] < 10
    assert check_render_time(models, RenderRequest.from_fields("generate", {"seconds": offer["fits_length"]}),
                             slow_speed(), 300).seconds <= 300
    assert check_render_time(models, dataclasses.replace(req, max_wait=0.0), slow_speed(), 300).seconds > 300
    fast = measure_speed(models)  # this machine, the debug model: seconds, not refused
    assert all(fast.tokens_per_second(lv) > 50 for lv in range(3))
    assert check_render_time(models, req, fast, 300).seconds < 300


def test_the_engine_refuses_a_long_render_before_queueing_and_tells_its_speed():
    from bridge import protocol
    from bridge.server import Bridge
    from engine.params import LiveParams

    submitted = []

    class Jobs:  # as JobQueue.submit: the bridge's check runs before anything is queued
        def submit(self, params, owner, announce=None, given=None, check=None):
            if check is not None:
                check(params)
            submitted.append(params)

    models = bundle.load_models("debug", device="cpu")
    bridge = Bridge(models, Jobs(), LiveParams(), lambda *a: None, speed=slow_speed(), max_wait=300.0)
    req = protocol.parse_request("/jukebox/generate", [9000, "r1", json.dumps({"seconds": 10})])
    with pytest.raises(RequestError, match="would take about") as err:
        bridge.handle(req, "127.0.0.1")
    assert err.value.code == ErrorCode.TOO_LONG and submitted == []
    draft = protocol.parse_request("/jukebox/generate", [9000, "r2", json.dumps({"seconds": 1, "quality": "draft"})])
    bridge.handle(draft, "127.0.0.1")
    anyway = protocol.parse_request("/jukebox/generate", [9000, "r3", json.dumps({"seconds": 10, "max_wait": 0})])
    bridge.handle(anyway, "127.0.0.1")
    assert len(submitted) == 2
    info = json.loads(bridge.handle(protocol.parse_request("/jukebox/info", [9000, "i"]), "h")[0].args[1][1])
    assert info["speed"]["tokens_per_second"]["0"] == 4.0 and info["speed"]["max_wait"] == 300.0


def test_sample_refuses_a_long_render_in_one_line(monkeypatch, capsys, tmp_path):
    from engine.generate import estimate
    from jukebox_bridge.cli import main

    monkeypatch.setattr(estimate, "measured_speed", lambda models, log=None, cache=True: slow_speed())
    assert main(["sample", "--model", "debug", "--seconds", "10", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: this full-quality render of 10 s would take about" in err and "draft quality" in err
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ 8. file modes


def test_converted_files_get_the_users_normal_mode(made, tmp_path):
    out = bundle.save_models(made["5b"], tmp_path / "converted")
    want = 0o666 & ~_umask()
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {p.name: want for p in out.iterdir()}


def _umask() -> int:
    """This process's umask, read in a child (which inherits it) so as not to change it here."""
    out = subprocess.run([sys.executable, "-c", "import os; print(os.umask(0))"], capture_output=True, text=True,
                         check=True)
    return int(out.stdout)


def test_models_verify_checks_a_mirror_folder(made, official_entry, tmp_path):
    mirror = tmp_path / "mirror"
    write_hf(made["1b_lyrics"], mirror, "safetensors")
    status = dict(registry.verify("hf-1b_lyrics", mirror))
    assert set(status) == {"config.json", "model.safetensors.index.json", *(p.name for p in mirror.glob("*.safetensors"))}
    assert all(s.startswith("ok") for s in status.values()), status
    shard = sorted(mirror.glob("*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    status = dict(registry.verify("hf-1b_lyrics", mirror))
    assert not status[shard.name].startswith("ok"), status[shard.name]
