"""Test certificate authority and server certificate for the emulator."""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme

CA_FILE_NAME = "emulator-ca.pem"


def make_server_context(cert_dir: Path) -> tuple[ssl.SSLContext, Path]:
    """Create a CA and a cert for 127.0.0.1 and localhost; write the CA bundle.

    Returns the server SSL context and the path of `emulator-ca.pem`, which
    clients pass as `verify=` (or REQUESTS_CA_BUNDLE).
    """
    cert_dir = Path(cert_dir)
    cert_dir.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA(organization_name="Otklik portal emulator")
    server_cert = authority.issue_cert("127.0.0.1", "localhost")

    ca_path = cert_dir / CA_FILE_NAME
    authority.cert_pem.write_to_path(str(ca_path))

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(context)
    return context, ca_path
