"""A loopback HTTP server for download tests, and a guard that keeps tests off the network.

The server answers GET requests from a table of routes built by the test: whole files, HTTP
``Range`` requests (``206`` / ``416``), responses cut short after a byte offset, HTML pages (Google
Drive style confirm pages), cookies, and routes that only match a given query string. Every request
is logged with its ``Range`` header and the number of body bytes sent.
"""

from __future__ import annotations

import re
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Route:
    """How one path (and optionally query) is answered.

    Attributes:
        body: the file's bytes.
        query: the route only matches requests whose query holds these values.
        content_type: ``Content-Type`` header.
        status: status of a whole-file answer (404 etc. send the body as the error page).
        ranges: honour ``Range: bytes=N-`` requests.
        cut_after: stop sending at this byte offset of the file while announcing the full length.
        cut_times: how many answers are cut (None: all).
        set_cookie: a ``Set-Cookie`` header value.
    """

    body: bytes
    query: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    status: int = 200
    ranges: bool = True
    cut_after: int | None = None
    cut_times: int | None = None
    set_cookie: str | None = None


@dataclass
class Hit:
    path: str
    range: str | None
    cookie: str | None
    status: int
    sent: int


class LocalServer:
    """``with LocalServer() as server: url = server.add("/f.bin", data)``."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, Route]] = []
        self.hits: list[Hit] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                owner._answer(self)

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def add(self, path: str, body: bytes, **options) -> str:
        """Serve ``body`` at ``path`` (routes added first win); returns the URL."""
        route = Route(body=body, **options)
        self.routes.append((path, route))
        query = f"?{urllib.parse.urlencode(route.query)}" if route.query else ""
        return f"{self.base}{path}{query}"

    def __enter__(self) -> LocalServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _route(self, path: str, query: dict[str, str]) -> Route | None:
        for route_path, route in self.routes:
            if route_path == path and all(query.get(k) == v for k, v in route.query.items()):
                return route
        return None

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        requested = handler.headers.get("Range")
        route = self._route(parts.path, query)

        def record(status: int, sent: int) -> None:  # before the body goes out: the client may finish first
            with self._lock:
                self.hits.append(Hit(handler.path, requested, handler.headers.get("Cookie"), status, sent))

        self._send(handler, route, requested, record)

    def _send(self, handler: BaseHTTPRequestHandler, route: Route | None, requested: str | None, record) -> None:
        if route is None:
            record(404, 0)
            handler.send_error(404)
            return
        body, start = route.body, 0
        match = re.fullmatch(r"bytes=(\d+)-", requested or "")
        if match and route.ranges and route.status == 200:
            start = int(match.group(1))
            if start >= len(body):
                record(416, 0)
                handler.send_response(416)
                handler.send_header("Content-Range", f"bytes */{len(body)}")
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            status = 206
            handler.send_response(206)
            handler.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            status = route.status
            handler.send_response(status)
        payload = body[start:]
        handler.send_header("Content-Type", route.content_type)
        handler.send_header("Content-Length", str(len(payload)))
        if route.set_cookie:
            handler.send_header("Set-Cookie", route.set_cookie)
        if route.cut_after is not None and (route.cut_times is None or route.cut_times > 0):
            payload = body[start : max(start, route.cut_after)]
            if route.cut_times is not None:
                route.cut_times -= 1
        record(status, len(payload))
        handler.end_headers()
        handler.wfile.write(payload)
        handler.wfile.flush()
        handler.close_connection = True


def closed_port_url(path: str = "/file.bin") -> str:
    """A loopback URL on which nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def refuse_non_loopback(monkeypatch) -> None:
    """Make any connection or name lookup outside the loopback interface fail in this test."""
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(sock, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise OSError(f"test tried to reach {address!r}")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in LOOPBACK:
            raise socket.gaierror(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "*")
