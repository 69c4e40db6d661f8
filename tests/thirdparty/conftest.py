"""A real Teeka server in its own process, migrated and loaded with the demo data, for tests
written as a third-party client would write them (plain HTTP only)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import _pg_admin, is_postgres


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    base = os.environ.get("TEEKA_TEST_DATABASE_URL", "")
    tmp = tmp_path_factory.mktemp("live")
    if is_postgres(base):
        url = base.rsplit("/", 1)[0] + "/" + base.rsplit("/", 1)[1] + "_live"
        asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
        asyncio.run(_pg_admin(url, 'CREATE DATABASE "{db}"'))
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'live.sqlite3'}"
    env = {**os.environ, "TEEKA_DATABASE_URL": url, "TEEKA_SECRET_KEY": "live-" + "s" * 30,
           "TEEKA_ENVIRONMENT": "development", "TEEKA_DATA_DIR": str(tmp),
           "TEEKA_OTP_RESEND_INTERVAL_SECONDS": "0", "TEEKA_LOG_LEVEL": "WARNING"}
    teeka = str(Path(sys.executable).parent / "teeka")
    for cmd in (["db", "upgrade"], ["demo"]):
        subprocess.run([teeka, *cmd], env=env, check=True, capture_output=True, timeout=300)
    port = _free_port()
    proc = subprocess.Popen([teeka, "serve", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read().decode() if proc.stderr else "died")
            time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if is_postgres(base):
            asyncio.run(_pg_admin(url, 'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
