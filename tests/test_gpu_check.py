"""The GPU readiness script runs end to end on the CPU (``--dry-run``, tiny configs), so it is ready for a GPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parity
@pytest.mark.slow
def test_gpu_check_dry_run_reports_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--json", str(out)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    parity = {p["what"]: p for p in report["parity"]}
    fp32 = [p for name, p in parity.items() if name.endswith("logits fp32")]
    bf16 = [p for name, p in parity.items() if name.endswith("logits bf16")]
    assert fp32 and all(p["max_diff_over_std"] == 0.0 for p in fp32)  # the CPU against itself: exact
    assert bf16 and all(0.0 < p["max_diff_over_std"] < 0.5 and p["argmax_agreement"] > 0.8 for p in bf16)
    assert parity["vqvae codes level 0"]["equal_fraction"] == 1.0
    for name in ("1b_lyrics", "5b", "upsampler_level_0"):
        runs = report["priors"][name]["runs"]
        assert runs and all(r.get("tokens_per_s", 0) > 0 for r in runs), runs
    assert any(r["compiled"] for r in report["priors"]["1b_lyrics"]["runs"])  # the compiled step runs too
    assert {r["batch"] for r in report["priors"]["upsampler_level_0"]["runs"]} == {1, 8}  # batch 1 and lanes
    assert report["vqvae_decode"]["fp32"]["seconds"] > 0
    for top in ("1b_lyrics", "5b"):
        projection = report["projection"][top]
        assert projection["full_20s_seconds"] > projection["draft_10s_seconds"] > 0


def test_gpu_check_refuses_to_pretend_without_cuda():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "--dry-run" in proc.stderr
