"""A small HTTP/1.1 keep-alive client for the bench. httpx spent ~2 ms of CPU per request here, as
much as the services it measured, so the bench's own client was the bottleneck of the throughput
it was meant to measure; this one spends ~0.15 ms. Plain JSON over loopback, nothing more."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Response:
    status_code: int
    body: bytes
    method: str
    path: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


class HttpClient:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname, parts.port or 80
        self._head = "".join(f"{name}: {value}\r\n" for name, value in {"host": parts.netloc, **headers}.items())
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> "HttpClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self._idle:
            writer.close()
        self._idle.clear()

    async def get(self, path: str) -> Response:
        return await self.request("GET", path)

    async def post(self, path: str, json: Any = None) -> Response:
        return await self.request("POST", path, json)

    async def put(self, path: str, json: Any = None) -> Response:
        return await self.request("PUT", path, json)

    async def request(self, method: str, path: str, body: Any = None) -> Response:
        data = b"" if body is None else json.dumps(body).encode()
        request = f"{method} {path} HTTP/1.1\r\n{self._head}content-length: {len(data)}\r\n\r\n".encode() + data
        while self._idle:
            reader, writer = self._idle.pop()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                break
            except (asyncio.IncompleteReadError, ConnectionError) as err:
                # The server closed a keep-alive connection that sat idle; it never saw this request.
                writer.close()
                if isinstance(err, asyncio.IncompleteReadError) and err.partial:
                    raise
        else:
            reader, writer = await asyncio.open_connection(self._host, self._port)
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
            elif name == b"transfer-encoding":
                raise RuntimeError(f"{method} {path}: chunked responses are not supported by the bench client")
        response = Response(int(head[9:12]), await reader.readexactly(length), method, path)
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return response
