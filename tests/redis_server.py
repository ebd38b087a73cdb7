"""A throwaway Redis server for the tests that need one (the queue and the REST bucket on Redis).

It listens on a unix socket in the test's own directory, never on a TCP port,
so nothing else on the machine can collide with it. Skipped when Debian's
redis-server is not installed (`.ci/run` installs it).
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def start_redis(directory: Path):
    """Start redis-server on a socket in ``directory``; return (url, process)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    sock = directory / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    import redis

    url = f"unix://{sock}"
    while True:
        try:
            if sock.exists() and redis.Redis.from_url(url).ping():
                return url, proc
        except redis.RedisError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("redis-server did not start")
        time.sleep(0.05)


@pytest.fixture
def redis_url():
    # Not tmp_path: a unix socket's path must stay under 108 bytes, long test names would not.
    directory = Path(tempfile.mkdtemp(prefix="olchat-redis-"))
    url, proc = start_redis(directory)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(directory, ignore_errors=True)
