"""--tls-sni: the TLS streaming client presents and verifies the given server name."""

from __future__ import annotations

import asyncio
import ssl
import subprocess

import pytest

from crictl.streamclient import tls_context


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "tls.crt", d / "tls.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=stream.test",
            "-addext",
            "subjectAltName=DNS:stream.test",
            "-keyout",
            str(key),
            "-out",
            str(crt),
        ],
        check=True,
        capture_output=True,
    )
    return str(crt), str(key)


async def _handshake(client: ssl.SSLContext, crt: str, key: str) -> str | None:
    """Connect to 127.0.0.1 with `client`; the SNI the server saw."""
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    seen: list[str | None] = []
    server_ctx.sni_callback = lambda sock, name, ctx: seen.append(name)  # type: ignore[assignment,misc,func-returns-value]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=client), 5)
        writer.close()
    finally:
        server.close()
        await server.wait_closed()
    return seen[0] if seen else None


async def test_server_name_is_sent_and_verified(cert: tuple[str, str]) -> None:
    crt, key = cert
    context = tls_context(crt, crt, key, "stream.test")
    assert context is not None
    assert await _handshake(context, crt, key) == "stream.test"


async def test_without_server_name_the_url_host_must_match(cert: tuple[str, str]) -> None:
    crt, key = cert
    context = tls_context(crt, crt, key)
    assert context is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(context, crt, key)


def test_no_tls_flags_means_no_tls() -> None:
    assert tls_context("", "", "", "stream.test") is None
