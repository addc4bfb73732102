"""usage_nano_cores from successive samples."""

from __future__ import annotations

from cri_runtime.stats.cpu_rate import CpuRateTracker

S = 1_000_000_000


def test_first_sample_has_no_rate_then_one_core() -> None:
    t = CpuRateTracker()
    assert t.rate("c", 10 * S, 100 * S) is None
    assert t.rate("c", 12 * S, 102 * S) == S  # 2 s of CPU in 2 s


def test_close_polls_keep_the_reference_window() -> None:
    t = CpuRateTracker(window_ns=S)
    t.rate("c", 0, 0)
    assert t.rate("c", S // 4, S // 2) == S // 2  # half a core over 0.5 s; reference kept (< window)
    assert t.rate("c", S, 2 * S) == S // 2  # over 2 s from the original reference; reference replaced
    assert t.rate("c", S + 1000, 2 * S + 1000) == S // 2  # too close to the new reference: last rate again
    assert t.rate("c", 2 * S, 3 * S) == S  # now measured from t=2s


def test_counter_going_back_resets() -> None:
    t = CpuRateTracker()
    t.rate("c", 10 * S, 10 * S)
    assert t.rate("c", 1 * S, 12 * S) is None
    assert t.rate("c", 2 * S, 14 * S) == S // 2


def test_forget_and_retain() -> None:
    t = CpuRateTracker()
    t.rate("a", 0, 0)
    t.rate("b", 0, 0)
    t.retain({"a"})
    assert t.rate("b", S, S) is None
    assert t.rate("a", S, S) == S
    t.forget("a")
    assert t.rate("a", 2 * S, 2 * S) is None
