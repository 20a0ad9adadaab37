"""One pipelined Redis connection per process, for the scripts every API request runs (HMAC
authentication, rate limits).

redis-py checks a connection out of its pool, writes, reads and checks it back in for every
command: about 130 us of CPU a call. Here every caller writes its command to one shared
connection at once and waits for its reply in order (Redis answers a connection's commands in
the order it got them), parsed by hiredis. Commands issued in the same turn of the event loop go
out in one write, and their replies usually come back in one read: a system call is shared by
every request in flight, where redis-py makes two per command.

Errors are ``redis.exceptions`` types, so callers handle them as they handle redis-py's: a lost
connection fails the calls waiting on it with ``ConnectionError`` and the next call reconnects;
a reply slower than ``timeout`` drops the connection (``TimeoutError`` for the waiting calls).
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
import time
from typing import Any, cast

import hiredis
from redis.connection import parse_url
from redis.exceptions import ConnectionError, NoScriptError, RedisError, ResponseError, TimeoutError


def _command(*parts: bytes | str | int) -> bytes:
    command: bytes = hiredis.pack_command(parts)  # type: ignore[arg-type]  # (its stub reads a 1-tuple)
    return command


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: PipelinedRedis) -> None:
        self.owner = owner
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[tuple[asyncio.Future[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost: Exception | None = None
        self.outgoing: list[bytes] = []

    def send(self, command: bytes, future: asyncio.Future[Any]) -> None:
        self.waiting.append((future, time.monotonic()))
        if not self.outgoing:
            asyncio.get_running_loop().call_soon(self.write_out)
        self.outgoing.append(command)

    def write_out(self) -> None:
        commands, self.outgoing = self.outgoing, []
        if self.lost is None and self.transport is not None:
            self.transport.write(b"".join(commands))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass it

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            try:
                reply = self.reader.gets()
            except hiredis.ProtocolError as exc:
                self.fail(ConnectionError(f"Redis protocol error: {exc}"))
                return
            if reply is False:
                return
            future, _ = self.waiting.popleft()
            if not future.done():
                if isinstance(reply, hiredis.ReplyError):
                    text = str(reply)
                    future.set_exception(NoScriptError(text) if text.startswith("NOSCRIPT") else ResponseError(text))
                else:
                    future.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"Redis connection lost: {exc or 'closed'}"))

    def fail(self, error: Exception) -> None:
        self.lost = self.lost or error
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)
        self.owner.forget(self)


class PipelinedRedis:
    """``await PipelinedRedis(url).evalsha(script, keys, args)``: Lua scripts over one connection."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        self._options = parse_url(url)  # type: ignore[no-untyped-call]
        self._tls = url.startswith("rediss://")
        self._timeout = timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Task[_Protocol] | None = None
        self._watchdog: asyncio.TimerHandle | None = None

    async def evalsha(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """Runs ``script`` by its SHA1; sends the text once if Redis does not know it yet."""
        sha = _sha1(script)
        try:
            return await self.call("EVALSHA", sha, len(keys), *keys, *args)
        except NoScriptError:
            return await self.call("EVAL", script, len(keys), *keys, *args)

    async def call(self, *parts: bytes | str | int) -> Any:
        protocol = self._protocol or await self._connect()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        protocol.send(_command(*parts), future)
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(self._timeout, self._check_overdue)
        return await future

    def forget(self, protocol: _Protocol) -> None:
        if self._protocol is protocol:
            self._protocol = None

    async def aclose(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._protocol is not None:
            self._protocol.fail(ConnectionError("closed"))

    def _check_overdue(self) -> None:
        self._watchdog = None
        protocol = self._protocol
        if protocol is None or not protocol.waiting:
            return
        oldest = protocol.waiting[0][1]
        if time.monotonic() - oldest >= self._timeout:
            protocol.fail(TimeoutError(f"Redis did not answer within {self._timeout:g} s"))
            return
        self._watchdog = asyncio.get_running_loop().call_later(
            self._timeout - (time.monotonic() - oldest), self._check_overdue)

    async def _connect(self) -> _Protocol:
        # concurrent first callers share one connection attempt
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        try:
            return await asyncio.shield(connecting)
        finally:
            if connecting.done() and self._connecting is connecting:
                self._connecting = None

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        options = self._options
        try:
            async with asyncio.timeout(self._timeout):
                if "path" in options:
                    _, protocol = await loop.create_unix_connection(lambda: _Protocol(self), options["path"])
                else:
                    _, protocol = await loop.create_connection(
                        lambda: _Protocol(self), options.get("host", "localhost"), options.get("port", 6379),
                        ssl=ssl.create_default_context() if self._tls else None)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to Redis: {exc}") from exc
        self._protocol = protocol
        try:
            if options.get("password"):
                auth = [options["username"], options["password"]] if options.get("username") else [options["password"]]
                await self.call("AUTH", *auth)
            if options.get("db"):
                await self.call("SELECT", options["db"])
        except RedisError:
            protocol.fail(ConnectionError("Redis refused the connection's AUTH or SELECT"))
            raise
        return protocol


_shas: dict[str, str] = {}


def _sha1(script: str) -> str:
    sha = _shas.get(script)
    if sha is None:
        # Redis names scripts by SHA1: an identifier, not a security measure
        sha = _shas[script] = hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()
    return sha
