"""Reduced-precision projections for inference: bf16 weights, and int8 weights with a w8a16 AVX-512 VNNI C
kernel built at run time where the CPU has it. Speed paths, not the paper: the exact fp32 ``Conv1D`` stays
the reference. Both rewrite a model's ``Conv1D`` layers in place (``cast_projections``/``quantize_projections``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from engine.model.transformer import Conv1D


class Int8Conv1D(nn.Module):
    """Inference-only ``Conv1D`` with int8 weights, symmetric with one scale per output channel.

    ``method``:
    - ``"w8a16"``: a small AVX-512 VNNI kernel (``_w8a16_kernel``, compiled on first use with the system C
      compiler) that rounds each input row to int16 (one scale per row: ~3e-5 relative, far below bf16's
      rounding), multiplies int16 x int8 into int32 and reads the weights once, in a streaming layout.
      Falls back to ``"weight_only"`` where the kernel is unavailable or the shape does not fit it.
    - ``"weight_only"``: ``torch._weight_int8pack_mm`` on bf16 inputs (its fast path).
    The result returns in the input's dtype. Built by ``quantize_projections``; not a checkpoint layout.
    """

    def __init__(self, conv: Conv1D, method: str = "w8a16"):
        super().__init__()
        if method not in ("w8a16", "weight_only"):
            raise ValueError(f"unknown int8 method {method!r}; use 'w8a16' or 'weight_only'")
        with torch.no_grad():
            w = conv.w.detach().float().t().contiguous()  # (out, in)
            n_out, n_in = w.shape
            scale = w.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
            if method == "w8a16" and (n_out % 4 or n_in % 32 or n_in > 8192 or _w8a16_kernel() is None):
                method = "weight_only"
            if method == "w8a16":  # (out/4, in/32, 4, 32): each step of the kernel reads 128 adjacent bytes
                q = q.view(n_out // 4, 4, n_in // 32, 32).transpose(1, 2).contiguous()
                self.register_buffer("scale", scale)
                self.register_buffer("b", conv.b.detach().float().clone())
            else:
                self.register_buffer("scale", scale.to(torch.bfloat16))
                self.register_buffer("b", conv.b.detach().to(torch.bfloat16).clone())
            self.register_buffer("q", q)
        self.method, self.n_in, self.n_out = method, n_in, n_out

    def forward(self, x: Tensor) -> Tensor:
        x2 = x.reshape(-1, x.shape[-1])
        if self.method == "w8a16" and torch.compiler.is_compiling():  # the ctypes call is opaque to Dynamo
            w = self.q.transpose(1, 2).reshape(self.n_out, self.n_in).float() * self.scale[:, None]
            out = F.linear(x2.float(), w, self.b).to(x.dtype)
        elif self.method == "w8a16":
            x2 = x2.to(torch.float32, memory_format=torch.contiguous_format)
            m = x2.shape[0]
            out = x2.new_empty(m, self.n_out)
            xq, xs = x2.new_empty(m * self.n_in, dtype=torch.int16), x2.new_empty(m)
            _w8a16_kernel().jb_linear_w8a16(x2.data_ptr(), self.q.data_ptr(), self.scale.data_ptr(), self.b.data_ptr(),
                                            out.data_ptr(), m, self.n_out, self.n_in, xq.data_ptr(), xs.data_ptr())
            out = out.to(x.dtype)
        else:
            out = (torch._weight_int8pack_mm(x2.to(torch.bfloat16), self.q, self.scale) + self.b).to(x.dtype)
        return out.view(*x.shape[:-1], self.n_out)


_W8A16_SOURCE = r"""
#include <immintrin.h>
#include <stdint.h>

int jb_w8a16_supported(void) {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
}

/* y (M, N) = x (M, K) @ (w (N, K) int8 * scale (N))^T + bias (N), K % 32 == 0, K <= 8192 (int32 sums),
   N % 4 == 0; w packed (N/4, K/32, 4, 32). x rows go to int16 with one scale each (xq, xs: scratch). */
