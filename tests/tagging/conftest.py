"""Fixtures for the tagging tests: repository paths, the offline engine and
a fake OpenAI-compatible chat server on loopback."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from b24app.tagging import OfflineEngine

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_SET_NAME = Path("shared") / "datasets" / "leads-dev.jsonl"


def _find_dev_set() -> Path:
    """Return the labelled dev set next to this checkout or the one it was cloned from.

    A fresh clone of a local checkout (as CI makes) lives elsewhere, so the
    origin's parent folder is tried as well.
    """
    candidates = [REPO_ROOT.parent / DEV_SET_NAME]
    origin = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        candidates.append(Path(origin).resolve().parent / DEV_SET_NAME)
    return next((path for path in candidates if path.exists()), candidates[0])


DEV_SET = _find_dev_set()
OWN_SETS = sorted((Path(__file__).parent / "data").glob("*.jsonl"))

GOOD_ANSWER = {
    "tags": ["booking"],
    "urgent": False,
    "name": "Анна",
    "service": "маникюр",
    "desired_time": "2026-03-15T15:00:00+03:00",
    "desired_time_precision": "hour",
    "confidence": {"booking": 0.93, "urgent": 0.05},
    "explanation": "Клиентка просит записать её на маникюр.",
}


@pytest.fixture(scope="session")
def engine() -> OfflineEngine:
    return OfflineEngine()


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


class FakeChatServer:
    """A loopback stand-in for ``POST /v1/chat/completions``.

    ``mode`` picks the behaviour: "good", "slow", "invalid_json",
    "schema_invalid" or "http500". Every request body is recorded.
    """

    def __init__(self) -> None:
        self.mode = "good"
        # The reply in "good" mode, which a test may replace.
        self.answer: dict[str, Any] = GOOD_ANSWER
        self.delay = 30.0
        self.requests: list[dict[str, Any]] = []
        self.raw_bodies: list[str] = []
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                server.raw_bodies.append(raw)
                server.requests.append(json.loads(raw))
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found"}})
                    return
                if server.mode == "http500":
                    self._send(500, {"error": {"message": "boom"}})
                    return
                if server.mode == "slow":
                    deadline = time.monotonic() + server.delay
                    while time.monotonic() < deadline and not server._stop.is_set():
                        time.sleep(0.02)
                content = {
                    "invalid_json": "this is {not json",
                    "schema_invalid": json.dumps({"tags": ["maybe"], "urgent": "yes"}),
                }.get(server.mode, json.dumps(server.answer, ensure_ascii=False))
                self._send(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": "test-model",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                    },
                )

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def chat_server() -> Iterator[FakeChatServer]:
    server = FakeChatServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
