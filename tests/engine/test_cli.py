import json
import sys

import numpy as np
import pytest
import soundfile as sf

from engine.weights.checkpoints import save_vqvae
from engine.weights.debug import debug_vqvae
from jukebox_bridge.cli import _request_defaults, main

from .shared import shared_path


@pytest.fixture()
def codec(tmp_path):
    return save_vqvae(debug_vqvae(seed=1), tmp_path / "tiny")


def test_encode_then_decode_through_the_cli(tmp_path, codec, capsys):
    t = np.arange(48000 * 3) / 48000
    sf.write(tmp_path / "in.wav", np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], 1) * 0.5, 48000)
    assert main(["codec", "encode", str(tmp_path / "in.wav"), "--vqvae", str(codec), "-o", str(tmp_path / "c.npz"),
                 "--start", "0.5", "--length", "2"]) == 0
    with np.load(tmp_path / "c.npz") as data:
        assert {"level0", "level1", "level2"} <= set(data.files)
        n = 88200 + (-88200) % 128  # 2 s at 44.1 kHz, padded to the top hop
        assert [data[f"level{lv}"].shape for lv in range(3)] == [(1, n // 8), (1, n // 32), (1, n // 128)]
        assert all(data[f"level{lv}"].dtype == np.int64 for lv in range(3))
    for level in (0, 2):
        out = tmp_path / f"out{level}.wav"
        assert main(["codec", "decode", str(tmp_path / "c.npz"), "--vqvae", str(codec), "--level", str(level),
                     "-o", str(out), "--sample-rate", "48000", "--channels", "2"]) == 0
        info = sf.info(out)
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, 96000)
    # never overwrite: a second decode to the same name fails and leaves the first file as it was
    before = (tmp_path / "out0.wav").read_bytes()
    assert main(["codec", "decode", str(tmp_path / "c.npz"), "--vqvae", str(codec), "-o", str(tmp_path / "out0.wav")]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "out0.wav").read_bytes() == before


def test_bad_inputs_exit_with_a_clear_message(tmp_path, codec, capsys):
    (tmp_path / "notaudio.wav").write_text("hello")
    cases = [
        (["codec", "encode", str(tmp_path / "missing.wav"), "--vqvae", str(codec), "-o", str(tmp_path / "a.npz")], "not found"),
        (["codec", "encode", str(tmp_path / "notaudio.wav"), "--vqvae", str(codec), "-o", str(tmp_path / "b.npz")], "not an audio file"),
        (["codec", "decode", str(tmp_path / "none.npz"), "--vqvae", str(codec), "-o", str(tmp_path / "c.wav")], "codes file not found"),
        (["codec", "encode", str(tmp_path / "notaudio.wav"), "--vqvae", str(tmp_path / "nope.pth.tar"), "-o", str(tmp_path / "d.npz")], "checkpoint not found"),
    ]
    for argv, phrase in cases:
        assert main(argv) == 2
        assert phrase in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notaudio.wav", "tiny.json", "tiny.safetensors"]


def test_codes_from_another_model_are_refused(tmp_path, codec, capsys):
    np.savez(tmp_path / "big.npz", level0=np.full((1, 100), 2000, dtype=np.int64))
    assert main(["codec", "decode", str(tmp_path / "big.npz"), "--vqvae", str(codec), "-o", str(tmp_path / "x.wav")]) == 2
    assert "codes must lie in 0..63" in capsys.readouterr().err


@pytest.mark.parity
def test_parity_command_exit_codes(tmp_path, capsys):
    assert main(["parity", str(shared_path("vqvae"))]) == 0
    assert "18 passed, 0 failed" in capsys.readouterr().out
    assert main(["parity", str(tmp_path)]) == 2  # an empty folder is not a fixture
    assert "no input_<tag>.npy" in capsys.readouterr().err


# ------------------------------------------------------------------ what users of the CLI meet

def _source(path, seconds=1.0, rate=44100):
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t))[:, None].repeat(2, 1), rate)
    return path


