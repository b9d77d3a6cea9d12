"""Tests for engine.io.audio: region reads, formats, resampling, atomic writes and error messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.io import audio
from engine.io.audio import AudioError, AudioExistsError, AudioRegion

SR = 48000


def sine(freq: float, seconds: float, sr: int, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t)
    return np.stack([x * (1.0 - 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)


def peak_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


def only_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ---------------------------------------------------------------- reading


def test_region_read_is_sample_accurate(tmp_path: Path) -> None:
    frames = 2 * SR
    ramp = (np.arange(frames) - frames // 2).astype(np.int32)  # exact in PCM_24
    data = np.stack([ramp, -ramp], axis=1)
    path = tmp_path / "ramp.wav"
    sf.write(path, data << 8, SR, subtype="PCM_24")  # int32 container, value in the top 24 bits
    region = audio.read_region(path, start=0.5, length=0.25)
    assert isinstance(region, AudioRegion)
    assert region.start_frame == 24000 and region.sample_rate == SR and region.path == path
    assert region.samples.dtype == np.float32 and region.samples.shape == (12000, 2)
    expected = (data[24000:36000] << 8).astype(np.float64) / 2**31
    np.testing.assert_array_equal(region.samples, expected.astype(np.float32))


def test_region_defaults_to_whole_file_and_rounds_to_frames(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    x = sine(440, 1.0, SR)
    sf.write(path, x, SR, subtype="FLOAT")
    whole = audio.read_region(path)
    np.testing.assert_array_equal(whole.samples, x)
    rest = audio.read_region(path, start=0.75)
    assert rest.start_frame == 36000 and rest.frames == 12000
    odd = audio.read_region(path, start=1 / 3, length=0.1 + 1e-7)  # round(), not truncation
    assert odd.start_frame == 16000 and odd.frames == 4800
    np.testing.assert_array_equal(odd.samples, x[16000:20800])


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix", "lossless"),
    [("WAV", "PCM_24", ".wav", True), ("AIFF", "PCM_24", ".aiff", True),
     ("FLAC", "PCM_24", ".flac", True), ("OGG", "VORBIS", ".ogg", False)],
)
def test_formats_read(tmp_path: Path, fmt: str, subtype: str, suffix: str, lossless: bool) -> None:
    x = sine(1000, 1.0, 44100, channels=2)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, x, 44100, format=fmt, subtype=subtype)
    region = audio.read_region(path, start=0.25, length=0.5)
    assert region.samples.shape == (22050, 2)
    full, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_allclose(region.samples, full[11025:33075], atol=1e-6)  # seek == decode-all
    if lossless:
        np.testing.assert_allclose(region.samples, x[11025:33075], atol=2**-22)
    else:
        assert abs(peak_hz(region.samples[:, 0], 44100) - 1000) < 5
        assert np.corrcoef(region.samples[:, 0], x[11025:33075, 0])[0, 1] > 0.99


def test_mp3_read_or_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tone.mp3"
    if audio.mp3_supported():  # libsndfile >= 1.1 built with mpg123/lame: read it for real
        sr = 22050  # low rates need the longest preroll after a seek (bit reservoir)
        t = np.arange(6 * sr) / sr
        chirp = (0.5 * np.sin(2 * np.pi * (200 + 300 * t) * t)).astype(np.float32)
        sf.write(path, chirp, sr, format="MP3", subtype="MPEG_LAYER_III")
        full, _ = sf.read(path, dtype="float32", always_2d=True)
        assert len(full) == len(chirp)  # gapless: encoder delay/padding removed
        for start in (0.0, 0.01, 1.3, 2.5, 4.9):
            region = audio.read_region(path, start=start, length=1.0)
            first = round(start * sr)
            assert region.samples.shape == (sr, 1) and region.start_frame == first
            np.testing.assert_allclose(region.samples, full[first:first + sr], atol=1e-6)
        assert np.corrcoef(full[:, 0], chirp)[0, 1] > 0.99  # and it is the signal we wrote, in time
    else:
        path.write_bytes(b"\xff\xfb\x90\x00" * 256)
        with pytest.raises(AudioError, match="no MP3 support"):
            audio.read_region(path)


def test_mp3_unsupported_branch_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tone.mp3"
    path.write_bytes(b"\xff\xfb\x90\x00" * 256)
    monkeypatch.setattr(audio, "mp3_supported", lambda: False)
    with pytest.raises(AudioError, match=r"no MP3 support.*pip install -U soundfile"):
        audio.read_region(path)


# ---------------------------------------------------------------- resampling and model input


def test_downmix_and_resample_48k_stereo(tmp_path: Path) -> None:
    path = tmp_path / "st.wav"
    x = sine(440, 1.0, SR, channels=2)
    sf.write(path, x, SR, subtype="FLOAT")
    region = audio.read_region(path)
    y = audio.to_model_input(region)
    assert y.dtype == np.float32 and y.shape == (44100,)
    assert abs(peak_hz(y, 44100) - 440) < 2
    same_rate = AudioRegion(x, 44100, 0, path)
    np.testing.assert_allclose(audio.to_model_input(same_rate), 0.5 * x[:, 0] + 0.5 * x[:, 1], atol=1e-7)


@pytest.mark.parametrize(("from_sr", "to_sr", "n"), [(22050, 44100, 22050), (48000, 44100, 48000),
                                                     (44100, 48000, 1001), (96000, 44100, 12345),
                                                     (8000, 384000, 333)])
def test_resample_exact_length_and_frequency(from_sr: int, to_sr: int, n: int) -> None:
    x = sine(997, n / from_sr, from_sr)[:n, 0]
    y = audio.resample(x, from_sr, to_sr)
    assert y.dtype == np.float32 and y.shape == (round(n * to_sr / from_sr),)
    if n >= 10000:
        assert abs(peak_hz(y, to_sr) - 997) < 3
    stereo = audio.resample(np.stack([x, x], axis=1), from_sr, to_sr)
    assert stereo.shape == (round(n * to_sr / from_sr), 2)


def test_resample_22050_to_44100_keeps_sine() -> None:
    x = sine(3000, 1.0, 22050)[:, 0]
    y = audio.resample(x, 22050, 44100)
    assert y.shape == (44100,)
    assert abs(peak_hz(y, 44100) - 3000) < 2
    t = np.arange(44100) / 44100
    np.testing.assert_allclose(y[1000:-1000], 0.5 * np.sin(2 * np.pi * 3000 * t)[1000:-1000], atol=1e-3)


# ---------------------------------------------------------------- writing


@pytest.mark.parametrize(("subtype", "atol"), [("PCM_16", 2**-15), ("PCM_24", 2**-23), ("FLOAT", 1e-7)])
def test_write_round_trip(tmp_path: Path, subtype: str, atol: float) -> None:
    x = sine(440, 0.5, 44100)[:, 0]
    out = audio.write_audio(tmp_path / "o.wav", x, 44100, subtype=subtype)
    assert out == tmp_path / "o.wav"
    info = sf.info(out)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", subtype, 44100, 1)
    back, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(back, x, atol=atol)
    assert only_files(tmp_path) == ["o.wav"]


def test_write_stereo_from_mono_at_48k_exact_length(tmp_path: Path) -> None:
    x = sine(440, 1.0, 44100)[:, 0]
    out = audio.write_audio(tmp_path / "s.wav", x, 48000, channels=2)
    back, sr = sf.read(out, dtype="float32")
    assert sr == 48000 and back.shape == (48000, 2)
    np.testing.assert_array_equal(back[:, 0], back[:, 1])
    assert abs(peak_hz(back[:, 0], 48000) - 440) < 2
    odd = audio.write_audio(tmp_path / "odd.wav", x[:1234], 48000)
    assert sf.info(odd).frames == round(1234 * 48000 / 44100)


def test_write_downmixes_and_clamps(tmp_path: Path) -> None:
    x = np.array([[0.2, 0.4], [2.0, 2.0], [-3.0, -1.0]], dtype=np.float32)
    back, _ = sf.read(audio.write_audio(tmp_path / "m.wav", x, 44100, subtype="PCM_24"), dtype="float32")
    np.testing.assert_allclose(back, [0.3, 1.0 - 2**-23, -1.0], atol=2**-22)
    raw, _ = sf.read(audio.write_audio(tmp_path / "f.wav", x, 44100, subtype="FLOAT"), dtype="float32")
    np.testing.assert_allclose(raw, [0.3, 2.0, -2.0], atol=1e-7)  # float keeps overs
    with pytest.raises(AudioError, match="Cannot convert 2-channel audio to 3 channels"):
        audio.write_audio(tmp_path / "x.wav", x, 44100, channels=3)


def test_write_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "take.wav"
    target.write_bytes(b"precious")
    with pytest.raises(AudioExistsError, match=r"already exists: .*take\.wav") as info:
        audio.write_audio(target, np.zeros(100), 44100)
    assert isinstance(info.value, FileExistsError) and isinstance(info.value, AudioError)
    assert target.read_bytes() == b"precious"
    assert only_files(tmp_path) == ["take.wav"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_written_file_mode_follows_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    out = audio.write_audio(tmp_path / "o.wav", np.zeros(10), 44100)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask  # not the 0600 of mkstemp


def test_write_race_loses_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another writer creates the target after the early check: the hard link must not clobber it."""
    target = tmp_path / "take.wav"
    real_write = sf.write

    def write_then_race(*args, **kwargs):
        real_write(*args, **kwargs)
        target.write_bytes(b"theirs")

    monkeypatch.setattr(audio.sf, "write", write_then_race)
    with pytest.raises(AudioExistsError):
        audio.write_audio(target, np.zeros(100), 44100)
    assert target.read_bytes() == b"theirs"
    assert only_files(tmp_path) == ["take.wav"]


