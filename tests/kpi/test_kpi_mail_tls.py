"""The weekly e-mail over TLS: real aiosmtpd servers on loopback, trustme CAs.

Each server gets a certificate for 127.0.0.1 from a throwaway CA. The app
trusts that CA only through OTKLIK_SMTP_CA_FILE, so every passing test also
shows that the certificate chain and the host name were checked.
"""

from __future__ import annotations

import email
import socket
import ssl
import threading
from datetime import UTC, datetime

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select

from b24app.kpi import mail
from b24app.kpi import settings as kpi_settings
from b24app.kpi.models import KpiClaim
from tests.conftest import free_port
from tests.kpi.fixtures import november

MONDAY_MORNING = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)  # 10:00 in Moscow
USER = "kpi-mailer"
PASSWORD = "test-password-not-secret"  # noqa: S105


class Inbox:
    """An aiosmtpd handler that keeps what it receives and how it was received."""

    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(
            {
                "rcpt": envelope.rcpt_tos,
                "content": envelope.content,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "login": session.auth_data.login if session.authenticated else None,
            }
        )
        return "250 OK"


def _check_login(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def ca_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("smtp-ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def _server_context(authority: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


@pytest.fixture
def start_server():
    """Start aiosmtpd on loopback with the given options; stop it afterwards."""
    controllers = []

    def start(**options) -> tuple[Inbox, int]:
        inbox = Inbox()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=free_port(),
            server_hostname="localhost",
            **options,
        )
        controller.start()
        controllers.append(controller)
        return inbox, controller.port

    yield start
    for controller in controllers:
        controller.stop()


def _smtp(port: int, **env: str) -> kpi_settings.SmtpSettings:
    values = {
        "OTKLIK_SMTP_HOST": "127.0.0.1",
        "OTKLIK_SMTP_PORT": str(port),
        "OTKLIK_SMTP_FROM": "kpi@otklik.test",
        "OTKLIK_SMTP_TIMEOUT": "5",
    }
    return kpi_settings.smtp_settings(values | env)


@pytest.fixture
def owner_portal(services, installed):
    november(services, installed.id)
    kpi_settings.save(services, installed, owner_email="owner@salon.test")
    return installed


def _claims(services, portal_id):
    with services.db.session() as session:
        return session.scalars(
            select(KpiClaim.status).where(
                KpiClaim.portal_id == portal_id, KpiClaim.kind == "weekly_email"
            )
        ).all()


def test_starttls_required_and_verified(
    services, owner_portal, start_server, ca, ca_file
):
    inbox, port = start_server(tls_context=_server_context(ca), require_starttls=True)
    smtp = _smtp(port, OTKLIK_SMTP_TLS="starttls", OTKLIK_SMTP_CA_FILE=ca_file)

    outcome = mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert outcome == "sent"
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["tls"] is True
    assert inbox.messages[0]["rcpt"] == ["owner@salon.test"]
    message = email.message_from_bytes(inbox.messages[0]["content"])
    assert "2026-11-09" in message["Subject"]
    assert _claims(services, owner_portal.id) == ["sent"]


def test_implicit_tls_smtps(services, owner_portal, start_server, ca, ca_file):
    inbox, port = start_server(ssl_context=_server_context(ca))
    smtp = _smtp(port, OTKLIK_SMTP_TLS="ssl", OTKLIK_SMTP_CA_FILE=ca_file)

    outcome = mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert outcome == "sent"
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["tls"] is True


def test_login_over_starttls(services, owner_portal, start_server, ca, ca_file):
    inbox, port = start_server(
        tls_context=_server_context(ca),
        require_starttls=True,
        auth_required=True,
        authenticator=_check_login,
    )
    smtp = _smtp(
        port,
        OTKLIK_SMTP_TLS="starttls",
        OTKLIK_SMTP_CA_FILE=ca_file,
        OTKLIK_SMTP_USER=USER,
        OTKLIK_SMTP_PASSWORD=PASSWORD,
    )

    outcome = mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert outcome == "sent"
    assert inbox.messages[0]["tls"] is True
    assert inbox.messages[0]["login"] == USER.encode()


def test_login_over_smtps(services, owner_portal, start_server, ca, ca_file):
    # aiosmtpd 1.4 counts only STARTTLS as TLS when it decides to offer AUTH,
    # so the implicit-TLS server is configured to offer AUTH without it.
    inbox, port = start_server(
        ssl_context=_server_context(ca),
        auth_required=True,
        auth_require_tls=False,
        authenticator=_check_login,
    )
    smtp = _smtp(
        port,
        OTKLIK_SMTP_TLS="ssl",
        OTKLIK_SMTP_CA_FILE=ca_file,
        OTKLIK_SMTP_USER=USER,
        OTKLIK_SMTP_PASSWORD=PASSWORD,
    )

    outcome = mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert outcome == "sent"
    assert inbox.messages[0]["tls"] is True
    assert inbox.messages[0]["login"] == USER.encode()


def test_wrong_password_is_clear_error(
    services, owner_portal, start_server, ca, ca_file
):
    # aiosmtpd 1.4 counts only STARTTLS as TLS when it decides to offer AUTH,
    # so the implicit-TLS server is configured to offer AUTH without it.
    inbox, port = start_server(
        ssl_context=_server_context(ca),
        auth_required=True,
        auth_require_tls=False,
        authenticator=_check_login,
    )
    smtp = _smtp(
        port,
        OTKLIK_SMTP_TLS="ssl",
        OTKLIK_SMTP_CA_FILE=ca_file,
        OTKLIK_SMTP_USER=USER,
        OTKLIK_SMTP_PASSWORD="wrong",
    )

    with pytest.raises(mail.MailError, match="rejected the login"):
        mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert inbox.messages == []
    assert _claims(services, owner_portal.id) == []


def test_untrusted_certificate_retried(
    services, owner_portal, start_server, ca, ca_file, tmp_path
):
    other_ca = trustme.CA()
    inbox, port = start_server(ssl_context=_server_context(other_ca))
    untrusting = _smtp(port, OTKLIK_SMTP_TLS="ssl", OTKLIK_SMTP_CA_FILE=ca_file)

    with pytest.raises(mail.MailError, match="not trusted") as failure:
        mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=untrusting)

    assert "OTKLIK_SMTP_CA_FILE" in str(failure.value)
    assert f"127.0.0.1:{port}" in str(failure.value)
    assert inbox.messages == []
    assert _claims(services, owner_portal.id) == []

    # The next run, with the right CA bundle, sends the same week's e-mail.
    other_file = tmp_path / "other-ca.pem"
    other_ca.cert_pem.write_to_path(str(other_file))
    trusting = _smtp(port, OTKLIK_SMTP_TLS="ssl", OTKLIK_SMTP_CA_FILE=str(other_file))

    outcome = mail.send_weekly(
        services, owner_portal, now=MONDAY_MORNING, smtp=trusting
    )

    assert outcome == "sent"
    assert len(inbox.messages) == 1
    assert _claims(services, owner_portal.id) == ["sent"]


