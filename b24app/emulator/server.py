"""Running the emulator on a loopback port in a background thread."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import create_emulator
from .config import EmulatorConfig
from .state import Portal
from .tls import make_server_context

logger = logging.getLogger(__name__)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# How often the serving loop checks for shutdown; small so tests stop fast.
SHUTDOWN_POLL_SECONDS = 0.05


class _QuietRequestHandler(WSGIRequestHandler):
    """Log the method and path only: query strings carry access tokens."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path
        logger.debug("%s %s -> %s", self.command, path, code)


@dataclass
class EmulatorHandle:
    """A running emulator: where it listens and how to stop it."""

    base_url: str
    domain: str
    ca_path: Path | None
    portal: Portal
    config: EmulatorConfig
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def server_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth/token/"

    def stop(self) -> None:
        """Stop serving, end the event thread and release the port."""
        self.portal.stop()
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
        logger.info("emulator on %s stopped", self.domain)

    def __enter__(self) -> EmulatorHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_emulator(
    config: EmulatorConfig | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = True,
    cert_dir: Path | None = None,
) -> EmulatorHandle:
    """Serve a new emulated portal on loopback; port 0 picks a free port.

    With `tls` a fresh test CA signs a certificate for 127.0.0.1 and
    localhost, and the CA bundle is written to `cert_dir/emulator-ca.pem`.
    """
    if host not in LOOPBACK_HOSTS:
        raise ValueError(f"The emulator listens on loopback only, not on {host!r}.")
    config = config or EmulatorConfig()
    ssl_context = None
    ca_path = None
    if tls:
        if cert_dir is None:
            raise ValueError("cert_dir is required when tls=True.")
        ssl_context, ca_path = make_server_context(Path(cert_dir))

    app = create_emulator(config)
    server = make_server(
        host,
        port,
        app,
        threaded=True,
        ssl_context=ssl_context,
        request_handler=_QuietRequestHandler,
    )
    bound_port = server.server_port
    host_part = f"[{host}]" if ":" in host else host
    domain = f"{host_part}:{bound_port}"
    base_url = f"{'https' if tls else 'http'}://{domain}"

    portal: Portal = app.extensions["emulator"]
    portal.set_address(domain, base_url)
    portal.start()

    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
        name=f"emulator-{bound_port}",
        daemon=True,
    )
    thread.start()
    logger.info("emulator serving %s", base_url)
    return EmulatorHandle(
        base_url=base_url,
        domain=domain,
        ca_path=ca_path,
        portal=portal,
        config=config,
        _server=server,
        _thread=thread,
    )
