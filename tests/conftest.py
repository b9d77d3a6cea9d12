"""Suite-wide settings and shared fixtures."""

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import torch

BACKGROUND_COMPILE_SECONDS = 600  # a generous bound on one test's queued compiles on a loaded 2-core machine


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The tests run tiny models: on a 2-core machine one intra-op thread is several times faster than two
    (no spin-waiting threads fighting other processes), and results do not depend on the thread count. Set before
    every test: loading a wide (official-size) model sets one thread per core for the whole process, and a later
    test on the same worker that compares two training runs should not run under another count."""
    torch.set_num_threads(1)
    yield


@pytest.fixture(autouse=True)
def no_compile_left_running():
    """A render with the embedded model queues its shapes for the background compiler; the test that did so waits
    for it, so no compile runs on into (and loads, or logs into) the next test on this worker."""
    yield
    from engine.model.fast.static_step import WARM

    WARM.wait(timeout=BACKGROUND_COMPILE_SECONDS)  # returns at once when nothing is queued or a compile failed


@pytest.fixture(scope="module")
def jack_server():
    """A dummy-driver jackd with its own name, so no test touches a user's server.

    Concurrent runs also take turns through a lock file: JACK2 names a client's handshake socket
    after the client alone, not its server, so two "Jukebox Bridge" clients opening at the same
    moment on two servers can fail with "JACK server not running?".
    """
    if shutil.which("jackd") is None or shutil.which("jack_lsp") is None:
        pytest.fail("jackd is not installed: run ./jb test, which installs the jackd2 package")
    lock = open(Path(tempfile.gettempdir()) / "jukebox-bridge-jack-tests.lock", "w")
    deadline = time.monotonic() + 60
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail("another test run has held the JACK test lock for 60 s")
            time.sleep(0.05)
    name = f"jbtest-{uuid.uuid4().hex[:8]}"
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(["jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "44100", "-p", "256"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["jack_lsp"], capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                pytest.fail(f"jackd did not start:\n{log.read().decode(errors='replace')}")
            time.sleep(0.05)
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        lock.close()  # releases the flock
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture
def pace():
    """Timeouts scaled by the machine's measured load (tests/pace.py): ``pace(30)`` is 30 s on an idle machine."""
    from .pace import Pace

    return Pace()


def pytest_sessionfinish(session, exitstatus):
    """No silent skips: a skipped test hides a missing install step, so any skip fails the run.

    ``-ra`` (pyproject) lists each skip with its reason; this turns a green-with-skips run red."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"{len(skipped)} test(s) skipped: every test must run here (see the skip reasons above)",
                            red=True)
        session.exitstatus = 1
