"""The webhook HTTP client against a raw TCP server on loopback that answers as told:
keep-alive reuse, a connection the receiver closed while idle, chunked and read-to-close
answers, a capped answer, a malformed one."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio

from node.webhooks.http import Target, WebhookClient
from node.webhooks.targets import LIVE, TEST_HTTP, TEST_HTTPS, TargetRefused

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class RawServer:
    """Reads one request per answer; ``answers`` are sent in turn (the last one repeats)."""

    answers: list[bytes] = field(default_factory=lambda: [OK])
    close_after: bool = False
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
                writer.write(answer)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


@pytest_asyncio.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    server.port = server.server.sockets[0].getsockname()[1]
    yield server
    server.server.close()


def client(cap: int = 1024) -> WebhookClient:
    return WebhookClient(response_cap=cap, idle_per_target=8)


HEADERS = {"Content-Type": "application/json", "webhook-id": "abc"}


class TestWebhookClient:
    async def test_requests_go_over_one_kept_alive_connection(self, raw: RawServer) -> None:
        http = client()
        for _ in range(3):
            response = await http.post(raw.url, TEST_HTTP, HEADERS, b'{"a":1}')
            assert (response.status, response.body) == (200, b"ok")
        http.close()
        assert raw.connections == 1
        assert raw.requests[0] == (b"POST /hook?x=1 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json"
                                   b"\r\nwebhook-id: abc\r\nContent-Length: 7\r\n\r\n{\"a\":1}" % raw.port)

    async def test_a_connection_the_receiver_closed_while_idle_is_replaced(self, raw: RawServer) -> None:
        raw.close_after = True  # the receiver closes after each answer, without saying so
        http = client()
        for _ in range(3):
            await asyncio.sleep(0.05)  # the close arrives while the connection is idle
            assert (await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")).status == 200
        http.close()
        assert len(raw.requests) == 3 and raw.connections == 3

    async def test_a_request_the_receiver_drops_unanswered_is_retried_once_on_a_new_connection(
        self, raw: RawServer,
    ) -> None:
        http = client()
        assert (await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")).status == 200
        raw.answers = [OK, b"", OK]  # the second request gets no answer: its connection just closes
        raw.close_after = True
        response = await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")
        http.close()
        assert response.status == 200 and len(raw.requests) == 3

    async def test_chunked_and_read_to_close_answers_are_read(self, raw: RawServer) -> None:
        raw.answers = [b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
                       b"HTTP/1.1 202 Accepted\r\nConnection: close\r\n\r\nuntil the end"]
        http = client()
        first = await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")
        raw.close_after = True
        second = await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")
        http.close()
        assert (first.status, first.body) == (201, b"abcde")
        assert (second.status, second.body) == (202, b"until the end")

    async def test_an_answer_is_read_only_up_to_the_cap_and_its_connection_dropped(self, raw: RawServer) -> None:
        raw.answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100_000, OK]
        http = client(cap=10)
        response = await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")
        assert (response.status, response.body) == (200, b"x" * 10)
        assert (await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")).body == b"ok"
        http.close()
        assert raw.connections == 2

    async def test_a_malformed_answer_fails_the_request(self, raw: RawServer) -> None:
        raw.answers = [b"NOT HTTP AT ALL\r\n\r\n"]
        http = client()
        with pytest.raises(ConnectionError, match="invalid HTTP response"):
            await http.post(raw.url, TEST_HTTP, HEADERS, b"{}")
        http.close()

    async def test_the_address_is_checked_before_connecting(self, raw: RawServer) -> None:
        with pytest.raises(TargetRefused, match="loopback"):
            await client().post(raw.url.replace("127.0.0.1", "localhost"), LIVE, HEADERS, b"{}")
        assert raw.connections == 0

    @pytest.mark.parametrize("url", ["ftp://h/", "http:///x", "http://h:99999/"])
    def test_a_url_without_an_http_target_is_refused(self, url: str) -> None:
        with pytest.raises(TargetRefused):
            Target.of(url)

    def test_nothing_in_a_url_can_end_the_request_line(self) -> None:
        # (urlsplit already drops CR, LF and tabs; spaces, other controls and non-ASCII are encoded)
        target = Target.of("http://h:8080/a b\r\nX-Injected: 1\x00/\u00fc?q=\u00e9 1")
        assert target.head == b"POST /a%20bX-Injected:%201%00/%C3%BC?q=%C3%A9%201 HTTP/1.1\r\nHost: h:8080\r\n"


def _certificate(tmp: Path, host: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``host`` (and 127.0.0.1): (cert file, key file)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp / f"{host}.pem", tmp / f"{host}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class TestTls:
    """Live endpoints are https only: the client speaks TLS with certificate and host checks."""

    async def _server(self, tmp: Path, certificate_host: str) -> tuple[RawServer, Path]:
        cert_file, key_file = _certificate(tmp, certificate_host)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        server = RawServer()
        server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=context)
        server.port = server.server.sockets[0].getsockname()[1]
        return server, cert_file

    def _trusting(self, cert_file: Path) -> WebhookClient:
        http = client()
        http._tls = ssl.create_default_context(cafile=str(cert_file))  # the test's CA instead of the system's
        return http

    async def test_https_to_a_trusted_certificate_works_over_one_kept_alive_connection(self, tmp_path: Path) -> None:
        server, cert_file = await self._server(tmp_path, "localhost")
        http = self._trusting(cert_file)
        try:
            for _ in range(2):
                response = await http.post(f"https://localhost:{server.port}/hook", TEST_HTTPS, HEADERS, b"{}")
                assert (response.status, response.body) == (200, b"ok")
        finally:
            http.close()
            assert server.server is not None
            server.server.close()
        assert server.connections == 1 and len(server.requests) == 2
        assert server.requests[0].startswith(b"POST /hook HTTP/1.1\r\nHost: localhost:%d\r\n" % server.port)

    async def _refused(self, server: RawServer, http: WebhookClient, match: str | None = None) -> None:
        try:
            with pytest.raises(ssl.SSLCertVerificationError, match=match):
                await http.post(f"https://localhost:{server.port}/hook", TEST_HTTPS, HEADERS, b"{}")
        finally:
            http.close()
            assert server.server is not None
            server.server.close()
        assert server.requests == []

    async def test_an_untrusted_certificate_is_refused(self, tmp_path: Path) -> None:
        server, _ = await self._server(tmp_path, "localhost")
        await self._refused(server, client())  # the system's CAs: a self-signed certificate is not among them

    async def test_a_certificate_for_another_host_is_refused(self, tmp_path: Path) -> None:
        server, cert_file = await self._server(tmp_path, "other.example")
        await self._refused(server, self._trusting(cert_file), match=r"match|mismatch")
