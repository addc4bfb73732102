"""usage_nano_cores from successive cumulative CPU samples.

cgroups only count CPU time; a rate needs two samples. We keep, per
container or pod, a reference sample and compute the average rate from it
to the current one. The reference is replaced only once it is at least
`window_ns` old, so two clients polling a few milliseconds apart (kubelet and
crictl) do not shrink the window to noise, while a kubelet polling every 10 s
gets the average over its own interval. Without a usable reference the rate
is left unset (as containerd and cAdvisor do on a first sample), never
reported as a made-up zero.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

DEFAULT_WINDOW_NS = 1_000_000_000
MIN_INTERVAL_NS = 10_000_000


@dataclass(frozen=True)
class CpuPoint:
    usage_ns: int
    timestamp_ns: int


class CpuRateTracker:
    """Reference CPU samples per ID; thread-safe (the metrics HTTP thread may read too)."""

    def __init__(self, window_ns: int = DEFAULT_WINDOW_NS, min_interval_ns: int = MIN_INTERVAL_NS) -> None:
        self.window_ns = window_ns
        self.min_interval_ns = min_interval_ns
        self._refs: dict[str, CpuPoint] = {}
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def rate(self, key: str, usage_ns: int, timestamp_ns: int) -> int | None:
        """Nanocores between the reference sample and this one, or None if not computable yet."""
        point = CpuPoint(usage_ns, timestamp_ns)
        with self._lock:
            ref = self._refs.get(key)
            if ref is None or usage_ns < ref.usage_ns or timestamp_ns < ref.timestamp_ns:
                # First sight, or the counter went backwards (a new cgroup under the same ID).
                self._refs[key] = point
                self._last.pop(key, None)
                return None
            interval = timestamp_ns - ref.timestamp_ns
            if interval < self.min_interval_ns:
                return self._last.get(key)
            nano_cores = (usage_ns - ref.usage_ns) * 1_000_000_000 // interval
            self._last[key] = nano_cores
            if interval >= self.window_ns:
                self._refs[key] = point
            return nano_cores

    def forget(self, key: str) -> None:
        with self._lock:
            self._refs.pop(key, None)
            self._last.pop(key, None)

    def retain(self, keys: set[str]) -> None:
        """Drop references of IDs that no longer exist."""
        with self._lock:
            for key in [k for k in self._refs if k not in keys]:
                del self._refs[key]
                self._last.pop(key, None)
