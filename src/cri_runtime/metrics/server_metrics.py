"""The server's own metrics: RPCs by method and code, their latency, image pulls, objects by state.

`SERVER` is the process-wide instance: the RPC wrappers in
`services/status.py` call `SERVER.observe_rpc(...)`, so no servicer needs a
reference. Gauges of containers/pods by state are computed at scrape time
from the managers once `track_objects` has been called.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable

from cri_runtime.metrics.registry import Counter, Gauge, Histogram, LabelValues, Registry

PREFIX = "cri_runtime"


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = Registry()
        self.rpcs = Counter(f"{PREFIX}_grpc_requests_total", "CRI RPCs handled, by method and status code.",
                            ("method", "code"))
        self.rpc_seconds = Histogram(f"{PREFIX}_grpc_request_duration_seconds",
                                     "Time to handle a CRI RPC (streams: until the stream ends), by method.",
                                     ("method",))
        self.pulls = Counter(f"{PREFIX}_image_pulls_total", "Image pulls, by result (success or failure).",
                             ("result",))
        self.pull_bytes = Counter(f"{PREFIX}_image_pull_bytes_total",
                                  "Bytes of image content (manifest, config, layers) of successful pulls.")
        self.pull_seconds = Histogram(f"{PREFIX}_image_pull_duration_seconds", "Time to pull an image.",
                                      buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600))
        for family in (self.rpcs, self.rpc_seconds, self.pulls, self.pull_bytes, self.pull_seconds):
            self.registry.register(family)

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpcs.inc(method, code)
        self.rpc_seconds.observe(seconds, method)

    def observe_pull(self, ok: bool, seconds: float, size_bytes: int = 0) -> None:
        self.pulls.inc("success" if ok else "failure")
        if ok:
            self.pull_seconds.observe(seconds)
            if size_bytes > 0:
                self.pull_bytes.inc(amount=float(size_bytes))

    def track_objects(self, containers: Callable[[], Iterable[str]], pods: Callable[[], Iterable[str]]) -> None:
        """Register gauges counting containers and pods by state (callables yield one state per object)."""
        def by_state(states: Callable[[], Iterable[str]]) -> Callable[[], list[tuple[LabelValues, float]]]:
            def collect() -> list[tuple[LabelValues, float]]:
                return [((state,), float(n)) for state, n in Tally(states()).items()]
            return collect

        for name in (f"{PREFIX}_containers", f"{PREFIX}_pod_sandboxes"):
            self.registry.unregister(name)
        self.registry.register(Gauge(f"{PREFIX}_containers", "Containers known to the runtime, by state.",
                                     ("state",), by_state(containers)))
        self.registry.register(Gauge(f"{PREFIX}_pod_sandboxes", "Pod sandboxes known to the runtime, by state.",
                                     ("state",), by_state(pods)))


SERVER = ServerMetrics()
