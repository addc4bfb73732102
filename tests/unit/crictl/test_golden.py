"""Our crictl against upstream crictl's recorded output (tests/golden/crictl/upstream.json).

Every case of tests/golden/crictl/cases.py runs through our crictl against the same empty CRI
endpoint the recording used. Where upstream crictl is installed, it is run live too, so a stale
recording shows up as a failure of `test_recording_is_current` rather than as a silent pass;
elsewhere that test checks the recording holds every case, made by the case's own command line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.golden.crictl.cases import CASES, Case
from tests.golden.crictl.fake_cri import empty_cri
from tests.golden.crictl.golden import Result, cases_by_name, expected, recorded, run_case
from tests.upstream import UPSTREAM_CRICTL, upstream_installed

KLOG_LINE = re.compile(r"^[EWI]<KLOG>\] ")
SRC = str(Path(__file__).resolve().parents[3] / "src")
OURS = [sys.executable, "-c", f"import sys; sys.path.insert(0, {SRC!r}); from crictl.main import main; main()"]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with empty_cri() as address:
        yield address


def _run_all(binary: list[str], endpoint: str) -> dict[str, Result]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = pool.map(lambda case: (case.name, run_case(binary, case, endpoint)), CASES)
        return dict(results)


@pytest.fixture(scope="module")
def ours(endpoint: str) -> dict[str, Result]:
    return _run_all(OURS, endpoint)


def _error_lines(stderr: str) -> list[str]:
    """stderr lines, without the klog lines upstream's CRI client library adds (ours has none)."""
    return [line for line in stderr.splitlines() if line.strip() and not KLOG_LINE.match(line)]


def assert_matches(case: Case, got: Result, want: Result) -> None:
    assert got.rc == want.rc, f"{case.args}: exit code {got.rc} != {want.rc}\n{got.stderr}"
    if case.compare in ("all", "stdout"):
        assert got.stdout == want.stdout, f"{case.args}: stdout differs"
        assert got.config_after == want.config_after, f"{case.args}: config file differs"
    if case.compare == "all":
        assert _error_lines(got.stderr) == _error_lines(want.stderr), f"{case.args}: stderr differs"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_recorded_upstream(case: Case, ours: dict[str, Result]) -> None:
    want = expected(cases_by_name()[case.same_as]) if case.same_as else expected(case)
    assert_matches(case, ours[case.name], want)


def test_recording_is_current(endpoint: str) -> None:
    """Every case is recorded from its own argv; and, where upstream is installed, as it prints now."""
    cases = recorded()["cases"]
    assert sorted(cases) == sorted(case.name for case in CASES), "re-run tests/golden/crictl/record.py"
    for case in CASES:
        argv = [a.replace("{config}", "<DIR>/crictl.yaml") for a in case.args]
        assert cases[case.name]["argv"] == argv, f"{case.name}: recorded from another command line"
    if not upstream_installed():
        return  # nothing to run live here: the recording is what upstream printed where it ran
    live = _run_all([str(UPSTREAM_CRICTL)], endpoint)
    stale = []
    for case in CASES:
        try:
            assert_matches(case, live[case.name], expected(case))
        except AssertionError:
            stale.append(case.name)
    assert not stale, f"re-run tests/golden/crictl/record.py: {stale}"


_RPC_ERROR = re.compile(r"rpc error: code = .*")


def _rpc_error(result: Result) -> str | None:
    lines = _error_lines(result.stderr)
    found = _RPC_ERROR.search(lines[-1]) if lines else None
    return found.group(0) if found else None


_DIAL_FAILURES = [c for c in CASES if c.unreachable and _rpc_error(expected(c)) is not None]


@pytest.mark.parametrize("case", _DIAL_FAILURES, ids=[c.name for c in _DIAL_FAILURES])
def test_unreachable_endpoint_error_is_worded_as_upstreams(case: Case, ours: dict[str, Result]) -> None:
    """The gRPC part of the error (grpc-go's dial error, which our client words the same way);
    what some commands put before it is held to `compare` above."""
    assert _rpc_error(ours[case.name]) == _rpc_error(expected(case))
