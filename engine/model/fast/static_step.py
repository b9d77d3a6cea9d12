"""The compiled fixed-shape sampling step: one ``torch.compile`` graph per prior for single-token decoding.

A speed path, not the paper: logits agree with ``Prior.step`` to float rounding (tested).
"""

from __future__ import annotations

import queue
import threading
import time
import types
import weakref
from typing import Callable

import torch
from torch import Tensor

from engine.model.prior import AutoregressiveLM, DecodeCache, Prior


def _compile_options() -> dict:
    """Inductor settings of the compiled step (each measured on the tiny prior, see benchmarks/README.md).

    - ``cpp_wrapper``: the generated code calls its ~30 kernels from C++, not Python;
    - ``size_asserts`` off: no per-call shape checks of every buffer;
    - guards on tensors only: skips ~900 guards on the module tree each call. Each prior gets its own
      compiled function (``_compiled``), so no other model's graph can be picked; a new batch size,
      dtype or weight shape still fails a tensor guard and compiles a new graph. The one assumption: a
      prior's non-tensor structure (attention patterns, geometry, which submodules exist) does not change
      after its first compiled step. Weights may be reloaded in place or cast (``cast_projections``).
    """
    return {"cpp_wrapper": True, "size_asserts": False,
            "guard_filter_fn": torch.compiler.keep_tensor_guards_unsafe}


_COMPILED: "weakref.WeakKeyDictionary[Prior, dict[str, Callable]]" = weakref.WeakKeyDictionary()

STEPS_PER_CALL = 8  # tokens per compiled call where the call's fixed cost outweighs a step's arithmetic ...
UNROLL_MAX_WEIGHTS = 20_000_000  # ... i.e. on the CPU, for priors up to this size (the embedded model's, tiny ones)


def steps_per_call(prior: Prior) -> int:
    """How many tokens one compiled call draws (``StaticDecoder.draw_steps``). A small prior's step is ~0.2 ms of
    arithmetic under ~0.3 ms of Python, Dynamo and wrapper cost per call; unrolling 8 steps into one graph pays
    that once per 8 tokens. Large priors are bound by their weights (and would compile 8x longer), and CUDA graphs
    already make a call one launch, so they keep one step per call."""
    device = next(prior.parameters()).device.type
    small = sum(p.numel() for p in prior.parameters()) <= UNROLL_MAX_WEIGHTS
    return STEPS_PER_CALL if device == "cpu" and small else 1


def _compiled(prior: Prior, fn: Callable) -> Callable:
    """``fn`` (``_static_step`` or ``_static_steps``) compiled for this prior: a fresh code object gives it its own
    Dynamo cache, so no other model's graph can be picked."""
    per_prior = _COMPILED.setdefault(prior, {})
    compiled = per_prior.get(fn.__name__)
    if compiled is None:
        code = fn.__code__.replace(co_name=f"{fn.__name__}_{id(prior):x}")
        fresh = types.FunctionType(code, fn.__globals__, code.co_name)
        if next(prior.parameters()).device.type == "cuda":  # CUDA graphs: one launch per step, not ~10 per layer
            compiled = torch.compile(fresh, fullgraph=True, dynamic=False, mode="reduce-overhead")
        else:
            compiled = torch.compile(fresh, fullgraph=True, dynamic=False, options=_compile_options())
        per_prior[fn.__name__] = compiled
    return compiled


