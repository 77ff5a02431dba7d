"""Reading the authenticated metrics as a scraper does: a self-signed certificate for the
server (made with openssl) and GETs over HTTPS with or without a bearer token."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from tests.helpers.unavailable import unavailable


def self_signed(folder: Path, name: str = "tls") -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, in ``folder``: (cert, key)."""
    if shutil.which("openssl") is None:
        unavailable("the 'openssl' command is not on PATH")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def get(url: str, cafile: Path, token: str | None = None) -> tuple[int, str]:
    """GET ``url`` trusting ``cafile``, with ``Authorization: Bearer <token>`` when given:
    (HTTP status, body)."""
    context = ssl.create_default_context(cafile=str(cafile))
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def status(url: str) -> int:
    """The HTTP status of a plain GET of ``url`` (a probe, or a path that must be refused)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return error.code
