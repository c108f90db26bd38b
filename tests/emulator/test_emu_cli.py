"""`python -m b24app.emulator` prints its address and serves until stopped."""

import json
import subprocess
import sys

import pytest
from emu_helpers import loopback_session


@pytest.fixture
def cli_emulator(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "b24app.emulator",
            "--port",
            "0",
            "--cert-dir",
            str(tmp_path / "certs"),
            "--rate",
            "100",
            "--burst",
            "1000",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        yield json.loads(process.stdout.readline())
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_prints_connection_line(cli_emulator):
    assert set(cli_emulator) == {
        "base_url",
        "domain",
        "ca_path",
        "client_id",
        "client_secret",
        "member_id",
    }
    assert cli_emulator["base_url"] == f"https://{cli_emulator['domain']}"


def test_cli_serves_control_api(cli_emulator):
    session = loopback_session(cli_emulator["ca_path"])
    response = session.get(f"{cli_emulator['base_url']}/_emulator/users", timeout=10)
    assert response.status_code == 200
    assert response.json()[0]["IS_ADMIN"] is True