class StaticDecoder:
    """Single-token steps with fixed shapes, for a sampling loop after ``Prior.prefill``.

    The per-layer caches move into fixed-shape buffers (``attention.static_keys``) and the position is a
    tensor, so no shape changes from step to step and the whole step is one ``torch.compile`` graph
    (``compile=True``; compiled on the first call, once per prior, batch size and precision, then reused by
    every window). Uncompiled it is slower than ``Prior.step`` (more, smaller ops). Inputs are not
    validated: feed tokens drawn from this prior's logits. Logits agree with ``Prior.step`` to float rounding.
    """

    def __init__(self, prior: Prior, cache: DecodeCache, compile: bool = False):
        self.prior, self.t, self.dtype = prior, cache.t, cache.dtype
        self.n_ctx = prior.lm.n_ctx
        self.x_cond = cache.cond.x_cond
        if self.x_cond is not None and self.x_cond.shape[1] < self.n_ctx:  # a window shorter than the context (a
            # lane, a short render): padded to the context, so every window of this many rows runs one graph
            self.x_cond = torch.nn.functional.pad(self.x_cond, (0, 0, 0, self.n_ctx - self.x_cond.shape[1]))
        with torch.no_grad():
            self.bufs = prior.lm.transformer.static_buffers(cache.layers)
        self._fn = _compiled(prior, _static_step) if compile else _static_step
        self._steps = _compiled(prior, _static_steps) if compile else _static_steps
        self.steps_per_call = steps_per_call(prior)

    def __call__(self, token: Tensor) -> Tensor:
        """token (N, 1) entering position t -> fp32 logits (N, model_bins) scoring position t."""
        return self.step_and_draw(token)[0]

    def step_and_draw(self, token: Tensor, u: Tensor | None = None,
                      temperature: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``__call__``, and in the same graph the next token drawn from those logits as ``sampling.draw`` does
        without top-k/top-p (softmax(logits / temperature), inverse CDF at each row's uniform ``u`` (N,) float64,
        music tokens only): one compiled call per token instead of a step and ~8 eager ops. -> (logits, (N, 1))."""
        if self.t >= self.n_ctx:
            raise ValueError(f"position {self.t} exceeds the context of {self.n_ctx}")
        device = token.device
        t = torch.tensor(self.t, device=device)
        if u is None:
            u = torch.zeros(token.shape[0], dtype=torch.float64, device=device)
        if temperature is None:
            temperature = torch.ones((), device=device)
        with torch.no_grad():  # the compiled graph is inference-only (a no-op under inference_mode)
            logits, drawn = self._fn(self.prior.lm, token, t, self.bufs, self.x_cond, self.dtype, u, temperature,
                                     self.prior.cfg.music_shift)
        self.t += 1
        return logits, drawn.clone()  # CUDA graphs reuse their output buffers on the next call

    def draw_steps(self, token: Tensor, u: Tensor, temperature: Tensor) -> Tensor:
        """``step_and_draw`` K = ``u.shape[0]`` times in one graph, each drawn token fed to the next step:
        token (N, 1) entering position t, uniforms u (K, N) -> the tokens drawn for positions t+1 .. t+K (N, K).
        The same arithmetic and draws as K single calls; only for stretches where no token is forced."""
        if self.t + u.shape[0] > self.n_ctx:
            raise ValueError(f"positions {self.t}..{self.t + u.shape[0] - 1} exceed the context of {self.n_ctx}")
        t = torch.tensor(self.t, device=token.device)
        with torch.no_grad():
            drawn = self._steps(self.prior.lm, token, t, self.bufs, self.x_cond, self.dtype, u, temperature,
                                self.prior.cfg.music_shift)
        self.t += u.shape[0]
        return drawn.clone()


def _static_step(lm: AutoregressiveLM, token: Tensor, t: Tensor, bufs: list[Tensor], x_cond: Tensor | None,
                 dtype: torch.dtype | None, u: Tensor, temperature: Tensor, shift: int) -> tuple[Tensor, Tensor]:
    """``AutoregressiveLM.forward`` for one position t > 0 through fixed-shape buffers: logits (N, bins), and the
    token drawn from them at uniforms u (N,) (``StaticDecoder.step_and_draw``)."""
    logits = _forward_static(lm, token, t, bufs, x_cond, dtype)
    return logits, inverse_cdf(logits[:, shift:] / temperature, u) + shift


def _static_steps(lm: AutoregressiveLM, token: Tensor, t: Tensor, bufs: list[Tensor], x_cond: Tensor | None,
                  dtype: torch.dtype | None, u: Tensor, temperature: Tensor, shift: int) -> Tensor:
    """``_static_step`` at t, t+1, ... for each row of u (K, N), unrolled (K is fixed per graph): (N, K) tokens."""
    drawn = []
    for k in range(u.shape[0]):
        token = _static_step(lm, token, t + k, bufs, x_cond, dtype, u[k], temperature, shift)[1]
        drawn.append(token)
    return torch.cat(drawn, dim=1)


def inverse_cdf(logits: Tensor, u: Tensor) -> Tensor:
    """One token per row (N, 1) from logits (N, V) at uniforms u (N,) in [0, 1): the first token whose cumulative
    probability (float64) exceeds u * total, an exact draw (tokens of probability 0 are never chosen)."""
    cdf = torch.softmax(logits, dim=-1).cumsum(dim=-1, dtype=torch.float64)
    # u < 1 in steps of 2**-53, so u * total rounds strictly below total: the last positive token bounds it
    return torch.searchsorted(cdf, u[:, None] * cdf[:, -1:], right=True).clamp(max=cdf.shape[-1] - 1)


def _forward_static(lm: AutoregressiveLM, token: Tensor, t: Tensor, bufs: list[Tensor], x_cond: Tensor | None,
                    dtype: torch.dtype | None) -> Tensor:
    x = lm.x_emb(token) + lm.pos_emb.weight.index_select(0, t.view(1))
    if x_cond is not None:
        xc = x_cond.index_select(1, t.view(1))
        x = x + xc
    if dtype is not None and dtype != x.dtype:
        x = x.to(dtype)
    x = lm.transformer.step_static(x, t, bufs)
    if x.dtype != torch.float32:
        x = x.float()
    if x_cond is not None and lm.add_cond_after:
        x = x + xc
    return (lm.x_out(x) if hasattr(lm, "x_out") else x)[:, 0]


class WarmSteps:
    """Compiles the fixed-shape step in the background, per (prior, rows, precision), so no request waits.

    Sampling asks ``ready``: a shape compiled already runs compiled; any other runs eager and is queued here
    (``want``) for one background thread that compiles it on a dummy decode, so the next window or job of
    that shape gets the compiled speed. Inductor caches the generated code on disk, so a restarted engine
    compiles the same shapes again in seconds. At most ``MAX_SHAPES`` shapes per prior (each is a graph).
    """

    MAX_SHAPES = 6

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: weakref.WeakKeyDictionary[Prior, set] = weakref.WeakKeyDictionary()
        self._wanted: weakref.WeakKeyDictionary[Prior, set] = weakref.WeakKeyDictionary()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def ready(self, prior: Prior, rows: int, dtype: torch.dtype | None) -> bool:
        with self._lock:
            return (rows, dtype) in self._ready.get(prior, ())

    def want(self, prior: Prior, rows: int, dtype: torch.dtype | None) -> None:
        """Queue a background compile of this shape (once; ignored past ``MAX_SHAPES`` per prior)."""
        with self._lock:
            wanted = self._wanted.setdefault(prior, set())
            if (rows, dtype) in wanted or len(wanted) >= self.MAX_SHAPES:
                return
            wanted.add((rows, dtype))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="warm-compile", daemon=True)
                self._thread.start()
        self._queue.put((weakref.ref(prior), rows, dtype))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until every queued shape is compiled (tests, benchmarks); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = any(w - self._ready.get(p, set()) for p, w in self._wanted.items())
                failed = len(self.errors)
            if not pending or failed:
                return not pending
            if deadline is not None and time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def _run(self) -> None:
        while True:
            ref, rows, dtype = self._queue.get()
            prior = ref()
            if prior is None:
                continue
            try:
                _compile_shape(prior, rows, dtype)
            except Exception as exc:  # a shape that fails to compile stays eager; the engine goes on
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:500])
                continue
            with self._lock:
                self._ready.setdefault(prior, set()).add((rows, dtype))


@torch.inference_mode()
def _compile_shape(prior: Prior, rows: int, dtype: torch.dtype | None) -> None:
    """Run the compiled step once on a dummy decode of ``rows`` rows: the graph is then in Dynamo's cache."""
    cfg = prior.cfg
    device = next(prior.parameters()).device
    y = torch.zeros((rows, cfg.y_len), dtype=torch.long, device=device)
    total = 60 * cfg.sample_rate  # a one-minute song: inside every timing range
    if cfg.has_timing and cfg.min_duration is not None:
        total = int(min(max(total, cfg.min_duration * cfg.sample_rate), cfg.max_duration * cfg.sample_rate - 1))
    y[:, 0], y[:, 2] = total, cfg.n_ctx * cfg.raw_to_tokens
    y[:, 4 + 1: 4 + cfg.max_bow_genre_size] = -1
    upper = None
    if cfg.has_upper_conditioner:
        upper = torch.zeros((rows, cfg.n_ctx // cfg.upsampling), dtype=torch.long, device=device)
    cache = prior.start_cache(prior.conditioning(y, upper, dtype), dtype)
    prior.prefill(cache, prior.to_model_tokens(torch.zeros((rows, 1), dtype=torch.long, device=device), y))
    step = StaticDecoder(prior, cache, compile=True)
    token = torch.full((rows, 1), cfg.music_shift, dtype=torch.long, device=device)
    step(token)
    if step.steps_per_call > 1:  # the unrolled graph the sampler uses between forced tokens
        u = torch.zeros((step.steps_per_call, rows), dtype=torch.float64, device=device)
        step.draw_steps(token, u, torch.ones((), device=device))


WARM = WarmSteps()
"""The process's background compiler (the engine warms its model's shapes at start-up)."""