def test_sample_publishes_tagged_takes_with_the_models_own_licence_and_never_overwrites(tmp_path, capsys):
    from engine.io.publish import read_provenance
    from engine.weights.bundle import load_models

    out = tmp_path / "out"
    argv = ["sample", "--mode", "generate", "--seconds", "0.3", "--quality", "draft", "--takes", "2", "--seed", "3",
            "--channels", "1", "--out", str(out)]
    assert main(argv) == 0  # the embedded default model
    terms = load_models(None).licence()
    assert "Wesnoth" in terms["attribution"] and "CC BY-NC" not in terms["licence"]
    printed = capsys.readouterr().out
    assert terms["attribution"] in printed
    wavs = sorted(out.glob("*.wav"))
    assert [w.name.split("-", 1)[1] for w in wavs] == ["take1-generate.wav", "take2-generate.wav"]
    for wav, seed in zip(wavs, (3, 4)):
        side = json.loads(wav.with_suffix(".json").read_text())
        assert (side["licence"], side["attribution"]) == (terms["licence"], terms["attribution"])
        assert side["model"] == "jukebox-bridge-default" and side["seed"] == seed
        assert side["temperature"] == pytest.approx(_request_defaults()["temperature"])  # the value used, not null
        assert read_provenance(wav)["licence"] == terms["licence"]  # the WAV's comment chunk
        assert side["codes"] == f".jukebox/codes/{wav.stem}.npz" and (out / side["codes"]).exists()  # the engine's place
        assert str(wav) in printed
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert main(argv[:-2] + ["--model", "debug", "--out", str(out)]) == 0  # same folder: new names, old files kept
    assert all((out / name).read_bytes() == data for name, data in before.items())
    assert len(list(out.glob("*.wav"))) == 4 and [p.name for p in out.iterdir() if p.name.startswith(".")] == [".jukebox"]
    debug = [json.loads(p.read_text()) for p in out.glob("*.json") if p.name[:-5] + ".wav" not in before]
    assert len(debug) == 2 and all("random weights" in d["licence"] and d["attribution"] is None for d in debug)


def test_sample_places_a_continuation_at_the_region_end(tmp_path, capsys):
    src = _source(tmp_path / "song.wav", 1.5)
    assert main(["sample", "--model", "debug", "--mode", "continue", "--prime", str(src), "--start", "0.5",
                 "--length", "0.5", "--seconds", "0.3", "--quality", "draft", "--out", str(tmp_path / "o")]) == 0
    assert "place at 1.000 s" in capsys.readouterr().out
    (wav,) = (tmp_path / "o").glob("*.wav")
    side = json.loads(wav.with_suffix(".json").read_text())
    assert side["position"] == pytest.approx(1.0) and side["source"]["start"] == 0.5


def test_sample_refines_a_draft_from_its_saved_codes(tmp_path, capsys):
    from engine.io.codes import CodesFile

    src = _source(tmp_path / "song.wav", 1.5)
    assert main(["sample", "--model", "debug", "--mode", "continue", "--prime", str(src), "--start", "0.5",
                 "--length", "0.5", "--seconds", "0.2", "--quality", "draft", "--seed", "4", "--out",
                 str(tmp_path / "o")]) == 0
    (draft,) = (tmp_path / "o").glob("*.wav")
    assert main(["sample", "--model", "debug", "--mode", "refine", "--prime", str(draft), "--out",
                 str(tmp_path / "o")]) == 0
    assert "place at 1.000 s" in capsys.readouterr().out  # the draft's position
    (refined,) = (tmp_path / "o").glob("*-refine.wav")
    sides = [json.loads(w.with_suffix(".json").read_text()) for w in (draft, refined)]
    assert (sides[1]["quality"], sides[1]["seed"], sides[1]["position"]) == ("full", 4, pytest.approx(1.0))
    assert sf.info(refined).frames == sf.info(draft).frames
    top = [CodesFile.load(tmp_path / "o" / s["codes"]).codes[2] for s in sides]
    np.testing.assert_array_equal(top[0], top[1])
    assert main(["sample", "--model", "debug", "--mode", "refine", "--prime", str(refined), "--out",
                 str(tmp_path / "o")]) != 0  # already full quality
    assert "already full quality" in capsys.readouterr().err


