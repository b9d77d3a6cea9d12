"""Numerical parity against fixtures produced by the reference implementation.

A fixture directory is laid out like ``shared/jukebox_reference/vqvae/`` (a checkpoint, ``input_<tag>.npy``,
``codes_<tag>_level<L>.npy`` with optional ``_margin`` files, ``decoded_<tag>_from_level<L>.npy`` and
``results_<tag>.json``) or like ``priors/<name>/``. Every quantity is compared with the tolerance the
fixture README states and reported with its max abs error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.model.losses import vqvae_losses
from engine.weights.checkpoints import load_vqvae

DECODE_REL_TOL = 1e-5  # max|diff| <= 1e-5 * max|ref| (fp32)
LOSS_REL_TOL = 1e-4  # forward() uses the straight-through value; ~1e-5 relative agreement expected
MARGIN_EXACT = 1e-3  # codes must agree wherever the fp64 runner-up gap is at least this


@dataclass(frozen=True)
class Comparison:
    name: str
    max_abs_error: float
    tolerance: float
    passed: bool
    note: str = ""

    def line(self) -> str:
        status = "ok  " if self.passed else "FAIL"
        return f"{status} {self.name:<46} max|err|={self.max_abs_error:.3g} (tol {self.tolerance:.3g}) {self.note}".rstrip()


def compare_close(name: str, ours: np.ndarray, ref: np.ndarray, rel_tol: float, note: str = "") -> Comparison:
    """Float comparison with tolerance rel_tol * max|ref|; a shape mismatch fails."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    if ours.shape != ref.shape:
        return Comparison(name, float("inf"), 0.0, False, f"shape {ours.shape} vs reference {ref.shape}")
    tol = rel_tol * float(np.abs(ref).max())
    err = float(np.abs(ours - ref).max()) if ref.size else 0.0
    return Comparison(name, err, tol, err <= tol, note)


def compare_codes(name: str, ours: np.ndarray, ref: np.ndarray, margin: np.ndarray | None) -> Comparison:
    """Integer codes: exact wherever the reference's decision margin is clear (all positions if no margin)."""
    if ours.shape != ref.shape:
        return Comparison(name, float("inf"), 0, False, f"shape {ours.shape} vs reference {ref.shape}")
    differ = ours != ref
    must = np.ones_like(differ) if margin is None else margin >= MARGIN_EXACT
    hard = int((differ & must).sum())
    note = f"{int(differ.sum())}/{ref.size} differ" + ("" if margin is None else f", {hard} with margin >= {MARGIN_EXACT}")
    return Comparison(name, float(differ.sum()), 0, hard == 0, note)


def _vqvae_checkpoint(directory: Path) -> Path:
    found = sorted(directory.glob("*.pth.tar")) + sorted(directory.glob("*.safetensors"))
    if len(found) != 1:
        raise ValueError(f"{directory}: expected exactly one checkpoint (*.pth.tar or *.safetensors), found "
                         f"{[p.name for p in found]}; pass --checkpoint to choose.")
    return found[0]


def vqvae_parity(directory: Path, checkpoint: Path | None = None) -> list[Comparison]:
    """Codes, decodes and losses of every signal tag in a VQ-VAE fixture directory."""
    inputs = sorted(directory.glob("input_*.npy"))
    if not inputs:
        raise ValueError(f"{directory}: no input_<tag>.npy found; is this a VQ-VAE fixture directory?")
    model = load_vqvae(checkpoint or _vqvae_checkpoint(directory))
    out: list[Comparison] = []
    for input_path in inputs:
        tag = input_path.stem.removeprefix("input_")
        x = torch.from_numpy(np.load(input_path).astype(np.float32)).reshape(1, -1)
        with torch.inference_mode():
            codes = model.encode(x)
            for level in range(model.cfg.levels):
                ref_path = directory / f"codes_{tag}_level{level}.npy"
                if ref_path.exists():
                    margin_path = directory / f"codes_{tag}_level{level}_margin.npy"
                    margin = np.load(margin_path) if margin_path.exists() else None
                    out.append(compare_codes(f"{tag} codes level {level}", codes[level].numpy(), np.load(ref_path), margin))
                dec_path = directory / f"decoded_{tag}_from_level{level}.npy"
                if dec_path.exists() and ref_path.exists():
                    ref_codes = torch.from_numpy(np.load(ref_path))
                    ref = np.load(dec_path)
                    ours = model.decode(ref_codes, level).numpy().reshape(ref.shape)
                    out.append(compare_close(f"{tag} decode from level {level}", ours, ref, DECODE_REL_TOL))
            results_path = directory / f"results_{tag}.json"
            if results_path.exists():
                ref_losses = json.loads(results_path.read_text()).get("forward_losses_bandwidth_1", {})
                fwd = model(x)
                ours = vqvae_losses(x, fwd.recons, fwd.commit, model.cfg)
                for key, value in ref_losses.items():
                    if key in ours:
                        out.append(compare_close(f"{tag} loss {key}", np.array([float(ours[key])]), np.array([value]),
                                                 LOSS_REL_TOL))
    return out


