"""Provider connections go only to the addresses checked before the request.

The resolver is replaced in every test, and a guard fails any socket that
would connect outside loopback, so no test reaches a real external host.
``PUBLIC`` below is only ever returned by the fake resolver: the connection
to it is redirected to a loopback server.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from types import SimpleNamespace

import pytest
import requests
from flask import Flask, jsonify, request

from b24app.reminders import channels
from tests.conftest import ServerThread

# A global address that the tests pretend a provider name resolves to.
PUBLIC = "93.184.215.14"
SMS_HOST = "sms-provider.test"
TELEGRAM_HOST = "telegram-proxy.test"
SMTP_HOST = "smtp-provider.test"


def _services(env: str = "production"):
    box = SimpleNamespace(decrypt=lambda value: value)
    return SimpleNamespace(config={"ENV": env}, box=box)


class Resolver:
    """Fake getaddrinfo: fixed results for the provider names, real ones otherwise.

    ``answers[name]`` is a list of address lists, one per call, and the last
    one repeats. This models a name whose DNS answer changes between calls.
    """

    def __init__(self, real) -> None:
        self.real = real
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: dict[str, int] = {}

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, family, type, proto, flags)
        count = self.calls.get(name, 0)
        self.calls[name] = count + 1
        answers = self.answers[name]
        addresses = answers[min(count, len(answers) - 1)]
        result = []
        for address in addresses:
            if ":" in address:
                sockaddr = (address, port or 0, 0, 0)
                result.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", sockaddr))
            else:
                sockaddr = (address, port or 0)
                result.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", sockaddr))
        return result


@pytest.fixture
def resolver(monkeypatch) -> Resolver:
    fake = Resolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Fail any TCP connection outside loopback, whatever the code under test."""
    real_connect = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple):
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                raise AssertionError(f"test tried to connect to {address[0]}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def recorder():
    """A loopback HTTP server that records each request's Host and path."""
    seen: list[dict[str, str]] = []
    app = Flask("provider-recorder")

    @app.post("/<path:path>")
    def anything(path: str):
        seen.append({"host": request.host, "path": request.path})
        if "/sendMessage" in request.path:
            return jsonify(ok=True, result={"message_id": 1})
        return jsonify(id="r-1")

    server = ServerThread(app)
    yield server, seen
    server.stop()


@pytest.fixture
def redirect(monkeypatch):
    """Send pinned connections to a loopback port; record the pinned target."""
    targets: list[tuple[str, int]] = []
    state = {"port": None}
    real_open = channels._open_socket

    def open_socket(address, timeout, **kwargs):
        targets.append(address)
        return real_open(("127.0.0.1", state["port"]), timeout, **kwargs)

    monkeypatch.setattr(channels, "_open_socket", open_socket)
    return targets, state


def _sms_cfg(host: str, port: int) -> dict:
    return {"provider": "generic", "url": f"http://{host}:{port}/send", "id_path": "id"}


# Names that resolve to internal addresses


@pytest.mark.parametrize(
    "addresses",
    [
        ["127.0.0.1"],
        ["169.254.169.254"],
        ["10.1.2.3"],
        ["::1"],
        ["fe80::1"],
        ["::ffff:127.0.0.1"],
        [PUBLIC, "127.0.0.1"],
    ],
    ids=[
        "loopback",
        "metadata",
        "private",
        "ipv6-loopback",
        "ipv6-link-local",
        "mapped-loopback",
        "one-of-two",
    ],
)
def test_sms_to_internal_address_refused(resolver, recorder, addresses):
    server, seen = recorder
    resolver.answers[SMS_HOST] = [addresses]
    with pytest.raises(channels.DeliveryFailed) as caught:
        channels.send_sms(
            _services(),
            _sms_cfg(SMS_HOST, server.port),
            "+79161234567",
            channels.Outgoing(text="x"),
        )
    assert "private address rejected" in str(caught.value)
    assert caught.value.retry is False
    assert seen == []


def test_telegram_to_metadata_address_refused(resolver, recorder):
    server, seen = recorder
    resolver.answers[TELEGRAM_HOST] = [["169.254.169.254"]]
    cfg = {"api_url": f"http://{TELEGRAM_HOST}:{server.port}", "token_enc": "1:t"}
    with pytest.raises(channels.DeliveryFailed):
        channels.send_telegram(_services(), cfg, "5", channels.Outgoing(text="x"))
    assert seen == []


def test_email_to_loopback_address_refused(resolver, smtp_server):
    controller, inbox = smtp_server
    resolver.answers[SMTP_HOST] = [["127.0.0.1"]]
    cfg = {"host": SMTP_HOST, "port": controller.port}
    with pytest.raises(channels.DeliveryFailed):
        channels.send_email(
            _services(), cfg, "client@example.com", channels.Outgoing(text="x")
        )
    assert inbox.messages == []


def test_unresolvable_name_is_retryable(resolver, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror("no such name")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(channels.DeliveryFailed) as caught:
        channels.resolve_public(_services(), SMS_HOST, "sms")
    assert caught.value.retry is True


# DNS rebinding: public at the check, internal at the request


def test_sms_rebinding_uses_checked_address(resolver, recorder, redirect):
    server, seen = recorder
    targets, state = redirect
    state["port"] = server.port
    resolver.answers[SMS_HOST] = [[PUBLIC], ["127.0.0.1"]]
    reference = channels.send_sms(
        _services(),
        _sms_cfg(SMS_HOST, server.port),
        "+79161234567",
        channels.Outgoing(text="x"),
    )
    assert reference == "sms:r-1"
    assert resolver.calls[SMS_HOST] == 1
    assert targets == [(PUBLIC, server.port)]
    assert seen == [{"host": f"{SMS_HOST}:{server.port}", "path": "/send"}]


def test_telegram_rebinding_uses_checked_address(resolver, recorder, redirect):
    server, seen = recorder
    targets, state = redirect
    state["port"] = server.port
    resolver.answers[TELEGRAM_HOST] = [[PUBLIC], ["169.254.169.254"]]
    cfg = {"api_url": f"http://{TELEGRAM_HOST}:{server.port}", "token_enc": "1:t"}
    channels.send_telegram(_services(), cfg, "5", channels.Outgoing(text="x"))
    assert resolver.calls[TELEGRAM_HOST] == 1
    assert targets == [(PUBLIC, server.port)]
    assert seen[0]["host"] == f"{TELEGRAM_HOST}:{server.port}"


def test_email_rebinding_uses_checked_address(resolver, redirect, smtp_server):
    controller, inbox = smtp_server
    targets, state = redirect
    state["port"] = controller.port
    resolver.answers[SMTP_HOST] = [[PUBLIC], ["127.0.0.1"]]
    cfg = {"host": SMTP_HOST, "port": controller.port}
    channels.send_email(
        _services(), cfg, "client@example.com", channels.Outgoing(text="x")
    )
    assert resolver.calls[SMTP_HOST] == 1
    assert targets == [(PUBLIC, controller.port)]
    assert len(inbox.messages) == 1


def test_second_pinned_address_tried(resolver, recorder, monkeypatch):
    """When the first checked address refuses, the next checked one is used."""
    server, seen = recorder
    targets: list[tuple[str, int]] = []
    real_open = channels._open_socket
    other = "93.184.215.15"

    def open_socket(address, timeout, **kwargs):
        targets.append(address)
        if address[0] == PUBLIC:
            raise ConnectionRefusedError("refused")
        return real_open(("127.0.0.1", server.port), timeout, **kwargs)

    monkeypatch.setattr(channels, "_open_socket", open_socket)
    resolver.answers[SMS_HOST] = [[PUBLIC, other]]
    channels.send_sms(
        _services(),
        _sms_cfg(SMS_HOST, server.port),
        "+79161234567",
        channels.Outgoing(text="x"),
    )
    assert targets == [(PUBLIC, server.port), (other, server.port)]
    assert len(seen) == 1


def test_all_pinned_addresses_refused_is_retryable(resolver, monkeypatch):
    def open_socket(address, timeout, **kwargs):
        raise ConnectionRefusedError("refused")

    monkeypatch.setattr(channels, "_open_socket", open_socket)
    resolver.answers[SMS_HOST] = [[PUBLIC]]
    with pytest.raises(channels.DeliveryFailed) as caught:
        channels.send_sms(
            _services(),
            _sms_cfg(SMS_HOST, 8443),
            "+79161234567",
            channels.Outgoing(text="x"),
        )
    assert caught.value.retry is True
    assert caught.value.unknown is False


def test_https_connection_keeps_name_for_tls():
    """The pinned HTTPS connection verifies the certificate of the name."""
    adapter = channels.PinnedAdapter((PUBLIC,))
    pool = adapter.poolmanager.connection_from_url(f"https://{SMS_HOST}/send")
    connection = pool._new_conn()
    assert connection.host == SMS_HOST
    assert connection.pinned == (PUBLIC,)
    assert connection.cert_reqs == ssl.CERT_REQUIRED


def test_no_pinning_outside_production(resolver):
    resolver.answers[SMS_HOST] = [["127.0.0.1"]]
    assert channels.resolve_public(_services("test"), SMS_HOST, "sms") is None
    assert resolver.calls == {}


def _pinned_get(url: str, ca_path) -> requests.Response:
    with requests.Session() as session:
        session.trust_env = False
        session.mount("https://", channels.PinnedAdapter((PUBLIC,)))
        return session.get(url, verify=str(ca_path), timeout=10)


def test_https_pinned_verifies_name(emulator, redirect):
    """TLS to a pinned address sends the URL's name as SNI and checks it.

    The emulator's certificate names localhost; the socket goes to the
    pinned address (redirected to the emulator's loopback port).
    """
    targets, state = redirect
    port = int(emulator.base_url.rsplit(":", 1)[1])
    state["port"] = port
    response = _pinned_get(f"https://localhost:{port}/", emulator.ca_path)
    assert response.status_code < 500
    assert targets == [(PUBLIC, port)]


def test_https_pinned_rejects_wrong_certificate(emulator, redirect):
    targets, state = redirect
    port = int(emulator.base_url.rsplit(":", 1)[1])
    state["port"] = port
    with pytest.raises(requests.exceptions.SSLError):
        _pinned_get(f"https://{SMS_HOST}:{port}/", emulator.ca_path)
    assert targets == [(PUBLIC, port)]
