"""Sampling modes on tiny random-weight models: shapes, primes kept, seeds, re-rendition, resume."""

import zlib

import numpy as np
import pytest
import torch

from engine.dev.demo import example_path
from engine.generate.codec import encode_audio
from engine.generate import render as render_module
from engine.generate.render import render
from engine.generate.sampling import (
    LevelJob,
    PromptPhrases,
    SamplingParams,
    adhere,
    draw,
    filter_logits,
    join_lanes,
    lane_count,
    level_lanes,
    plan_lanes,
    plan_windows,
    sample_level,
    sample_window,
    tokens_to_sample,
)
from engine.generate.source import prompt_length
from engine.io import audio
from engine.io.codes import CodesLog
from engine.request import RenderRequest, RequestError
from engine.runtime.progress import Cancelled, CancelToken
from engine.weights.debug import debug_models

from .render_checks import assert_take_is_its_decoded_codes


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on a shared 2-core machine run faster on one thread
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def models():
    return debug_models(seed=0)


def _req(mode, **fields):
    base = {"seconds": 0.3, "seed": 11, "sample_rate": 44100, "channels": 1}
    if mode != "generate":
        base.update(source=str(example_path()), start=1.0, length=0.5)
    return RenderRequest.from_fields(mode, {**base, **fields})


def _render(models, req, workdir=None, progress=lambda p: None, cancel=None, schedule="parallel"):
    return render(models, req, progress, cancel or CancelToken(), workdir, sampling=SamplingParams(schedule=schedule))


def test_filter_logits_top_k_and_top_p():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isinf(filter_logits(logits, top_k=2)).tolist() == [[False, False, True, True]]
    # top_p keeps the smallest prefix whose mass reaches p, including the token that crosses it
    assert torch.isinf(filter_logits(logits, top_p=0.7)).tolist() == [[False, False, True, True]]
    assert torch.isinf(filter_logits(logits, top_p=0.4)).tolist() == [[False, True, True, True]]
    assert torch.equal(filter_logits(logits), logits)


def test_each_row_draws_from_its_own_generator():
    logits = torch.randn(3, 50)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    params = SamplingParams(temperature=1.5)
    batch = draw(logits, params, gens([1, 2, 3]))
    alone = draw(logits[1:2], params, gens([2]))
    assert batch[1] == alone[0]


def test_windows_follow_the_reference_hops():
    windows = plan_windows(2, total=100, n_ctx=64, hop_fraction=0.125)
    assert [w.start for w in windows] == [0, 8, 16, 24, 32, 36]
    assert all(w.end - w.start == 64 for w in windows)
    assert plan_windows(0, total=40, n_ctx=64, hop_fraction=0.5)[0].end == 40


def test_ancestral_and_primed_level_sampling(models):
    top = models.top
    y = torch.zeros(2, top.cfg.y_len, dtype=torch.long)
    y[:, 0], y[:, 2], y[:, 4:] = 44100 * 5, top.cfg.n_ctx * 128, -1
    job = LevelJob(top, total=150, labels=lambda start: y)
    params = SamplingParams()
    with torch.inference_mode():
        fresh = sample_level(job, torch.zeros(2, 0, dtype=torch.long), params, [1, 2])
        prime = fresh[:, :40]
        counted = []
        continued = sample_level(job, prime, params, [3, 4], on_token=lambda: counted.append(1))
    assert fresh.shape == continued.shape == (2, 150)
    assert fresh.dtype == torch.long and 0 <= int(fresh.min()) and int(fresh.max()) < top.cfg.bins
    assert torch.equal(continued[:, :40], prime)  # the prime is kept, the continuation starts right after it
    assert len(counted) == tokens_to_sample(top, 40, 150, params.hop_fractions[2])


def test_prompt_phrases_follow_the_longest_context_the_prompt_holds():
    phrases = PromptPhrases(torch.tensor([[1, 2, 3, 1, 2, 4, 5]]), bins=8)
    dist, has = phrases.follow([[9, 1, 2]])  # "1 2" was followed by 3 and by 4
    assert has.item() == 1 and dist[0].tolist() == [0, 0, 0, 0.5, 0.5, 0, 0, 0]
    dist, has = phrases.follow([[3, 1]])  # "3 1" by 2 only
    assert dist[0].tolist() == [0, 0, 1, 0, 0, 0, 0, 0]
    dist, has = phrases.follow([[9, 4]])  # "9 4" never occurs: back off to "4", followed by 5
    assert has.item() == 1 and dist[0, 5] == 1
    for recent in ([5], [], [7, 6]):  # nothing follows the prompt's last code, or an unknown one: the prior alone
        dist, has = phrases.follow([recent])
        assert has.item() == 0 and dist.sum() == 0
    logits = torch.randn(2, 8)
    mixed = adhere(logits, phrases.follow([[9, 1, 2], [7]]), 0.7)
    assert torch.allclose(mixed[1], torch.log_softmax(logits[1], -1), atol=1e-6)  # no phrase: untouched
    expected = 0.3 * torch.softmax(logits[0], -1) + 0.7 * torch.tensor([0, 0, 0, 0.5, 0.5, 0, 0, 0])
    assert torch.allclose(mixed[0].exp(), expected, atol=1e-6)


