from __future__ import annotations

import pytest

from cri_runtime.durations import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    ("0s", 0.0), ("0", 0.0), ("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1.5h", 5400.0), ("2us", 2e-6),
])  # fmt: skip
def test_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1s2", "ten seconds"])
def test_reject(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
