"""Test helpers for the emulator tests: REST client, loopback receiver, settings."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import requests
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from b24app.emulator.server import EmulatorHandle

# Fast limits so tests never wait on the leaky bucket unless they mean to.
FAST = {"rate": 1000.0, "burst": 100000}


def loopback_session(ca_path: Path | None) -> requests.Session:
    """Build a session that trusts the emulator CA and ignores proxy variables."""
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca_path) if ca_path else True
    return session


class RestClient:
    """Minimal REST caller: JSON or form bodies, token in `auth`."""

    def __init__(self, handle: EmulatorHandle) -> None:
        self.handle = handle
        self.session = loopback_session(handle.ca_path)
        self.token = handle.portal.issue_tokens()["access_token"]

    def call(
        self,
        method: str,
        params: dict | None = None,
        *,
        token: str | None = None,
        form: bool = False,
    ) -> requests.Response:
        body = dict(params or {})
        body["auth"] = token or self.token
        url = f"{self.handle.base_url}/rest/{method}"
        if form:
            return self.session.post(url, data=body, timeout=10)
        return self.session.post(url, json=body, timeout=10)

    def result(self, method: str, params: dict | None = None, **kwargs: Any) -> Any:
        response = self.call(method, params, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()["result"]


@dataclass
class ReceivedRequest:
    """One request seen by the receiver."""

    path: str
    content_type: str
    raw_body: str
    form: dict[str, str]
    args: dict[str, str] = field(default_factory=dict)


class Receiver:
    """A plain-HTTP loopback server recording every POST it gets."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )
        self._thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        raw = request.get_data(as_text=True)
        record = ReceivedRequest(
            path=request.path,
            content_type=request.headers.get("Content-Type", ""),
            raw_body=raw,
            form=dict(parse_qsl(raw, keep_blank_values=True)),
            args=dict(request.args),
        )
        with self._lock:
            self.requests.append(record)
        return Response("ok", status=self.status)

    def events(self, name: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [
                item
                for item in self.requests
                if name is None or item.form.get("event") == name
            ]

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()
