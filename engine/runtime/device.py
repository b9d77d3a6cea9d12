"""Device, precision and runtime policy for inference: the one place such decisions are made.

* ``pick_device`` chooses where models run: ``JUKEBOX_DEVICE`` if set, else CUDA, else Apple MPS, else CPU.
* ``Precision`` names the arithmetic a caller asks for. ``EXACT`` (the default everywhere) runs the
  reference fp32 kernels, so codes and decodes are bit-identical to the reference implementation;
  ``FP32`` runs fp32 in a faster memory layout (decodes differ from ``EXACT`` by ~1e-6 relative, the
  size of fp32 rounding itself); ``BF16`` runs bfloat16 weights and activations (AMX on recent Xeons,
  tensor cores on CUDA), much faster but lossy (31-38 dB SNR against fp32 on the random-weight
  official-architecture fixture). VQ-VAE *encoding* is always exact: a code can flip at a near-tie.
  "Exact" means against the reference kernels on the same CPU *with the same thread count*: oneDNN's
  summation order depends on it (1 of 27552 level-0 codes of a 5-s test signal differ between 1 and 2
  threads, in the original code as well).
* ``bucket_length`` is the padding policy of the fast (non-exact) paths, so oneDNN's per-shape kernels
  are reused across requests.
* ``inference_context`` is what every inference entry point runs under: ``torch.inference_mode`` plus,
  once per process on glibc CPUs, the allocator tuning below.

Allocator tuning (``configure_cpu_allocator``). The VQ-VAE's activations are 10-300 MB per tensor.
glibc serves such blocks with fresh ``mmap``s and unmaps them on free, so every layer pays page faults
to zero new memory (~200k faults, 15-30 % of encode time on 3 s of audio, more on long audio).
The ``"reuse"`` policy (default) tells malloc to keep freed memory for reuse instead; the resident size
then stays at the peak of the largest job until ``release_cpu_memory()`` (call it when the engine
idles). ``JUKEBOX_MALLOC=off`` (or ``configure_cpu_allocator("off")`` before the first inference) leaves
glibc's defaults alone. Numerics are unaffected either way.

Benchmarks and figures: ``benchmarks/README.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading
from enum import Enum
from typing import Iterator

import torch

__all__ = [
    "Precision",
    "pick_device",
    "compute_dtype",
    "inference_context",
    "configure_cpu_allocator",
    "release_cpu_memory",
    "set_threads",
    "bucket_length",
]


class Precision(str, Enum):
    """Arithmetic for model inference; see the module docstring for the accuracy of each."""

    EXACT = "exact"  # reference kernels and layout, bit-identical to the reference implementation
    FP32 = "fp32"  # fp32 in a channels-last layout: faster, ~1e-6 relative to EXACT
    BF16 = "bf16"  # bfloat16 weights and activations: fastest, ~1-4 % of peak error

    @classmethod
    def parse(cls, value: "Precision | str | None") -> "Precision":
        """``None`` -> ``EXACT``; accepts members or their names/values (case-insensitive)."""
        if value is None:
            return cls.EXACT
        if isinstance(value, cls):
            return value
        try:
            return cls(str(value).lower())
        except ValueError:
            raise ValueError(f"precision must be one of {[p.value for p in cls]}; got {value!r}") from None


def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """``prefer`` if given, else ``$JUKEBOX_DEVICE``, else the best available: cuda, then mps, then cpu."""
    choice = prefer if prefer is not None else os.environ.get("JUKEBOX_DEVICE") or None
    if choice is not None:
        device = torch.device(choice)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {device} requested but CUDA is not available")
        if device.type == "mps" and not _mps_available():
            raise RuntimeError(f"device {device} requested but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def compute_dtype(precision: Precision | str | None, device: torch.device | str = "cpu") -> torch.dtype:
    """The activation/weight dtype for ``precision`` on ``device``.

    ``BF16`` maps to float16 on MPS, whose bfloat16 convolutions are missing or slow on older macOS.
    """
    p = Precision.parse(precision)
    if p is not Precision.BF16:
        return torch.float32
    return torch.float16 if torch.device(device).type == "mps" else torch.bfloat16


def set_threads(n: int | None) -> None:
    """Intra-op threads for CPU inference (``None`` leaves torch's default: one per core)."""
    if n is not None:
        torch.set_num_threads(max(1, int(n)))


# Fast (non-EXACT) paths zero-pad the time axis up to one of this many lengths per octave (a power of
# two; <= 12.5 % extra work, ~6 % on average) so that oneDNN's kernels, JIT-built per input shape
# (~0.35 s per new length in fp32, ~2.5 s in bf16 for a level-0 decode), are reused across requests of
# similar length. 0 disables the padding.
BUCKETS_PER_OCTAVE = int(os.environ.get("JUKEBOX_BUCKETS_PER_OCTAVE", "8"))
_MIN_BUCKET = 64


def bucket_length(n: int) -> int:
    """The padded length for a time axis of ``n``: ``n`` rounded up to a multiple of
    2**(floor(log2 n) - log2 BUCKETS_PER_OCTAVE), and of at least 64; ``n`` itself when disabled."""
    if n <= 0 or BUCKETS_PER_OCTAVE <= 0:
        return n
    shift = n.bit_length() - 1 - (BUCKETS_PER_OCTAVE.bit_length() - 1)
    step = max(_MIN_BUCKET, 1 << max(0, shift))
    return -(-n // step) * step


# --- allocator ------------------------------------------------------------------------------------

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_MMAP_MAX = -1, -3, -4  # from glibc's malloc.h
_allocator_lock = threading.Lock()
_allocator_policy: str | None = None  # what has been applied in this process


def configure_cpu_allocator(policy: str | None = None) -> str:
    """Apply a malloc policy once per process; returns the policy in force.

    ``"reuse"``: no ``mmap`` for large blocks and no trimming, so freed activations are reused without
    page faults (the fastest; resident memory stays at the peak). ``"off"``: glibc defaults. ``None``
    reads ``$JUKEBOX_MALLOC`` (default ``"reuse"``). A no-op returning ``"off"`` outside glibc (macOS,
    Windows, musl). Later calls with another policy cannot undo an applied one and return the first.
    """
    global _allocator_policy
    with _allocator_lock:
        if _allocator_policy is not None:
            return _allocator_policy
        policy = (policy or os.environ.get("JUKEBOX_MALLOC") or "reuse").lower()
        if policy not in ("reuse", "off"):
            raise ValueError(f"allocator policy must be 'reuse' or 'off'; got {policy!r}")
        if policy == "reuse":
            mallopt = _glibc_mallopt()
            if mallopt is None:
                policy = "off"
            else:
                # M_MMAP_MAX=0 keeps every block on the heap; a trim threshold of -1 means free() never
                # hands the top of the heap back to the kernel (``release_cpu_memory`` does, on request).
                ok = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, -1) == 1
                policy = "reuse" if ok else "off"
        _allocator_policy = policy
        return policy


def release_cpu_memory() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim``); call when the engine goes idle.

    Under the ``"reuse"`` policy the heap otherwise keeps the peak of the largest job. Returns whether
    anything was released. Safe to call at any time; a no-op outside glibc.
    """
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt is a stub
            return None
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


def _glibc_mallopt():
    libc = _glibc()
    return None if libc is None else libc.mallopt


# --- context ------------------------------------------------------------------------------------


@contextlib.contextmanager
def inference_context(device: torch.device | str | None = None) -> Iterator[None]:
    """``torch.inference_mode()``, with the CPU allocator policy applied first when on CPU.

    Tensors created inside are inference tensors: clone them outside before in-place edits or autograd
    (the VQ-VAE's public methods return ordinary tensors).
    """
    if device is None or torch.device(device).type == "cpu":
        configure_cpu_allocator()
    with torch.inference_mode():
        yield


def threads_for(width: int, cores: int | None = None) -> int:
    """Intra-op threads that suit a model of this transformer width on this machine.

    Narrow models (the embedded and debug ones) are bound by per-op overhead: a second thread only adds
    synchronisation, and on a busy 2-core laptop spin-waiting threads fight the DAW (measured here: one
    debug render took 48 s with 2 threads and 2 s with 1 under load). Wide official models are
    memory-bound matmuls that do use every core. ``JUKEBOX_THREADS`` overrides.
    """
    if os.environ.get("JUKEBOX_THREADS"):
        return max(1, int(os.environ["JUKEBOX_THREADS"]))
    cores = cores or os.cpu_count() or 1
    return 1 if width < 512 else cores
