"""Local HTTP endpoints for tests (nothing here reaches a network): `serve(respond)` answers
every GET and POST on 127.0.0.1 with what `respond(request_body)` returns, and `closed_port()`
is a port nothing listens on."""

from __future__ import annotations

import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Callable, Iterator

Respond = Callable[[bytes], tuple[str, bytes]]  # request body -> (content type, response body)


@contextmanager
def serve(respond: Respond, status=200) -> Iterator[str]:
    """`with serve(fn) as base_url:` a server on 127.0.0.1 until the block ends, answering with
    HTTP `status` (or `status(path)`)."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            kind, out = respond(body)
            self.send_response(status(self.path) if callable(status) else status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_POST = _answer  # noqa: N815  (http.server's names)

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