def test_starttls_untrusted_certificate(services, owner_portal, start_server, ca_file):
    inbox, port = start_server(
        tls_context=_server_context(trustme.CA()), require_starttls=True
    )
    smtp = _smtp(port, OTKLIK_SMTP_TLS="starttls", OTKLIK_SMTP_CA_FILE=ca_file)

    with pytest.raises(mail.MailError, match="not trusted"):
        mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert inbox.messages == []
    assert _claims(services, owner_portal.id) == []


def test_starttls_missing_on_server(services, owner_portal, start_server, ca_file):
    inbox, port = start_server()
    smtp = _smtp(port, OTKLIK_SMTP_TLS="starttls", OTKLIK_SMTP_CA_FILE=ca_file)

    with pytest.raises(mail.MailError, match="does not offer STARTTLS"):
        mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert inbox.messages == []
    assert _claims(services, owner_portal.id) == []


def test_plain_when_tls_disabled(services, owner_portal, start_server):
    inbox, port = start_server()
    smtp = _smtp(port, OTKLIK_SMTP_TLS="none")

    outcome = mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert outcome == "sent"
    assert inbox.messages[0]["tls"] is False


def test_plain_refuses_credentials(services, owner_portal, start_server):
    inbox, port = start_server()
    smtp = _smtp(
        port, OTKLIK_SMTP_TLS="none", OTKLIK_SMTP_USER=USER, OTKLIK_SMTP_PASSWORD="x"
    )

    with pytest.raises(mail.MailError, match="in clear text"):
        mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)

    assert inbox.messages == []
    assert _claims(services, owner_portal.id) == []


def test_silent_server_times_out(services, owner_portal):
    # A listener that accepts the connection and never sends a greeting.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []
    thread = threading.Thread(
        target=lambda: accepted.append(listener.accept()[0]), daemon=True
    )
    thread.start()
    smtp = _smtp(
        listener.getsockname()[1], OTKLIK_SMTP_TLS="none", OTKLIK_SMTP_TIMEOUT="0.5"
    )

    try:
        with pytest.raises(mail.MailError, match="timed out after 0.5 s"):
            mail.send_weekly(services, owner_portal, now=MONDAY_MORNING, smtp=smtp)
    finally:
        thread.join(timeout=5)
        for connection in accepted:
            connection.close()
        listener.close()

    assert _claims(services, owner_portal.id) == []


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OTKLIK_SMTP_TLS": "tls"}, "starttls, ssl or none"),
        ({"OTKLIK_SMTP_PORT": "smtp"}, "OTKLIK_SMTP_PORT must be an integer"),
        ({"OTKLIK_SMTP_PORT": "70000"}, "1..65535"),
        ({"OTKLIK_SMTP_TIMEOUT": "0"}, "OTKLIK_SMTP_TIMEOUT"),
        ({"OTKLIK_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "not a readable file"),
    ],
)
def test_smtp_settings_invalid(env, message):
    with pytest.raises(ValueError, match=message):
        kpi_settings.smtp_settings({"OTKLIK_SMTP_HOST": "127.0.0.1"} | env)


def test_smtp_settings_defaults():
    smtp = kpi_settings.smtp_settings({"OTKLIK_SMTP_HOST": "127.0.0.1"})

    assert smtp.tls == "starttls"
    assert smtp.port == 587
    assert smtp.ca_file is None
    assert smtp.timeout == 30