@pytest.mark.parametrize("adherence", [0.0, 1.0])
def test_adherence_continues_the_prompts_phrases_per_row(models, adherence):
    """At adherence 1 every new code follows its predecessor as somewhere in the prompt (a prompt in which every code
    has a successor); the random prior alone almost never does. Rows stay independent: a take alone is the same."""
    top = models.top
    y = torch.zeros(2, top.cfg.y_len, dtype=torch.long)
    y[:, 0], y[:, 2], y[:, 4:] = 44100 * 5, top.cfg.n_ctx * 128, -1
    motif = torch.randint(0, top.cfg.bins, (2, 10), generator=torch.Generator().manual_seed(3))
    prime = motif.repeat(1, 6)  # 60 codes, each followed by the next code of its motif
    job = LevelJob(top, total=150, labels=lambda start: y, prime=60)
    params = SamplingParams(adherence=adherence)
    with torch.inference_mode():
        both = sample_level(job, prime, params, [3, 4])
        alone = sample_level(LevelJob(top, 150, lambda start: y[:1], prime=60), prime[1:], params, [4])
    assert torch.equal(both[:, :60], prime) and torch.equal(both[1:], alone)
    for row, codes in zip(prime.tolist(), both.tolist()):
        pairs = set(zip(row, row[1:]))
        followed = np.mean([pair in pairs for pair in zip(codes[59:], codes[60:])])
        assert followed == 1.0 if adherence == 1.0 else followed < 0.2


# ------------------------------------------------------------------ upsampling schedules: reference and parallel

