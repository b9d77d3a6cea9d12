"""`jukebox-bridge data build`: the Debian package table, the excerpt rules, ids/splits and the cached build.

Fast and offline: packages are small fake folders in tmp_path (as `dpkg -x` would leave them), never downloads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from engine.train import data, recordings
from engine.train.recordings import (PACKAGES, SAMPLE_RATE, DataBuildError, Package, excerpt, is_reserved,
                                     mark_extracted, select)
from jukebox_bridge.cli import main

SR = SAMPLE_RATE
needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                                  reason="ffmpeg is not installed")

# ------------------------------------------------------------------------------------ the table

EVALUATION_PACKAGES = ["0ad-data", "0ad-data-common", "0ad", "fretsonfire-songs-muldjord",
                       "fretsonfire-songs-sectoid", "singularity-music", "hedgewars-data"]


def test_evaluation_packages_are_denied_everywhere(tmp_path):
    assert all(is_reserved(n) for n in EVALUATION_PACKAGES)
    assert not [p.name for p in PACKAGES if is_reserved(p.name)]
    for name in EVALUATION_PACKAGES:
        with pytest.raises(DataBuildError, match="reserved for evaluation"):
            recordings.resolve([name])
    bad = Package("hedgewars-data", "1", (r"music/.*\.ogg$",), "game pop", ("GPL-2+",))
    with pytest.raises(DataBuildError, match="reserved for evaluation"):
        recordings.check_table([bad])
    # even a table passed in directly is refused before anything is fetched
    with pytest.raises(DataBuildError, match="reserved for evaluation"):
        data.build_recordings(tmp_path / "out", tmp_path / "cache", table=[bad])
    assert not (tmp_path / "cache").exists()
    assert main(["data", "build", "--out", str(tmp_path / "o"), "--sources", "debian", "--packages",
                 "0ad-data"]) == 2


def test_rejected_packages_are_not_in_the_table():
    assert not {p.name for p in PACKAGES} & set(recordings.REJECTED)
    assert {"drascula-music", "fb-music-high"} <= set(recordings.REJECTED)


def test_the_table_has_the_26_reviewed_packages():
    assert len(PACKAGES) == 26 == len({p.name for p in PACKAGES})
    for p in PACKAGES:
        assert p.files or p.archives, p.name
        assert p.version and p.genre and p.licences, p.name
        for rx in p.files + tuple(r for pair in p.archives for r in pair) + ((p.exclude,) if p.exclude else ()):
            re.compile(rx)


FREE = ("GPL", "CC-BY-3.0", "CC-BY-SA-3.0", "CC-BY-SA-4.0", "CC0", "public-domain", "ISC", "MIT")


def test_every_licence_in_the_table_is_free():
    for p in PACKAGES:
        licences = set(p.licences) | ({p.licence} if p.licence else set()) | {lic for _, lic in p.licence_rules}
        if p.licence:
            assert p.licence in p.licences, p.name
        for lic in licences:
            assert not re.search(r"\bNC\b|non-?commercial|\bND\b|no ?deriv", lic, re.IGNORECASE), (p.name, lic)
            assert lic.startswith(FREE), (p.name, lic)


def test_licence_outside_the_reviewed_list_is_skipped():
    pkg = Package("fake-music", "1", (r"m/.*\.ogg$",), "rock", ("GPL-2+",))
    stanzas = recordings.parse_dep5("Files: *\nCopyright: 2020 A\nLicense: GPL-2+\n\n"
                                    "Files: m/nc.ogg\nCopyright: 2020 B\nLicense: CC-BY-NC-4.0\n")
    assert recordings.licence_of(pkg, "m/a.ogg", recordings.dep5_match(stanzas, "m/a.ogg"), {}) == "GPL-2+"
    lic = recordings.licence_of(pkg, "m/nc.ogg", recordings.dep5_match(stanzas, "m/nc.ogg"), {})
    assert lic == "CC-BY-NC-4.0" and lic not in pkg.licences  # convert() skips such a file


def test_label_rules():
    by = recordings.PACKAGE_BY_NAME
    stanza = {"patterns": ["*"], "copyright": "2006-2022 SuperTuxKart-Team", "license": "GPL-3+"}
    stk = by["supertuxkart-data"]
    assert recordings.licence_of(stk, "x/a.ogg", stanza, {}) == recordings.STK_CATCH_ALL
    assert recordings.artist_of(stk, "x/a.ogg", "a", {"artist": "Max Freeman"}, stanza, {}) == "Max Freeman (0zone0ne)"
    assert recordings.artist_of(by["ufoai-music"], "music/crystan-x.ogg", "crystan-x", {}, None, {}) == \
        "Christian Hoffmann (Crystan)"
    assert recordings.artist_of(by["warmux-data"], "m/Olivier_Militon.-.Song.ogg", "n", {}, None, {}) == \
        "Olivier Militon"
    tux = by["tuxmath-data"]
    assert recordings.licence_of(tux, "usr/share/tuxmath/sounds/x.mod", None, {}) == "public-domain"
    assert recordings.genre_of(tux, "usr/share/tuxmath/sounds/x.mod", {}) == "tracker"
    assert recordings.genre_of(tux, "usr/share/tuxmath/sounds/x.ogg", {"genre": "Techno"}) == "electronic"


# ----------------------------------------------------------------------------- excerpt rules


def tone(seconds: float, amp: float = 0.5, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_excerpt_trims_silence_below_minus_50_dbfs():
    quiet = np.full(SR, 10 ** (-60 / 20) * 0.9, np.float32)  # -61 dBFS: trimmed
    y, full, start = excerpt(np.concatenate([np.zeros(SR, np.float32), quiet, tone(20), quiet]))
    assert abs(full - 20) < 0.05 and start == 0.0
    assert abs(len(y) - 20 * SR) <= recordings.TRIM_FRAME
    audible = np.full(SR, 10 ** (-40 / 20), np.float32)  # -40 dBFS: kept
    y, full, _ = excerpt(np.concatenate([audible, tone(20)]))
    assert abs(full - 21) < 0.05
    assert len(excerpt(np.zeros(10 * SR, np.float32))[0]) == 0


def test_excerpt_keeps_the_middle_180_seconds():
    x = np.concatenate([tone(100, freq=110), tone(100, freq=440)])  # 200 s
    y, full, start = excerpt(x)
    assert len(y) == 180 * SR and abs(full - 200) < 0.05 and abs(start - 10) < 0.05
    i = int(round(start * SR))
    np.testing.assert_array_equal(y, x[i:i + 180 * SR])


def test_selection_is_deterministic_and_stays_under_the_cap():
    items = [{"id": f"pkg-t{i}", "seconds": 180.0} for i in range(12)]
    chosen = select(items, 27 * 60)
    assert len(chosen) == 8  # 9 x 180 s would reach the cap exactly: the total stays under it
    assert chosen == select(list(reversed(items)), 27 * 60)
    assert [c["id"] for c in chosen] == sorted(c["id"] for c in chosen)


def test_ids_and_splits_match_the_training_corpus():
    assert recordings.item_id("asc-music", recordings.safe_name("frontiers")) == "asc-music-frontiers"
    assert recordings.safe_name("a b&c.d") == "a_b_c.d"
    # splits as in /work/train_corpus (split_of is the training code's hold-out rule)
    assert data.split_of("asc-music-frontiers") == "heldout"
    assert data.split_of("asc-music-machine_wars") == "train"
    assert data.split_of("xblast-tnt-musics-xbsng1") == data.split_of("xblast-tnt-musics-xbsng1")


def test_antiphase_stereo_keeps_the_left_channel():
    left = tone(2)
    notes: list[str] = []
    mono = recordings.to_mono(np.stack([left, -left], 1), notes)
    np.testing.assert_array_equal(mono, left)
    assert "left channel" in notes[0]
    np.testing.assert_allclose(recordings.to_mono(np.stack([left, left * 0.5], 1)), left * 0.75, atol=1e-6)


@needs_ffmpeg
def test_raw_8_bit_stereo_decodes_at_22050(tmp_path):
    raw = tmp_path / "song.raw"
    x = np.clip(tone(3, 0.4) * 127 + 128, 0, 255).astype(np.uint8)
    raw.write_bytes(np.stack([x, x], 1).tobytes())
    y, notes = recordings.decode(raw, raw_u8_stereo_22050=True)
    assert abs(len(y) - 3 * SR) < 64 and notes == ["ffmpeg+soxr"]
    assert 0.3 < np.abs(y).max() < 0.5


def test_files_ffmpeg_rejects_are_read_with_libsndfile(tmp_path, monkeypatch):
    path = tmp_path / "a.ogg"
    sf.write(path, tone(4), 44100, format="OGG")  # 2 s at 44.1 kHz

    def no_ffmpeg(*cmd, **kw):
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(recordings, "_run", no_ffmpeg)
    y, notes = recordings.decode(path)
    assert "libsndfile" in notes[0] and abs(len(y) - 2 * SR) < 64


# ---------------------------------------------------------------------- tools and sources


def test_missing_tools_are_named_with_the_apt_command(tmp_path, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda t: None if t in ("ffmpeg", "ffprobe", "openmpt123") else real(t))
    with pytest.raises(DataBuildError) as e:
        data.build(tmp_path / "out", sources=["debian"], cache=tmp_path / "cache", log=lambda s: None)
    msg = str(e.value)
    assert "ffmpeg" in msg and "openmpt123" in msg and "sudo apt-get install ffmpeg openmpt123" in msg
    assert not (tmp_path / "cache" / "debs").exists()  # nothing downloaded


def test_scores_are_optional(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "scores_missing", lambda: ["music21 (pip install 'jukebox-bridge[data]')"])
    notes: list[str] = []
    assert data.default_sources(notes.append) == ("debian",)
    assert "note:" in notes[0] and "music21" in notes[0]
    with pytest.raises(DataBuildError, match="music21"):
        data.build(tmp_path, sources=["scores"])
    monkeypatch.setattr(data, "scores_missing", lambda: [])
    assert data.default_sources(notes.append) == ("debian", "scores")


def test_cli_passes_the_build_options(tmp_path, monkeypatch):
    seen = {}
    monkeypatch.setattr(data, "build", lambda out, **kw: seen.update(out=out, **kw))
    assert main(["data", "build", "--out", str(tmp_path), "--sources", "debian", "--packages",
                 "asc-music,xmoto-data", "--cache", str(tmp_path / "c"), "--cap-minutes", "10"]) == 0
    assert seen == {"out": tmp_path, "sources": ["debian"], "cache": tmp_path / "c",
                    "packages": ["asc-music", "xmoto-data"], "cap_seconds": 600.0}


# ------------------------------------------------------------------------ a whole fake package

FAKE = Package("fake-music", "1.0-1", (r"usr/share/games/fake/music/.*\.(ogg|flac)$",), "rock",
               ("GPL-2+", "CC-BY-SA-3.0"), default_artist="Fake Band", exclude=r"skipme")


def fake_package(cache: Path) -> Path:
    """What `dpkg -x` of a small game-music package leaves in the cache."""
    root = cache / "extract" / FAKE.name
    music = root / "usr/share/games/fake/music"
    music.mkdir(parents=True)
    sf.write(music / "long theme.flac", np.stack([tone(200, freq=330)] * 2, 1), SR)
    with sf.SoundFile(music / "battle.ogg", "w", SR, 1, format="OGG") as f:
        f.artist = "Some One"  # a Vorbis comment: the tag wins over the package's default artist
        f.write(np.concatenate([np.zeros(SR), tone(20, freq=440)]))
    sf.write(music / "jingle.ogg", tone(8), SR, format="OGG")  # < 15 s: skipped
    shutil.copyfile(music / "battle.ogg", music / "zz_copy.ogg")  # byte-identical: skipped
    sf.write(music / "skipme.ogg", tone(20), SR, format="OGG")  # excluded by the table
    doc = root / "usr/share/doc/fake-music"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: *\nCopyright: 2020 Fake Band\nLicense: GPL-2+\n\n"
        "Files: usr/share/games/fake/music/battle.ogg\nCopyright: 2021 Some One\nLicense: CC-BY-SA-3.0\n")
    mark_extracted(root, FAKE.version)
    return root


@needs_ffmpeg
def test_build_from_a_package_then_resume_without_decoding(tmp_path, monkeypatch):
    cache, out = tmp_path / "cache", tmp_path / "out"
    fake_package(cache)
    items = data.build_recordings(out, cache, table=[FAKE], log=lambda s: None)
    assert [it.id for it in items] == ["fake-music-battle", "fake-music-long_theme"]
    battle, theme = items
    assert (battle.licence, battle.artist, battle.genre) == ("CC-BY-SA-3.0", "some one", "rock")
    assert (theme.licence, theme.artist) == ("GPL-2+", "fake band")
    assert battle.source == "Debian fake-music 1.0-1: usr/share/games/fake/music/battle.ogg"
    assert theme.seconds == 180.0 and abs(battle.seconds - 20) < 0.1
    assert all(it.split == data.split_of(it.id) for it in items)
    for it in items:
        info = sf.info(out / "audio" / f"{it.id}.flac")
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
    prov = {d["id"]: d for d in json.loads((out / "provenance.json").read_text())}
    assert set(prov) == {it.id for it in items}
    assert all(len(d["source_sha256"]) == len(d["flac_sha256"]) == 64 for d in prov.values())
    rec = recordings.load_record(cache, FAKE.name)
    reasons = {Path(s["source"]).name: s["reason"] for s in rec["skipped"]}
    assert set(reasons) == {"jingle.ogg", "zz_copy.ogg"}
    assert "shorter than 15 s" in reasons["jingle.ogg"] and "byte-identical" in reasons["zz_copy.ogg"]
    assert (out / "copyrights" / "fake-music.copyright").exists()
    assert not (cache / "extract" / FAKE.name).exists()  # unpacked tree removed once converted

    # a rerun decodes nothing (and needs neither the .deb nor the unpacked tree) and gives the same corpus
    monkeypatch.setattr(recordings, "decode", lambda *a, **k: pytest.fail("decoded again"))
    before = {p.name: p.read_bytes() for p in (out / "audio").iterdir()}
    assert data.build_recordings(out, cache, table=[FAKE], log=lambda s: None) == items
    assert {p.name: p.read_bytes() for p in (out / "audio").iterdir()} == before


@needs_ffmpeg
def test_an_interrupted_package_resumes_from_its_finished_files(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    fake_package(cache)
    first = recordings.convert(FAKE, cache, {}, log=lambda s: None, keep_extracted=True)
    # as if interrupted after the first file: the record is incomplete and lists one item
    rec = dict(first, complete=False, items=first["items"][:1])
    (recordings.record_path(cache, FAKE.name)).write_text(json.dumps(rec))
    decoded = []
    real_decode = recordings.decode
    monkeypatch.setattr(recordings, "decode", lambda path, **k: decoded.append(path.name) or real_decode(path, **k))
    again = recordings.convert(FAKE, cache, {}, log=lambda s: None, keep_extracted=True)
    assert again["items"] == first["items"]
    assert first["items"][0]["source"].endswith("battle.ogg")
    assert "battle.ogg" not in decoded and "long theme.flac" in decoded