def test_sample_help_documents_every_option_and_its_default(capsys):
    from jukebox_bridge.cli import build_parser

    with pytest.raises(SystemExit):
        main(["sample", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    sample = build_parser()._subparsers._group_actions[0].choices["sample"]
    options = [a for a in sample._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 20
    for action in options:
        assert action.option_strings[-1] in text and "(default: " in action.help, action.dest
    d = _request_defaults()
    assert d["temperature"] is not None and f"wilder (default: {d['temperature']:g})" in text
    assert f"(default: {d['seconds']:g})" in text and f"(default: {d['sample_rate']})" in text


def test_artists_and_genres_list_the_loaded_models_labels(capsys):
    assert main(["artists", "--search", "wansti"]) == 0  # the embedded model's own vocabulary
    assert capsys.readouterr().out.split("\n")[0] == "marek moeckel (wansti)"
    assert main(["genres"]) == 0
    assert "chiptune" in capsys.readouterr().out.split()
    assert main(["artists", "--search", "beatles"]) == 0
    assert "no artists match 'beatles' in model jukebox-bridge-default" in capsys.readouterr().out
    for argv in (["--official"], ["--version", "3"], ["--model", "debug"]):  # debug: official v2 labels
        assert main(["artists", "--search", "beatles", *argv]) == 0
        assert capsys.readouterr().out.split("\n")[0] in ("the_beatles", "the beatles")  # v2, v3 spellings
    assert main(["artists", "--limit", "3"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split()) >= 3 and "--offset 3 for more" in captured.err


def test_codec_uses_the_models_vqvae_without_vqvae(tmp_path, capsys):
    from engine.io.codes import CodesFile

    src = _source(tmp_path / "in.wav", 1.0)
    assert main(["codec", "encode", str(src), "-o", str(tmp_path / "c.npz")]) == 0  # the embedded model
    codes = CodesFile.load(tmp_path / "c.npz")
    assert codes.model == "jukebox-bridge-default" and codes.sample_rate == 22050
    assert main(["codec", "decode", str(tmp_path / "c.npz"), "--level", "1", "-o", str(tmp_path / "o.wav")]) == 0
    assert sf.info(tmp_path / "o.wav").frames == 44100
    assert main(["codec", "encode", str(src), "--model", "debug", "-o", str(tmp_path / "d.npz")]) == 0
    assert CodesFile.load(tmp_path / "d.npz").model == "debug"


def test_ctrl_c_in_sample_exits_130_saying_what_was_kept(tmp_path, monkeypatch, capsys):
    import engine.generate.render
    import engine.io.publish

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    argv = ["sample", "--model", "debug", "--seconds", "0.2", "--quality", "draft", "--takes", "2",
            "--out", str(tmp_path / "o")]
    monkeypatch.setattr(engine.generate.render, "render", interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted; no take was written" in err and "--work-dir" in err and "Traceback" not in err
    monkeypatch.undo()
    real, calls = engine.io.publish.publish_take, []

    def second_interrupted(*args, **kwargs):  # Ctrl-C while the second take is being published
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine.io.publish, "publish_take", second_interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err
    (wav,) = (tmp_path / "o").glob("*.wav")
    assert f"kept 1 take(s): {wav}" in err and wav.with_suffix(".json").exists()
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [".jukebox", wav.with_suffix(".json").name,
                                                                  wav.name]  # no staging left


def test_ctrl_c_in_batch_keeps_finished_stems_and_a_rerun_resumes(tmp_path, monkeypatch, capsys):
    import engine.batch.stems

    stems = [_source(tmp_path / f"{name}.wav", 0.4) for name in ("a", "b")]
    real = engine.batch.stems.render_stem

    def second_interrupted(models, job, progress):
        if job.name == "b":
            raise KeyboardInterrupt
        return real(models, job, progress)

    argv = ["batch", *map(str, stems), "--mode", "rerender", "--quality", "draft", "--model", "debug", "--seed", "1",
            "--out", str(tmp_path / "out")]
    monkeypatch.setattr(engine.batch.stems, "render_stem", second_interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "interrupted; 1 of 2 stem(s) finished" in err and "jukebox-batch.json" in err and "Traceback" not in err
    side = json.loads((tmp_path / "out" / "a-take1-rerender.json").read_text())
    assert "random weights" in side["licence"]  # batch sidecars carry the model's licence too
    monkeypatch.undo()
    assert main(argv) == 0
    assert "1 rendered, 1 skipped, 0 failed" in capsys.readouterr().out


def test_listen_without_matplotlib_gives_the_install_hint(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ModuleNotFoundError
    assert main(["listen", "--model", "debug", "--out", str(tmp_path / "l")]) == 2
    err = capsys.readouterr().err
    assert "pip install 'jukebox-bridge[listen]'" in err and "Traceback" not in err
    assert not (tmp_path / "l").exists()  # nothing rendered before failing


def test_user_path_errors_are_one_line(tmp_path, capsys):
    assert main(["sample", "--model", "debug", "--lyrics-file", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"jukebox-bridge: error: {tmp_path}: Is a directory") and err.count("\n") == 1
    assert main(["sample", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "model folder not found" in capsys.readouterr().err


def test_serve_says_what_to_do_next(tmp_path, monkeypatch, capsys):
    import bridge.server

    seen = []
    monkeypatch.setattr(bridge.server, "serve", lambda cfg: seen.append(cfg) or 0)
    (tmp_path / "config.toml").write_text("")
    assert main(["serve", "--config", str(tmp_path / "config.toml"), "--model", "debug",
                 "--midi-port", "My Keys"]) == 0
    err = capsys.readouterr().err
    assert seen and "reaper_scripts" in err and "max_for_live/build.py" in err
    assert 'MIDI: input "My Keys"' in err and "Ctrl-C stops the engine" in err
    assert main(["serve", "--config", str(tmp_path / "config.toml"), "--no-midi"]) == 0
    assert "MIDI: off" in capsys.readouterr().err
