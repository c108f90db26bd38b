"""Fake Telegram Bot API and SMS providers on loopback, with failure modes.

Each fake records what it received and responds according to ``mode``:
"ok", "error" (HTTP 500), "slow" (sleeps ``delay`` seconds, then accepts
the message anyway, as a provider does when its response comes too late),
"invalid" (HTTP 200 with a body that is not JSON), "gateway" (HTTP 502
with an HTML body), "reject" (a provider-level refusal) or, for Telegram,
"flood" (HTTP 429 with ``parameters.retry_after``). ``times`` limits how
many requests the mode applies to before "ok" returns.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask, jsonify, request

from tests.conftest import ServerThread

TELEGRAM_TOKEN = "123456:TEST-token"  # noqa: S105
SMSRU_KEY = "smsru-test-key"
GENERIC_TOKEN = "generic-test-token"  # noqa: S105


@dataclass
class Behaviour:
    mode: str = "ok"
    times: int | None = None
    delay: float = 2.0
    retry_after: int = 30
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(
        self,
        mode: str,
        times: int | None = None,
        delay: float = 2.0,
        retry_after: int = 30,
    ) -> None:
        with self.lock:
            self.mode, self.times, self.delay = mode, times, delay
            self.retry_after = retry_after

    def take(self) -> str:
        """The mode for this request; counts down ``times``."""
        with self.lock:
            mode = self.mode
            if self.times is not None:
                self.times -= 1
                if self.times <= 0:
                    self.mode, self.times = "ok", None
            return mode


class FakeTelegram:
    """sendMessage and answerCallbackQuery of the Bot API."""

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.sent: list[dict[str, Any]] = []
        self.answered: list[dict[str, Any]] = []
        # (monotonic time, method) of every authorised call, whatever the mode.
        self.calls: list[tuple[float, str]] = []
        self._ids = itertools.count(1)
        app = Flask("fake-telegram")

        @app.post("/bot<token>/<method>")
        def call(token: str, method: str):
            if token != TELEGRAM_TOKEN:
                return jsonify(
                    ok=False, error_code=401, description="Unauthorized"
                ), 401
            self.calls.append((time.monotonic(), method))
            mode = self.behaviour.take()
            if mode == "slow":
                time.sleep(self.behaviour.delay)
            if mode == "error":
                return jsonify(ok=False, error_code=500, description="Internal"), 500
            if mode == "invalid":
                return "<html>bad gateway</html>", 200
            if mode == "gateway":
                return "<html>502 Bad Gateway</html>", 502
            if mode == "flood":
                wait = self.behaviour.retry_after
                return jsonify(
                    ok=False,
                    error_code=429,
                    description=f"Too Many Requests: retry after {wait}",
                    parameters={"retry_after": wait},
                ), 429
            if mode == "reject":
                return jsonify(
                    ok=False, error_code=403, description="bot was blocked by the user"
                ), 403
            payload = request.get_json(force=True)
            if method == "sendMessage":
                message_id = next(self._ids)
                self.sent.append({**payload, "message_id": message_id})
                return jsonify(
                    ok=True,
                    result={
                        "message_id": message_id,
                        "chat": {"id": payload["chat_id"]},
                        "text": payload["text"],
                    },
                )
            if method == "answerCallbackQuery":
                self.answered.append(payload)
                return jsonify(ok=True, result=True)
            return jsonify(ok=False, error_code=404, description="Not Found"), 404

        self.server = ServerThread(app)
        self._updates = itertools.count(1000)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()

    def buttons(self, message: dict[str, Any]) -> list[dict[str, str]]:
        markup = message.get("reply_markup") or {}
        return [button for row in markup.get("inline_keyboard", []) for button in row]

    # What a Telegram user does: sent to the app's webhook as Telegram would.

    def post_update(self, webhook: str, secret: str, update: dict[str, Any]):
        update = {"update_id": next(self._updates), **update}
        return requests.post(
            webhook,
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": secret},
            timeout=10,
        )

    def user_writes(self, webhook: str, secret: str, chat_id: int, text: str):
        return self.post_update(
            webhook,
            secret,
            {
                "message": {
                    "message_id": 1,
                    "chat": {"id": chat_id, "type": "private"},
                    "from": {"id": chat_id, "is_bot": False, "first_name": "Мария"},
                    "text": text,
                }
            },
        )

    def user_presses(self, webhook: str, secret: str, chat_id: int, data: str):
        return self.post_update(
            webhook,
            secret,
            {
                "callback_query": {
                    "id": f"cb{next(self._ids)}",
                    "from": {"id": chat_id, "is_bot": False},
                    "message": {"message_id": 1, "chat": {"id": chat_id}},
                    "data": data,
                }
            },
        )


class FakeSms:
    """SMS.ru's ``/sms/send`` JSON API and a generic JSON provider.

    The generic provider honours an ``Idempotency-Key`` header: a repeated
    key returns the first message id and sends nothing.
    """

    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.sent: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._by_key: dict[str, str] = {}
        app = Flask("fake-sms")

        def misbehave():
            mode = self.behaviour.take()
            if mode == "slow":
                time.sleep(self.behaviour.delay)
            if mode == "error":
                return mode, ("Internal Server Error", 500)
            if mode == "invalid":
                return mode, ("<html>oops</html>", 200)
            if mode == "gateway":
                return mode, ("<html>502 Bad Gateway</html>", 502)
            return mode, None

        @app.post("/sms/send")
        def smsru_send():
            mode, early = misbehave()
            if early:
                return early
            form = request.form
            if form.get("api_id") != SMSRU_KEY:
                return jsonify(status="ERROR", status_code=200, status_text="bad key")
            to = form["to"]
            if mode == "reject":
                return jsonify(
                    status="OK",
                    status_code=100,
                    sms={to: {"status": "ERROR", "status_code": 207}},
                )
            sms_id = f"{next(self._ids):06d}-1"
            self.sent.append({"provider": "smsru", "to": to, "text": form["msg"]})
            return jsonify(
                status="OK",
                status_code=100,
                sms={to: {"status": "OK", "status_code": 100, "sms_id": sms_id}},
                balance=100.0,
            )

        @app.post("/generic/send")
        def generic_send():
            mode, early = misbehave()
            if early:
                return early
            if request.headers.get("Authorization") != f"Bearer {GENERIC_TOKEN}":
                return jsonify(error="unauthorized"), 401
            if mode == "reject":
                return jsonify(error="invalid number"), 400
            body = request.get_json(force=True)
            key = request.headers.get("Idempotency-Key")
            if key and key in self._by_key:
                return jsonify(data={"id": self._by_key[key]})
            message_id = f"g-{next(self._ids)}"
            if key:
                self._by_key[key] = message_id
            self.sent.append(
                {"provider": "generic", "to": body["phone"], "text": body["message"]}
            )
            return jsonify(data={"id": message_id})

        self.server = ServerThread(app)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.server.stop()
