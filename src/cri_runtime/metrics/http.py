"""Serve the metrics on `/metrics` and containerd's `/v1/metrics` from a daemon thread.

prometheus-client renders the exposition (and negotiates OpenMetrics from
the Accept header); the stdlib http.server serves it. A thread keeps scrapes
off the event loop, so a slow scraper never delays a CRI call.
"""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)

PATHS = ("/metrics", "/v1/metrics")


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class MetricsHttpServer:
    def __init__(self, address: str, registry: CollectorRegistry) -> None:
        self.address = address
        self.registry = registry
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("metrics server is not running")
        return int(self._httpd.server_address[1])

    def start(self) -> None:
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] not in PATHS:
                    self.send_error(404, "metrics are served on /metrics and /v1/metrics")
                    return
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                body = encoder(registry)
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics http: " + format, *args)

        host, port = split_address(self.address)
        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()
        log.info("serving metrics", extra={"fields": {"address": f"{host}:{self.port}", "paths": ",".join(PATHS)}})

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