def test_failed_write_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(file, *args, **kwargs):
        file.write(b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        audio.write_audio(tmp_path / "o.wav", np.zeros(100), 44100)
    assert only_files(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "data", "phrase"),
    [({}, np.array([0.0, np.nan]), "NaN or infinite"),
     ({}, np.array([0.0, np.inf]), "NaN or infinite"),
     ({"subtype": "PCM_8"}, np.zeros(10), "Unsupported subtype 'PCM_8'. Use one of PCM_16"),
     ({"sample_rate": 4000}, np.zeros(10), "Unsupported sample rate 4000 Hz for output"),
     ({"sample_rate": 384001}, np.zeros(10), "Unsupported sample rate 384001 Hz"),
     ({"source_rate": 1000}, np.zeros(10), "Unsupported sample rate 1000 Hz for source audio"),
     ({}, np.zeros(0), "must be non-empty")],
)
def test_bad_write_input(tmp_path: Path, kwargs: dict, data: np.ndarray, phrase: str) -> None:
    args = {"sample_rate": 44100, **kwargs}
    with pytest.raises(AudioError, match=phrase):
        audio.write_audio(tmp_path / "o.wav", data, **args)
    assert only_files(tmp_path) == []


def test_write_into_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"Output folder does not exist: .*nope\. Create it"):
        audio.write_audio(tmp_path / "nope" / "o.wav", np.zeros(10), 44100)
    assert only_files(tmp_path) == []


