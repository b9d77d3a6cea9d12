"""Batch rendering with the debug model: per-stem errors, resumable manifest, alignment, and a Dask cluster."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.batch import run as batch
from engine.batch.report import PlainReporter, RichReporter, make_reporter
from engine.batch.run import BatchError, run_batch
from engine.weights import bundle as models
from jukebox_bridge.cli import main

pytestmark = pytest.mark.timeout(120)
FIELDS = {"takes": 2, "quality": "draft", "seed": 11}
STEMS = {"bass": (44100, 1, 0.6), "keys": (48000, 2, 0.5), "pad": (22050, 2, 0.7)}  # rate, channels, seconds


def write_stems(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, (rate, channels, seconds)) in enumerate(STEMS.items()):
        t = np.arange(int(seconds * rate)) / rate
        sf.write(folder / f"{name}.wav", np.repeat((0.3 * np.sin(2 * np.pi * 110 * (i + 1) * t))[:, None], channels, 1),
                 rate)
        paths.append(folder / f"{name}.wav")
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 20)  # a header and no audio
    return paths + [folder / "broken.wav"]


def read(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float32", always_2d=True)[0]


@pytest.fixture(scope="module")
def local(tmp_path_factory):
    """One batch rendered in this process: (stems, output folder, summary, report text)."""
    root = tmp_path_factory.mktemp("batch")
    stems = write_stems(root / "stems")
    report = io.StringIO()
    summary = run_batch(stems, root / "out", "rerender", FIELDS, model="debug", reporter=PlainReporter(report))
    return stems, root / "out", summary, report.getvalue()


def test_good_stems_render_and_the_corrupt_one_is_reported(local):
    stems, out, summary, report = local
    assert sorted(summary.rendered) == sorted(STEMS) and not summary.ok
    assert list(summary.failed) == ["broken"] and "broken.wav is not audio" in summary.failed["broken"]
    assert "broken: FAILED" in report and "batch: 3 rendered, 0 skipped, 1 failed" in report
    manifest = json.loads((out / "jukebox-batch.json").read_text())
    assert manifest["seed"] == 11 and manifest["stems"]["broken"]["state"] == "failed"
    assert manifest["stems"]["broken"]["error"]["code"] == "not_audio"
    for name, (rate, channels, seconds) in STEMS.items():
        assert manifest["stems"][name]["state"] == "done"
        for take in (1, 2):
            wav = out / f"{name}-take{take}-rerender.wav"
            info = sf.info(wav)  # aligned to the stem: its rate, channels and exact length
            assert (info.samplerate, info.channels, info.frames) == (rate, channels, sf.info(stems[0].parent / f"{name}.wav").frames)
            side = json.loads(wav.with_suffix(".json").read_text())
            assert (side["position"], side["seed"], side["mode"]) == (0.0, 11 + take - 1, "rerender")
        assert not np.array_equal(read(out / f"{name}-take1-rerender.wav"), read(out / f"{name}-take2-rerender.wav"))


def test_a_rerun_renders_nothing_new_and_a_fixed_stem_is_retried(local, tmp_path, monkeypatch):
    stems, out = write_stems(tmp_path / "stems"), tmp_path / "out"  # a copy: the other tests keep theirs
    shutil.copytree(local[1], out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}

    def no_model(*args, **kwargs):
        raise AssertionError("nothing to render, so no model should load")

    monkeypatch.setattr(models, "load_models", no_model)
    summary = run_batch(stems, out, "rerender", {**FIELDS, "seed": None}, model="debug", reporter=PlainReporter(io.StringIO()))
    assert summary.rendered == [] and sorted(summary.skipped) == sorted(STEMS) and list(summary.failed) == ["broken"]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")} == before
    monkeypatch.undo()
    sf.write(stems[-1], np.zeros((4410, 1)), 44100)  # the user fixes the broken stem; the rest stays done
    summary = run_batch(stems, out, "rerender", FIELDS, model="debug", reporter=PlainReporter(io.StringIO()))
    assert summary.rendered == ["broken"] and summary.ok and len(summary.skipped) == 3
    assert (out / "broken-take2-rerender.wav").exists()


def test_other_settings_in_the_same_folder_are_refused(local):
    stems, out, _, _ = local
    with pytest.raises(BatchError, match=r"other settings \(genre: None -> 'rock'\)"):
        run_batch(stems, out, "rerender", {**FIELDS, "genre": "rock"}, model="debug")
    with pytest.raises(BatchError, match=r"seed: 11 -> 12"):
        run_batch(stems, out, "rerender", {**FIELDS, "seed": 12}, model="debug")
    with pytest.raises(BatchError, match="takes must be an integer from 1 to 8"):
        run_batch(stems, out, "rerender", {**FIELDS, "takes": 9}, model="debug")
    with pytest.raises(BatchError, match="several stems are named bass"):
        run_batch([stems[0], stems[0].parent / "x" / "bass.wav"], out, "rerender", FIELDS)


def test_continuations_are_placed_after_their_stems_with_the_chain(tmp_path):
    stem = write_stems(tmp_path / "stems")[0]
    summary = run_batch([stem], tmp_path / "out", "continue", {**FIELDS, "takes": 1, "seconds": 0.5, "chain": "polish"},
                        model="debug", reporter=PlainReporter(io.StringIO()))
    assert summary.ok
    wav = tmp_path / "out" / "bass-take1-continue.wav"
    side = json.loads(wav.with_suffix(".json").read_text())
    assert side["position"] == pytest.approx(0.6) and side["chain"] == "polish"  # starts where the stem ends
    assert sf.info(wav).frames == 22050 and np.abs(read(wav)).max() <= 10 ** (-1 / 20) + 1e-4


def test_the_same_batch_on_a_dask_cluster_gives_the_same_outputs(local, tmp_path):
    from distributed import LocalCluster

    stems, out, _, _ = local
    stems = stems[:-1] + [write_stems(tmp_path / "stems")[-1]]  # the same batch, a corrupt stem included
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp",
                      dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        report = io.StringIO()
        summary = run_batch(stems, tmp_path / "out", "rerender", FIELDS, model="debug",
                            cluster=cluster.scheduler_address, reporter=PlainReporter(report))
    assert sorted(summary.rendered) == sorted(STEMS) and list(summary.failed) == ["broken"], report.getvalue()
    for name in STEMS:
        for take in (1, 2):
            file = f"{name}-take{take}-rerender.wav"
            assert np.array_equal(read(tmp_path / "out" / file), read(out / file)), file
    manifest = json.loads((tmp_path / "out" / "jukebox-batch.json").read_text())
    assert {k: e["state"] for k, e in manifest["stems"].items()} == {**{n: "done" for n in STEMS}, "broken": "failed"}


def test_rich_display_on_a_terminal_plain_lines_elsewhere(tmp_path):
    from rich.console import Console

    assert type(make_reporter(io.StringIO())) is PlainReporter
    screen = io.StringIO()
    reporter = RichReporter(Console(file=screen, force_terminal=True, width=100))
    stem = write_stems(tmp_path / "stems")[1]
    summary = run_batch([stem], tmp_path / "out", "rerender", {**FIELDS, "takes": 1}, model="debug", reporter=reporter)
    assert summary.ok
    text = screen.getvalue()
    assert "all stems" in text and "keys: done" in text and "1 rendered, 0 skipped, 0 failed" in text


def test_batch_command_exits_nonzero_when_a_stem_failed(tmp_path, capsys):
    stems = write_stems(tmp_path / "stems")
    args = ["batch", str(stems[1]), str(stems[-1]), "--mode", "rerender", "--takes", "1", "--quality", "draft",
            "--model", "debug", "--seed", "1", "--out", str(tmp_path / "out")]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "broken: FAILED" in out and "1 rendered, 0 skipped, 1 failed" in out
    assert main(args + ["--chain", "nope"]) == 2
    assert "neither a built-in" in capsys.readouterr().err
    assert batch.output_name(stems[1]) == "keys"
