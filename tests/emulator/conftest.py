"""Fixtures: a running emulator over HTTPS, a REST client and an event receiver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from emu_helpers import FAST, Receiver, RestClient

from b24app.emulator import EmulatorConfig
from b24app.emulator.server import EmulatorHandle, start_emulator


@pytest.fixture
def emulator(tmp_path: Path):
    handle = start_emulator(EmulatorConfig(**FAST), cert_dir=tmp_path / "certs")
    yield handle
    handle.stop()


@pytest.fixture
def make_emulator(tmp_path: Path):
    """Start emulators with custom settings; all are stopped after the test."""
    handles: list[EmulatorHandle] = []

    def start(**settings: Any) -> EmulatorHandle:
        options = {**FAST, **settings}
        cert_dir = tmp_path / f"certs{len(handles)}"
        handle = start_emulator(EmulatorConfig(**options), cert_dir=cert_dir)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def client(emulator: EmulatorHandle) -> RestClient:
    return RestClient(emulator)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()