void jb_linear_w8a16(const float* x, const int8_t* w, const float* scale, const float* bias, float* y,
                     int64_t M, int64_t N, int64_t K, int16_t* xq, float* xs) {
  for (int64_t m = 0; m < M; ++m) {
    const float* xr = x + m * K;
    __m512 amax = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(xr + k)));
    float a = _mm512_reduce_max_ps(amax);
    xs[m] = a > 0.f ? a / 32767.f : 1.f;
    __m512 inv = _mm512_set1_ps(a > 0.f ? 32767.f / a : 1.f);
    for (int64_t k = 0; k < K; k += 16) {
      __m512i v = _mm512_cvt_roundps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xr + k), inv),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      _mm256_storeu_si256((__m256i*)(xq + m * K + k), _mm512_cvtsepi32_epi16(v));
    }
  }
  for (int64_t n = 0; n < N; n += 4) {
    const int8_t* w0 = w + n * K;
    for (int64_t m0 = 0; m0 < M; m0 += 4) {  /* 4 weight rows (in L1) meet every input row: read once */
      const int64_t mc = M - m0 < 4 ? M - m0 : 4;
      __m512i acc[4][4];
      for (int i = 0; i < 4; ++i)
        for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_setzero_si512();
      const int8_t* wk = w0;
      for (int64_t k = 0; k < K; k += 32, wk += 128) {
        _mm_prefetch((const char*)(wk + 2048), _MM_HINT_T0);
        _mm_prefetch((const char*)(wk + 2048 + 64), _MM_HINT_T0);
        __m512i wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm512_cvtepi8_epi16(_mm256_loadu_si256((const __m256i*)(wk + 32 * r)));
        for (int i = 0; i < mc; ++i) {
          __m512i xv = _mm512_loadu_si512((const void*)(xq + (m0 + i) * K + k));
          for (int r = 0; r < 4; ++r) acc[i][r] = _mm512_dpwssd_epi32(acc[i][r], wv[r], xv);
        }
      }
      for (int i = 0; i < mc; ++i)
        for (int r = 0; r < 4; ++r)
          y[(m0 + i) * N + n + r] = (float)_mm512_reduce_add_epi32(acc[i][r]) * xs[m0 + i] * scale[n + r] + bias[n + r];
    }
  }
}
"""
_w8a16_state: dict = {}


def _w8a16_kernel():
    """The ``jb_linear_w8a16`` kernel as a ctypes library, built once per machine and cached under
    ``$XDG_CACHE_HOME/jukebox-bridge`` (``$CC``, default ``cc``); None (with a warning) if this CPU lacks
    AVX-512 VNNI or no compiler works. ctypes releases the GIL during the call."""
    if "lib" in _w8a16_state:
        return _w8a16_state["lib"]
    lib = None
    try:
        if platform.machine().lower() not in ("x86_64", "amd64"):
            raise OSError(f"{platform.machine()} is not x86-64")
        tag = hashlib.sha256(_W8A16_SOURCE.encode()).hexdigest()[:16]
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jukebox-bridge"
        so = cache / f"w8a16-{tag}.so"
        if not so.exists():
            cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cache) as tmp:
                src, out = Path(tmp) / "w8a16.c", Path(tmp) / "w8a16.so"
                src.write_text(_W8A16_SOURCE)
                subprocess.run([os.environ.get("CC", "cc"), "-O3", "-mavx512f", "-mavx512bw", "-mavx512vl",
                                "-mavx512vnni", "-shared", "-fPIC", str(src), "-o", str(out)],
                               check=True, capture_output=True, timeout=120)
                os.replace(out, so)
        lib = ctypes.CDLL(str(so))
        if not lib.jb_w8a16_supported():
            raise OSError("this CPU lacks AVX-512 VNNI")
        lib.jb_linear_w8a16.restype = None
        lib.jb_linear_w8a16.argtypes = [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 3 + [ctypes.c_void_p] * 2
    except (OSError, subprocess.SubprocessError) as e:
        warnings.warn(f"int8 w8a16 kernel unavailable ({e}); using torch._weight_int8pack_mm", stacklevel=3)
        lib = None
    _w8a16_state["lib"] = lib
    return lib


def cast_projections(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """In place: every ``Conv1D`` weight and bias to ``dtype``, the weight stored (out, in) (the layout the
    fast reduced-precision kernels read), and its products computed in ``dtype``: the input is cast at the
    product and the result cast back, so the residual stream, LayerNorm, softmax, KV cache, embeddings and
    head keep the activation dtype (fp32 by default). Inference only; returns ``module``.
    """
    for m in module.modules():
        if isinstance(m, Conv1D):
            with torch.no_grad():
                w = m.w.detach().t().to(dtype, memory_format=torch.contiguous_format).t()
                m.w = nn.Parameter(w, requires_grad=False)
                m.b = nn.Parameter(m.b.detach().to(dtype), requires_grad=False)
            m.compute_dtype = dtype
    return module


def quantize_projections(module: nn.Module, method: str = "w8a16") -> nn.Module:
    """In place: every ``Conv1D`` becomes an ``Int8Conv1D`` (int8 weights, per-output-channel scales).

    Inference only; the rest of the stack keeps its dtype (run with the default fp32 ``SamplingParams``).
    Returns ``module``.
    """
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, Conv1D):
                setattr(parent, name, Int8Conv1D(child, method))
    return module
