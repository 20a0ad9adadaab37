"""The webhook HTTP client against a raw TCP server on loopback that answers as told:
keep-alive reuse, a connection the receiver closed while idle, chunked and read-to-close
answers, a capped answer, a malformed one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio

from node.webhooks.http import Target, WebhookClient
from node.webhooks.targets import LIVE, TEST_HTTP, TargetRefused

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