def is_prior_fixture(directory: Path) -> bool:
    return (directory / "logits_teacher_forced.npy").exists()


def run_parity(directory: str | Path, checkpoint: str | Path | None = None) -> list[Comparison]:
    """Dispatch on the fixture's layout; raise ValueError for a directory in neither format."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: not a directory. Pass a fixture folder such as shared/jukebox_reference/vqvae.")
    ckpt = Path(checkpoint) if checkpoint else None
    if is_prior_fixture(directory):
        return prior_parity(directory, ckpt)
    return vqvae_parity(directory, ckpt)


FP16_STD_FRACTION = 0.03  # the fp16 sampling path: max|diff| <= 3 % of std(reference logits)
FP16_ARGMAX_AGREEMENT = 0.9


def prior_parity(directory: Path, checkpoint: Path | None = None) -> list[Comparison]:
    """Logits (teacher-forced, KV cache, chunked prefill, fp16 path), conditioning, timing bins and losses."""
    from .fixtures import fixture_outputs, load_fixture_prior

    ours = fixture_outputs(directory, load_fixture_prior(directory, checkpoint))
    ref = lambda name: np.load(directory / f"{name}.npy")  # noqa: E731
    tf = ref("logits_teacher_forced")
    out = [
        compare_close("logits teacher-forced", ours["logits_teacher_forced"], tf, DECODE_REL_TOL),
        compare_close("logits KV cache (first 64)", ours["logits_incremental_first64"], ref("logits_incremental_first64"),
                      DECODE_REL_TOL),
        compare_close("logits chunked prefill 100 + 1", ours["logits_prefill_100_plus_1"], tf[:, :101], DECODE_REL_TOL),
        compare_close("cond y (start token)", ours["cond_y_start_token"], ref("cond_y_start_token"), DECODE_REL_TOL),
        compare_close("cond x_cond", ours["cond_x_cond"], ref("cond_x_cond"), DECODE_REL_TOL),
    ]
    if (directory / "tokens_merged_lyrics_then_music.npy").exists():
        out.append(compare_codes("merged lyric+music tokens", ours["tokens_merged_lyrics_then_music"],
                                 ref("tokens_merged_lyrics_then_music"), None))
    if (directory / "timing_bins.npz").exists():
        with np.load(directory / "timing_bins.npz") as bins:
            for name in bins.files:
                out.append(compare_codes(f"timing bins {name}", ours["timing_bins"][name].astype(np.int64),
                                         bins[name].astype(np.int64), None))
    results = json.loads((directory / "results.json").read_text())
    for name, value in results.get("losses", {}).items():
        out.append(compare_close(f"loss {name} (bits)", np.array([ours["losses"][name]]), np.array([value]), DECODE_REL_TOL))
    fp16, ref64 = ours["logits_incremental_first64_fp16"], tf[:, :64]
    tol = FP16_STD_FRACTION * float(ref64.std())
    agree = float((fp16.argmax(-1) == ref64.argmax(-1)).mean())
    err = float(np.abs(fp16 - ref64).max())
    out.append(Comparison("logits fp16 sampling path (first 64)", err, tol, err <= tol and agree >= FP16_ARGMAX_AGREEMENT,
                          f"argmax agreement {agree:.0%}"))
    return out
