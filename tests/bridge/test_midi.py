"""bridge/midi.py: pure translation tests, then real JACK MIDI ports on a private dummy JACK server."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import mido
import pytest
import rtmidi

from bridge import midi as midi_module
from bridge.midi import (
    BACKEND_ENV,
    Action,
    ControlBinding,
    Learned,
    MidiAdapter,
    MidiMapping,
    MidiTranslator,
    NoteBinding,
    ParamChange,
    backend_candidates,
    find_port,
    scale,
)

JACK = "mido.backends.rtmidi/UNIX_JACK"


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


def note(n: int, velocity: int = 100, channel: int = 0) -> mido.Message:
    return mido.Message("note_on", note=n, velocity=velocity, channel=channel)


# ---- pure translation -------------------------------------------------------------------------------

def test_default_mapping_knobs_and_notes() -> None:
    t = MidiTranslator(MidiMapping.default())
    assert t.feed(cc(1, 0)) == [ParamChange("temperature", 0.5)]
    assert t.feed(cc(1, 127)) == [ParamChange("temperature", 1.2)]
    assert t.feed(cc(3, 127, channel=9)) == [ParamChange("top_p", 1.0)]  # any channel
    takes = [e.value for v in range(128) for e in t.feed(cc(2, v))]
    assert takes == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]  # integer steps, repeats dropped
    assert t.feed(note(60)) == [Action("continue_last")]
    assert t.feed(note(62)) == [Action("rerender_last")]
    assert t.feed(note(64)) == [Action("cancel_last")]
    assert t.feed(note(60, velocity=0)) == [] and t.feed(note(61)) == [] and t.feed(cc(90, 5)) == []


def test_scale_linear_exp_integer() -> None:
    lin = ControlBinding("p", 1, 0.5, 1.2)
    assert scale(lin, 0.5) == pytest.approx(0.85)
    exp = ControlBinding("temperature", 1, 0.5, 2.0, curve="exp")
    assert [scale(exp, x) for x in (0, 0.5, 1)] == pytest.approx([0.5, 1.0, 2.0])
    down = ControlBinding("p", 1, 8, 1, integer=True)
    assert scale(down, 0.0) == 8 and scale(down, 1.0) == 1


def test_channel_filter() -> None:
    t = MidiTranslator(MidiMapping((ControlBinding("p", 20, channel=2),), (NoteBinding(60, "cancel_last", 3),)))
    assert t.feed(cc(20, 127, channel=0)) == []
    assert t.feed(cc(20, 127, channel=1)) == [ParamChange("p", 1.0)]
    assert t.feed(note(60, channel=1)) == [] and t.feed(note(60, channel=2)) == [Action("cancel_last")]


def test_14bit_msb_then_lsb() -> None:
    t = MidiTranslator(MidiMapping((ControlBinding("v", 7, 0, 16383, bits=14),)))
    assert t.feed(cc(39, 57)) == []  # an LSB before any MSB means nothing
    coarse = t.feed(cc(7, 96))[0].value
    assert coarse == pytest.approx(96 / 127 * 16383)
    assert t.feed(cc(39, 57)) == [ParamChange("v", 12345.0)]
    assert 96 * 128 <= coarse <= 96 * 128 + 127  # the coarse value lies in the span the LSB refines
    assert t.feed(cc(7, 127))[0].value == 16383  # an MSB-only device still reaches the top


def test_learn_rebinds_and_keeps_scaling() -> None:
    t = MidiTranslator(MidiMapping.default())
    t.learn("temperature")
    assert t.feed(cc(21, 127, channel=4)) == [Learned("temperature", 5, 21), ParamChange("temperature", 1.2)]
    assert t.feed(cc(1, 0)) == []  # the old knob is unbound
    assert t.feed(cc(21, 0, channel=4)) == [ParamChange("temperature", 0.5)]
    assert t.feed(cc(21, 0, channel=0)) == []  # learned on its channel only
    t.learn("top_p")  # steal CC 21 on channel 5: one knob, one parameter
    t.feed(cc(21, 64, channel=4))
    assert [c.param for c in t.mapping.controls if c.cc == 21] == ["top_p"]
    assert [c.param for c in t.mapping.controls] == ["takes", "adherence", "top_p"]


def test_learn_detects_14bit_pair() -> None:
    t = MidiTranslator(MidiMapping())
    t.learn("seed_spread")  # unknown names learn a 0..1 range
    assert t.feed(cc(16, 64)) == [Learned("seed_spread", 1, 16), ParamChange("seed_spread", 64 / 127)]
    assert t.feed(cc(48, 0)) == [ParamChange("seed_spread", (64 << 7) / 16383)]
    assert t.mapping.controls == (ControlBinding("seed_spread", 16, channel=1, bits=14),)


def test_toml_round_trip_and_atomic_save(tmp_path: Path) -> None:
    m = MidiMapping((ControlBinding("temperature", 1, 0.5, 1.2, curve="exp", bits=14, channel=2),
                     ControlBinding("takes", 2, 1, 8, integer=True)), (NoteBinding(60, "continue_last", 16),))
    path = tmp_path / "map.toml"
    m.save(path)
    assert MidiMapping.load(path) == m
    assert os.listdir(tmp_path) == ["map.toml"]  # no temporary file left behind


@pytest.mark.parametrize("data, words", [
    ({"control": [{"param": "t", "cc": 1, "knob": 3}]}, "unknown [[control]] field"),
    ({"control": [{"param": "t", "cc": 40, "bits": 14}]}, "0..31"),
    ({"control": [{"param": "t", "cc": 128}]}, "0..127"),
    ({"control": [{"param": "t", "cc": 1, "range": [0, 1], "curve": "exp"}]}, "above 0"),
    ({"note": [{"note": 60, "action": "explode"}]}, "continue_last"),
    ({"note": [{"note": 60, "action": "cancel_last", "channel": 0}]}, "1..16"),
    ({"knobs": []}, "unknown section"),
    ({"control": [{"param": "t", "cc": 1, "range": [1]}]}, "range must be"),
])
def test_bad_mapping_is_refused(data: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        MidiMapping.from_dict(data, "x.toml")


def test_find_port() -> None:
    names = ["FakeKnob:FakeKnob", "Other:out"]
    assert find_port("FakeKnob:FakeKnob", names) == find_port("fakeknob", names) == "FakeKnob:FakeKnob"
    with pytest.raises(OSError, match="available inputs: FakeKnob:FakeKnob, Other:out"):
        find_port("Nope", names)


# ---- real ports through a private JACK dummy server (the jack_server fixture in tests/conftest.py) ----

class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.cond = threading.Condition()

    def add(self, *event: object) -> None:
        with self.cond:
            self.events.append(event)
            self.cond.notify_all()

    def send_until(self, port: mido.ports.BaseOutput, msgs: list[mido.Message], event: tuple) -> None:
        """Send, and resend until `event` is seen: a late client cycle on a loaded machine can drop JACK
        MIDI events. Resending is harmless here, since a repeated value is not reported twice."""
        for _ in range(8):
            for m in msgs:
                port.send(m)
            with self.cond:
                if self.cond.wait_for(lambda: event in self.events, 0.5):
                    return
        raise AssertionError(f"{event} not seen within 4 s; got {self.events}")


@pytest.fixture
def adapter(jack_server):
    rec = Recorder()
    mapping = MidiMapping.default().bind(ControlBinding("fine", 7, 0, 16383, bits=14))
    midi = MidiAdapter(None, lambda n, v: rec.add("param", n, v), lambda a: rec.add("action", a),
                       lambda n, ch, c: rec.add("learned", n, ch, c), mapping, backend=JACK)
    midi.start()
    out = mido.Backend(JACK).open_output("Jukebox Bridge:Jukebox Bridge")  # connects through JACK
    try:
        yield midi, out, rec
    finally:
        out.close()
        midi.stop()


def test_real_port_knob_note_and_14bit(adapter) -> None:
    midi, out, rec = adapter
    rec.send_until(out, [cc(1, 127)], ("param", "temperature", 1.2))
    rec.send_until(out, [note(60)], ("action", "continue_last"))
    rec.send_until(out, [cc(7, 96), cc(39, 57)], ("param", "fine", 12345.0))


def test_real_port_learn_and_save(adapter, tmp_path: Path) -> None:
    midi, out, rec = adapter
    midi.learn("top_p")
    rec.send_until(out, [cc(22, 0, channel=2)], ("learned", "top_p", 3, 22))
    assert ("param", "top_p", 0.5) in rec.events
    rec.send_until(out, [cc(22, 127, channel=2)], ("param", "top_p", 1.0))
    midi.save_mapping(tmp_path / "learned.toml")
    saved = MidiMapping.load(tmp_path / "learned.toml")
    assert ControlBinding("top_p", 22, 0.5, 1.0, channel=3) in saved.controls
    assert all(c.cc != 3 for c in saved.controls)


def test_real_port_opened_by_name(jack_server) -> None:
    backend = mido.Backend(JACK)
    knob = backend.open_output("FakeKnob", client_name="FakeKnob")  # a virtual port, like a controller
    rec = Recorder()
    midi = MidiAdapter("FakeKnob", lambda n, v: rec.add(n, v), print, print, backend=JACK)
    try:
        midi.start()
        rec.send_until(knob, [cc(3, 127)], ("top_p", 1.0))
    finally:
        midi.stop()
        knob.close()
    with pytest.raises(OSError, match="'Nope' not found.*available inputs:"):
        MidiAdapter("Nope", print, print, print, backend=JACK).start()


# ---- backend choice: JACK when a server runs, else the platform's own, without libjack's noise ----

ALSA = "mido.backends.rtmidi/LINUX_ALSA"


def test_backend_candidates_per_platform_and_the_override() -> None:
    assert backend_candidates("linux", {}) == [JACK, ALSA]
    assert backend_candidates("darwin", {}) == ["mido.backends.rtmidi/MACOSX_CORE"]
    assert backend_candidates("win32", {}) == ["mido.backends.rtmidi/WINDOWS_MM"]
    assert backend_candidates("freebsd14", {}) == ["mido.backends.rtmidi"]
    assert backend_candidates("linux", {BACKEND_ENV: "mido.backends.portmidi"}) == ["mido.backends.portmidi"]
    assert MidiAdapter(None, print, print, print, backend=JACK).backends == [JACK]


class FakePort:
    name = "Jukebox Bridge:in"

    def close(self) -> None:
        pass


def test_falls_back_to_the_platforms_own_backend_and_hides_native_noise(monkeypatch, capfd, caplog) -> None:
    """JACK fails (its library printing to fd 2, as libjack does), so ALSA is used; the terminal stays clean."""
    tried = []

    def fake_open(self, backend: str):
        tried.append(backend)
        if backend == JACK:
            os.write(2, b"Cannot connect to server socket err = No such file or directory\n")
            raise rtmidi.SystemError("MidiInJack::initialize: JACK server not running?")  # an OSError
        return FakePort()

    monkeypatch.setattr(MidiAdapter, "_open", fake_open)
    monkeypatch.setattr(midi_module.sys, "platform", "linux")
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    caplog.set_level("DEBUG", logger="bridge.midi")
    adapter = MidiAdapter(None, print, print, print)
    adapter.start()
    assert tried == [JACK, ALSA] and adapter.backend == ALSA
    out, err = capfd.readouterr()
    assert "Cannot connect" not in out + err
    assert "Cannot connect to server socket" in caplog.text  # kept for the debug log
    assert f"listening on Jukebox Bridge:in ({ALSA})" in caplog.text

    monkeypatch.setattr(MidiAdapter, "_open", lambda self, backend: (_ for _ in ()).throw(OSError("no port")))
    with pytest.raises(OSError) as failed:
        MidiAdapter(None, print, print, print).start()
    assert str(failed.value) == (f"cannot open MIDI input via {JACK}: no port (is the JACK server running?); "
                                 f"via {ALSA}: no port")


def test_a_missing_jack_server_is_reported_without_libjacks_raw_messages(monkeypatch, capfd) -> None:
    """The real libjack, asked for a server that does not exist, prints to fd 2; none of it reaches the terminal."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", f"jbtest-absent-{os.getpid()}")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(OSError, match="JACK"):
        MidiAdapter(None, print, print, print, backend=JACK).start()
    out, err = capfd.readouterr()
    assert "server" not in (out + err).lower(), out + err


def test_a_running_jack_server_is_preferred(jack_server, monkeypatch) -> None:
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    monkeypatch.setattr(midi_module.sys, "platform", "linux")
    adapter = MidiAdapter(None, print, print, print)
    try:
        adapter.start()
        assert adapter.backend == JACK
    finally:
        adapter.stop()
