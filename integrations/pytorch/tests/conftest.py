"""The client's tests run against this checkout's CLI (bin/postbalance.mjs, built by npm test),
unless POSTBALANCE_CLI names another one."""
from __future__ import annotations

import os
import socket

import pytest

from support import BIN

os.environ.setdefault("POSTBALANCE_CLI", BIN)


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
