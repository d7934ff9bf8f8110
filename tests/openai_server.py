"""A local OpenAI-compatible embeddings server for tests: real vectors, scripted failures."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from rag.config import EmbedderConfig
from rag.embedding import HashEmbedder


class EmbeddingsServer:
    """Serves ``POST /v1/embeddings`` on 127.0.0.1 (a free port) in a background thread.

    ``failures`` holds ``(status, headers)`` to answer before succeeding again; ``delay``
    slows every answer (to observe concurrency); requests and the peak in flight are recorded.
    """

    def __init__(self, *, dimensions: int = 384, delay: float = 0.0) -> None:
        self.embedder = HashEmbedder(EmbedderConfig(kind="hash", dimensions=dimensions))
        self.delay = delay
        self.failures: deque[tuple[int, dict[str, str]]] = deque()
        self.requests: list[dict] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> EmbeddingsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                """Quiet: the tests read ``server.requests`` instead."""

            def do_POST(self) -> None:  # noqa: N802 - the http.server naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.requests.append(body)
                    server.times.append(time.monotonic())
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                    failure = server.failures.popleft() if server.failures else None
                try:
                    time.sleep(server.delay)
                    if self.path != "/v1/embeddings":
                        self._send(404, {"error": {"message": "not found"}})
                    elif failure is not None:
                        status, headers = failure
                        self._send(status, {"error": {"message": f"scripted {status}"}}, headers)
                    else:
                        data = [
                            {
                                "object": "embedding",
                                "index": i,
                                "embedding": server.embedder.embed_one(text),
                            }
                            for i, text in enumerate(body["input"])
                        ]
                        self._send(200, {"object": "list", "data": data, "model": body["model"]})
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                raw = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

        return Handler