def _upsampler_job(models, n=2, total=320):
    """Level 1 of the debug models over ``total`` tokens, upper codes drawn from a fixed generator."""
    prior = models.priors[1]
    y = torch.zeros(n, prior.cfg.y_len, dtype=torch.long)
    y[:, 0], y[:, 2], y[:, 4:] = 44100, prior.cfg.n_ctx * prior.cfg.raw_to_tokens, -1
    upper = torch.randint(0, prior.cfg.bins, (n, total // 4), generator=torch.Generator().manual_seed(5))
    return LevelJob(prior, total, lambda start: y, upper)


def _none(n=2):
    return torch.zeros(n, 0, dtype=torch.long)


def test_reference_schedule_is_the_one_sampled_before_the_parallel_schedule(models):
    job, params = _upsampler_job(models), SamplingParams(schedule="reference")
    assert level_lanes(job.prior, 0, job.total, params, 2) == []
    with torch.inference_mode():
        fresh = sample_level(job, _none(), params, [3, 4])
        primed = sample_level(job, fresh[:, :50], params, [3, 4])
        manual = _none()  # window after window, each primed on the codes so far (the reference's loop)
        for w in plan_windows(1, job.total, 64, 0.5):
            have = manual.shape[1]
            out = sample_window(job.prior, job.labels(w.start), manual[:, w.start:have], w.length, params, [3, 4], w,
                                job.upper[:, w.start // 4: -(-w.end // 4)])
            manual = torch.cat([manual, out[:, have - w.start:]], dim=1)
    assert torch.equal(fresh, manual)
    # the codes this engine drew for this job before the parallel schedule existed (same debug weights and seeds)
    assert fresh[:, :8].tolist() == [[20, 35, 34, 0, 3, 2, 43, 31], [3, 52, 27, 36, 37, 24, 0, 42]]
    assert zlib.crc32(fresh.numpy().astype(np.int64).tobytes()) == 121244839
    assert zlib.crc32(primed.numpy().astype(np.int64).tobytes()) == 2008015183


def test_parallel_schedule_samples_lanes_in_range_and_per_seed(models):
    job, params = _upsampler_job(models), SamplingParams()
    assert params.schedule == "parallel" and len(level_lanes(job.prior, 0, job.total, params, 2)) == 10  # half a context (32 tokens) and more per lane
    counted = []
    with torch.inference_mode():
        a = sample_level(job, _none(), params, [3, 4], on_token=lambda: counted.append(1))
        b = sample_level(job, _none(), params, [3, 4])
        c = sample_level(job, _none(), params, [5, 4])
        primed = sample_level(job, a[:, :50], params, [3, 4])
        reference = sample_level(job, _none(), SamplingParams(schedule="reference"), [3, 4])
    assert a.shape == primed.shape == (2, job.total) and a.dtype == torch.long
    assert 0 <= int(a.min()) and int(a.max()) < job.prior.cfg.bins
    assert torch.equal(a, b) and torch.equal(a[1], c[1]) and (a[0] != c[0]).float().mean() > 0.5
    assert torch.equal(primed[:, :50], a[:, :50]) and not torch.equal(primed, a)
    assert (a != reference).float().mean() > 0.5
    assert len(counted) == tokens_to_sample(job.prior, 0, job.total, 0.5, params, 2) == 40  # one lane's length
    with pytest.raises(ValueError):
        SamplingParams(schedule="fast")


def test_lane_count_comes_from_the_length_the_takes_and_the_device():
    assert lane_count(60, 64, takes=1, device="cpu") == 1  # a short region: one lane (the reference schedule)
    assert lane_count(32 * 10 + 31, 64, 1, "cpu") == 10  # each lane holds at least half a context
    assert lane_count(64 * 100, 64, 1, "cpu") == 32  # at most 32 rows (takes x lanes) per batch on a CPU
    assert lane_count(64 * 100, 64, 4, "cpu") == 8
    assert lane_count(64 * 100, 64, 64, "cpu") == 1  # the takes alone fill the batch
    assert lane_count(64 * 100, 64, 4, "cuda") > 8
    assert lane_count(64 * 100, 64, 1, "cpu", limit=3) == 3  # SamplingParams.lanes


@pytest.mark.parametrize("have,total,count", [(0, 320, 5), (50, 320, 4), (0, 2048, 16), (96, 1000, 7)])
def test_lanes_cover_the_level_overlapping_and_aligned_with_the_upper_codes(have, total, count):
    lanes = plan_lanes(0, have, total, 64, count, overlap=4, align=4)
    assert len(lanes) == count and [lane.index for lane in lanes] == list(range(count))
    assert lanes[-1].end == total and all(lane.length == lanes[0].length >= 64 for lane in lanes)
    assert all(lane.start % 4 == 0 for lane in lanes)  # windows line up with the level above's codes
    first = lanes[0]
    assert first.start + first.known == have and first.known <= 32 + 3  # lane 0 primes on up to n_ctx / 2 known codes
    assert all(lane.known == 0 for lane in lanes[1:]) and lanes[1].start >= have
    assert all(4 <= a.end - b.start < a.length // 2 for a, b in zip(lanes, lanes[1:]))
    assert plan_lanes(0, 0, total, 64, 1, 4, 4) == [] and plan_lanes(0, 0, 322, 64, 4, 4, 4) == []


def test_lanes_are_joined_in_the_middle_of_their_overlaps():
    lanes = plan_lanes(0, 40, 320, 64, 4, overlap=4, align=4)
    lane_codes = torch.arange(4).view(1, 4, 1).expand(2, 4, lanes[0].length)
    known = torch.full((2, 40), 9)
    joined = join_lanes(known, lane_codes, lanes)
    cuts = [(b.start + a.end) // 2 for a, b in zip(lanes, lanes[1:])]
    assert joined.shape == (2, 320) and bool((joined[:, :40] == 9).all())
    for i, (lo, hi) in enumerate(zip([40, *cuts], [*cuts, 320])):
        assert bool((joined[:, lo:hi] == i).all())


def test_each_lane_sees_the_upper_codes_and_labels_of_its_own_span(models, monkeypatch):
    job, params = _upsampler_job(models), SamplingParams(lanes=5)  # lanes of two windows each
    starts, uppers = [], []
    conditioning = type(job.prior).conditioning

    def record(prior, y, upper_codes=None, dtype=None):
        uppers.append(upper_codes.clone())
        return conditioning(prior, y, upper_codes, dtype)

    monkeypatch.setattr(type(job.prior), "conditioning", record)
    labels = job.labels
    job.labels = lambda start: (starts.append(start), labels(start))[1]
    lanes = level_lanes(job.prior, 0, job.total, params, 2)
    windows = plan_windows(1, lanes[0].length, 64, 0.5)
    with torch.inference_mode():
        sample_level(job, _none(), params, [3, 4])
    assert len(uppers) == len(windows) > 1  # one batch per window, all lanes of all takes together
    for w, upper in zip(windows, uppers):
        assert upper.shape[0] == 2 * len(lanes)
        for take in range(2):
            for i, lane in enumerate(lanes):
                lo, hi = lane.start + w.start, lane.start + w.end
                assert torch.equal(upper[take * len(lanes) + i], job.upper[take, lo // 4: -(-hi // 4)])
    assert starts == [lane.start + w.start for w in windows for lane in lanes]


@pytest.mark.parametrize("mode", ["generate", "continue", "prime", "rerender"])
def test_parallel_schedule_renders_every_mode_as_long_as_the_reference(models, mode):
    req = _req(mode, quality="full", takes=2)
    parallel, again, reference = _render(models, req), _render(models, req), _render(models, req, schedule="reference")
    for p, a, r in zip(parallel, again, reference):
        for level in range(3):
            assert p.codes[level].shape == r.codes[level].shape
            assert 0 <= p.codes[level].min() and p.codes[level].max() < 64
            assert np.array_equal(p.codes[level], a.codes[level])  # deterministic per seed
        assert np.array_equal(p.audio, a.audio) and p.audio.shape == r.audio.shape
        assert (p.codes[0] != r.codes[0]).mean() > 0.5  # level 0 was sampled in lanes
        if mode != "rerender":
            assert np.array_equal(p.codes[2], r.codes[2])  # the top level is sequential under both schedules


@pytest.mark.parametrize("mode", ["generate", "continue", "prime", "rerender"])
@pytest.mark.parametrize("quality", ["draft", "full"])
def test_every_mode_renders_the_requested_length_rate_and_channels(models, mode, quality):
    req = _req(mode, quality=quality, takes=2, sample_rate=48000, channels=2, position=4.0)
    takes = _render(models, req)
    expected_seconds = 0.5 if mode == "rerender" else 0.3
    assert [t.take for t in takes] == [1, 2] and [t.seed for t in takes] == [11, 12]
    for t in takes:
        assert t.audio.shape == (round(expected_seconds * 48000), 2) and t.audio.dtype == np.float32
        assert np.abs(t.audio).max() <= 1.0
        assert t.position == pytest.approx(4.5 if mode in ("continue", "prime") else 4.0)
        assert_take_is_its_decoded_codes(models, t, req)  # content and fades, not just the shape


def test_bars_at_a_tempo_set_the_length(models):
    takes = _render(models, _req("generate", quality="draft", tempo=240.0, bars=0.5))  # half a bar at 240 BPM
    assert takes[0].audio.shape[0] == round(0.5 * 44100)


def test_continuation_keeps_the_encoded_prompt(models):
    takes = _render(models, _req("continue", quality="full"))
    x = audio.to_model_input(audio.read_region(example_path(), 1.0, 0.5))
    prime = x[len(x) - prompt_length(models, len(x)):]
    assert 0 < len(prime) <= len(x) and len(prime) % 128 == 0
    expected = encode_audio(models.vqvae, prime)
    for level in range(3):
        n = expected[level].shape[1]
        assert np.array_equal(takes[0].codes[level][:n], expected[level][0])
        assert len(takes[0].codes[level]) == n + round(0.3 * 44100 / 128 + 0.4999) * 128 // models.vqvae.hop_lengths[level]


def test_rerender_keeps_the_codes_above_and_resamples_below(models):
    x = audio.to_model_input(audio.read_region(example_path(), 1.0, 0.5))
    encoded = encode_audio(models.vqvae, x)
    takes = _render(models, _req("rerender", quality="full", level=1, artist="the beatles"))
    assert np.array_equal(takes[0].codes[2], encoded[2][0])
    assert not np.array_equal(takes[0].codes[1], encoded[1][0])
    assert takes[0].codes[1].shape == encoded[1][0].shape


def test_seed_reproduces_a_take_alone_or_in_a_batch(models):
    batch = _render(models, _req("generate", quality="draft", takes=3, seed=100))
    alone = _render(models, _req("generate", quality="draft", takes=1, seed=101))
    other = _render(models, _req("generate", quality="draft", takes=1, seed=7))
    assert np.array_equal(batch[1].codes[2], alone[0].codes[2])
    np.testing.assert_allclose(batch[1].audio, alone[0].audio, atol=1e-5)  # batched convs round differently
    assert (batch[0].codes[2] != other[0].codes[2]).mean() > 0.5


@pytest.mark.slow
def test_resume_after_interruption_equals_an_uninterrupted_run(models, tmp_path):
    """Reference schedule: a level is saved after every window; stopped after level 1's first one, then resumed."""
    req = _req("generate", quality="full", seconds=0.4)
    reference = _render(models, req, tmp_path / "straight", schedule="reference")
    cancel = CancelToken()

    def stop_in_the_middle(p):  # once the first level-1 window is saved
        if p.level == 1 and (tmp_path / "interrupted" / "codes_level1.jbcl").exists():
            cancel.cancel()

    with pytest.raises(Cancelled):
        _render(models, req, tmp_path / "interrupted", stop_in_the_middle, cancel, schedule="reference")
    saved = sorted(f.name for f in (tmp_path / "interrupted").iterdir())
    assert "codes_level2.jbcl" in saved and "codes_level1.jbcl" in saved and "codes_level0.jbcl" not in saved
    partial = CodesLog(tmp_path / "interrupted" / "codes_level1.jbcl").load()
    assert 0 < partial.shape[1] < len(reference[0].codes[1])
    resumed = _render(models, req, tmp_path / "interrupted", schedule="reference")
    for a, b in zip(reference, resumed):
        assert np.array_equal(a.audio, b.audio)


def test_work_codes_are_appended_per_window_never_rewritten(models, tmp_path):
    """Each window writes only its new columns: the work log holds every column once (one 16-byte header per
    window), so saving a long job costs what it samples, not the square of its length."""
    req = _req("generate", quality="draft", seconds=2.0, takes=2)
    takes = _render(models, req, tmp_path, schedule="reference")
    log = tmp_path / "codes_level2.jbcl"
    raw = log.read_bytes()
    columns = takes[0].codes[2].shape[0]
    records = raw.count(CodesLog.MAGIC)
    assert records >= 3, "a 2-s draft spans several top-level windows of the debug model"
    assert len(raw) == 16 * records + 4 * 2 * columns
    assert np.array_equal(CodesLog(log).load(), np.stack([t.codes[2] for t in takes]))


@pytest.mark.slow
@pytest.mark.parametrize("stop_level", [1, 0])
def test_parallel_resume_after_interruption_equals_an_uninterrupted_run(models, tmp_path, monkeypatch, stop_level):
    """Parallel schedule: a level in lanes is saved when all its lanes finish; stopped inside level 1's lanes
    (nothing of it saved) or inside level 0's (level 1 saved whole), the resumed job equals an uninterrupted one."""
    req = _req("continue", quality="full", seconds=0.4, takes=2)
    straight = _render(models, req, tmp_path / "straight")
    cancel, work = CancelToken(), tmp_path / "interrupted"
    monkeypatch.setattr(render_module, "PROGRESS_INTERVAL", 0.0)  # report (and honour cancel) at every step

    def stop(p):  # at the first step of stop_level's lanes
        if p.level == stop_level:
            cancel.cancel()

    with pytest.raises(Cancelled):
        _render(models, req, work, stop, cancel)
    saved = {f.name for f in work.iterdir()}
    assert "codes_level0.jbcl" not in saved and ("codes_level1.jbcl" in saved) == (stop_level == 0)
    if stop_level == 0:
        assert CodesLog(work / "codes_level1.jbcl").load().shape == (2, len(straight[0].codes[1]))
    resumed = _render(models, req, work)
    for a, b in zip(straight, resumed):
        assert all(np.array_equal(a.codes[lv], b.codes[lv]) for lv in range(3))
        assert np.array_equal(a.audio, b.audio)


def test_bad_requests_raise_protocol_errors(models, tmp_path):
    with pytest.raises(RequestError) as err:
        _render(models, _req("continue", source=str(tmp_path / "gone.wav")))
    assert err.value.code == "source_not_found"
    (tmp_path / "text.wav").write_text("not audio")
    with pytest.raises(RequestError) as err:
        _render(models, _req("continue", source=str(tmp_path / "text.wav")))
    assert err.value.code == "not_audio"
    with pytest.raises(RequestError) as err:
        _render(models, _req("generate", artist="Beatels"))
    assert err.value.code == "unknown_label" and "the_beatles" in str(err.value)


def test_lengths_beyond_the_cap_and_oversized_genre_bags_are_bad_values(models):
    for fields in ({"seconds": 301}, {"bars": 64, "tempo": 40}):
        with pytest.raises(RequestError) as err:
            RenderRequest.from_fields("generate", fields)
        assert err.value.code == "bad_value" and "300" in str(err.value)
    with pytest.raises(RequestError) as err:  # the v2 genre bag holds 5 words
        _render(models, _req("generate", quality="draft", genre="rock pop soul jazz blues folk"))
    assert err.value.code == "bad_value" and err.value.field == "genre"