def test_output_rate_bounds_inclusive(tmp_path: Path) -> None:
    for rate in (8000, 384000):
        out = audio.write_audio(tmp_path / f"{rate}.wav", np.zeros(441), rate)
        assert sf.info(out).samplerate == rate and sf.info(out).frames == round(441 * rate / 44100)


def test_unique_path(tmp_path: Path) -> None:
    assert audio.unique_path(tmp_path, "take", ".wav") == tmp_path / "take.wav"
    (tmp_path / "take.wav").touch()
    (tmp_path / "take-2.wav").touch()
    assert audio.unique_path(tmp_path, "take", "wav") == tmp_path / "take-3.wav"
    with pytest.raises(AudioError, match="Output folder does not exist"):
        audio.unique_path(tmp_path / "missing", "take")


# ---------------------------------------------------------------- bad input when reading


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    path = tmp_path / "tone.wav"
    sf.write(path, sine(440, 2.0, SR), SR)
    return path


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"not found: .*ghost\.wav\. Check the path"):
        audio.read_region(tmp_path / "ghost.wav")
    with pytest.raises(AudioError, match="not found"):
        audio.read_region(tmp_path)  # a folder is not a file


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.wav"
    path.write_text("these are lyrics, not audio\n" * 20)
    with pytest.raises(AudioError, match=r"is not an audio file soundfile can read \(WAV, AIFF, FLAC, OGG, MP3\)"):
        audio.read_region(path)


def test_zero_length_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    empty.touch()
    with pytest.raises(AudioError, match=r"is empty \(0 bytes\)"):
        audio.read_region(empty)
    header_only = tmp_path / "header.wav"
    sf.write(header_only, np.zeros((0, 1), np.float32), SR)
    with pytest.raises(AudioError, match=r"is empty \(0 frames\)"):
        audio.read_region(header_only)


@pytest.mark.parametrize(
    ("start", "length", "phrase"),
    [(-0.1, None, "start must be a finite number of seconds >= 0"),
     (0.0, -1.0, "length must be a finite number of seconds >= 0"),
     (float("nan"), None, "start must be a finite"),
     (0.5, 0.0, "Zero-length region"),
     (0.5, 1e-6, "Zero-length region"),
     (1.5, 1.0, r"Region 1\.500 s to 2\.500 s is past the end of .*tone\.wav \(duration 2\.000 s\)"),
     (2.0, None, r"Region 2\.000 s to end is past the end .*\(duration 2\.000 s\)"),
     (5.0, 0.1, "past the end")],
)
def test_bad_region(tone: Path, start: float, length: float | None, phrase: str) -> None:
    with pytest.raises(AudioError, match=phrase):
        audio.read_region(tone, start=start, length=length)


def test_region_ending_exactly_at_end_is_fine(tone: Path) -> None:
    assert audio.read_region(tone, start=1.5, length=0.5).frames == 24000


@pytest.mark.parametrize("rate", [4000, 400000])
def test_unsupported_input_rate(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "odd.wav"
    sf.write(path, np.zeros((100, 1), np.float32), rate)
    with pytest.raises(AudioError, match=f"Unsupported sample rate {rate} Hz for input file .*between 8000 and 384000"):
        audio.read_region(path)


def test_resample_rejects_bad_rates_and_shapes() -> None:
    with pytest.raises(AudioError, match="Unsupported sample rate 7999 Hz"):
        audio.resample(np.zeros(10), 7999, 44100)
    with pytest.raises(AudioError, match="shape"):
        audio.resample(np.zeros((2, 2, 2)), 44100, 48000)
    with pytest.raises(AudioError, match="Unsupported sample rate 1 Hz"):
        audio.to_model_input(AudioRegion(np.zeros((10, 1), np.float32), 44100, 0, Path("x")), sample_rate=1)
