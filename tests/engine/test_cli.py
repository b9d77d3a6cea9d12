import numpy as np
import pytest
import soundfile as sf

from engine.weights.checkpoints import save_vqvae
from engine.weights.debug import debug_vqvae
from jukebox_bridge.cli import main

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
