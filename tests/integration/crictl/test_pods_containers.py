"""Pods and containers through our crictl on containerd's built-in CRI, compared with upstream crictl.

Tables are compared byte for byte (a table holding "N seconds ago" is accepted if it equals one of
two upstream runs taken around ours); JSON/YAML byte for byte; stats by shape (live counters
differ between two samples); errors by their one logrus line (ours names the endpoint in
addition). Where the upstream binary is not installed, each comparison is made with upstream's
output recorded by an earlier run that had it (tests/golden/crictl/live.py), both sides scrubbed
of IDs, times, ages, paths and column padding; nothing skips.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.golden.crictl.live import Recording, Scrubber
from tests.rig import paths
from tests.upstream import OUR_CRICTL, interop_client

from .conftest import SRC, LiveCri, run_crictl

pytestmark = pytest.mark.integration
HEX64 = re.compile(r"^[0-9a-f]{64}$")
QUIET = "mkfifo /tmp/release; echo hello from quiet; cat /tmp/release >/dev/null; echo oops >&2; exec sleep 3600"


@dataclass
class Workload:
    pod: str
    ctr: str
    ticker: str
    pod_config: str


@pytest.fixture(scope="module")
def workload(live_cri: LiveCri) -> Iterator[Workload]:
    """One ready pod with two running containers: a quiet one with fixed logs, and a ticker.

    The quiet one's stderr line is held back (on a fifo) until its stdout line is in the log:
    the two streams are separate pipes, so their order in the log file would otherwise vary
    from run to run, and with it `logs --tail`/`--limit-bytes`, which a recording must match."""
    pod_config = live_cri.pod_config("web")
    ran = live_cri.ours("runp", pod_config)
    assert ran.returncode == 0, ran.stderr
    pod = ran.stdout.strip()
    assert HEX64.match(pod), ran.stdout
    ids = []
    for name, command in (
        ("quiet", ["sh", "-c", QUIET]),
        ("ticker", ["sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; sleep 0.1; done"]),
    ):
        created = live_cri.ours("create", pod, live_cri.container_config(name, command), pod_config)
        assert created.returncode == 0, created.stderr
        ctr = created.stdout.strip()
        assert HEX64.match(ctr), created.stdout
        started = live_cri.ours("start", ctr)
        assert (started.returncode, started.stdout) == (0, ctr + "\n"), started.stderr
        ids.append(ctr)
    _wait_for(lambda: "hello from quiet" in live_cri.ours("logs", ids[0]).stdout)
    released = live_cri.ours("exec", "-s", ids[0], "sh", "-c", "echo > /tmp/release")
    assert released.returncode == 0, released.stderr
    _wait_for(lambda: "oops" in live_cri.ours("logs", ids[0]).stderr)
    yield Workload(pod, ids[0], ids[1], pod_config)
    live_cri.ours("rmp", "-f", pod)


@dataclass
class Upstream:
    """Upstream crictl on the live rig, or its recorded output where it is not installed.

    `run` is upstream's result for a command; `ours` is ours, scrubbed the same way as the
    recording when the recording stands in for upstream (raw when upstream runs live, so the
    comparison stays byte for byte there).
    """

    live: LiveCri
    recording: Recording
    scrub: Scrubber

    def run(self, *args: str, key: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
        scrubbed = [self.scrub(a) for a in args]
        return self.recording.process(key or " ".join(scrubbed), ["crictl", *scrubbed],
                                      lambda: self.live.upstream(*args, timeout=timeout), self.scrub)  # fmt: skip

    def ours(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.view(self.live.ours(*args, timeout=timeout))

    def view(self, done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
        if self.recording.live:
            return done
        return subprocess.CompletedProcess(done.args, done.returncode, self.scrub(done.stdout), self.scrub(done.stderr))


@pytest.fixture(scope="module")
def upstream(live_cri: LiveCri, workload: Workload) -> Upstream:
    scrub = Scrubber()
    for value, name in ((workload.pod, "POD"), (workload.ctr, "CTR"), (workload.ticker, "TICKER")):
        scrub.add(value, f"<{name}>", truncated=True)
    images = live_cri.images
    for image, name in ((images.busybox, "BUSYBOX"), (images.pause, "PAUSE")):
        scrub.add(image.image_id.removeprefix("sha256:"), f"<{name}_ID>", truncated=True)
        scrub.add(image.digest.removeprefix("sha256:"), f"<{name}_DIGEST>")
    scrub.add(images.busybox.ref.split("/", 1)[0], "<REGISTRY>")
    ip = json.loads(live_cri.ours("inspectp", workload.pod).stdout)["status"]["network"]["ip"]
    scrub.add(ip, "<POD_IP>")
    scrub.add(ip.rsplit(".", 1)[0] + ".", "<POD_SUBNET>.")  # the rig's subnet differs between sessions
    scrub.add(str(live_cri.ctrd.tmpdir), "<CONTAINERD>")
    scrub.add(str(live_cri.log_dir), "<LOGS>")
    scrub.add(str(live_cri.config_dir), "<CONFIGS>")
    scrub.add(live_cri.cgroup_parent, "<CGROUP_PARENT>")
    scrub.add(paths.session_token(), "<SESSION>", embedded=True)  # in names: crb<SESSION>6, /crirt-<SESSION>-…
    template = ["-o", "go-template", "--template", "{{.info.pid}}"]
    scrub.add(live_cri.ours("inspectp", *template, workload.pod).stdout.strip(), "<POD_PID>")
    for ctr, name in ((workload.ctr, "<CTR_PID>"), (workload.ticker, "<TICKER_PID>")):
        scrub.add(live_cri.ours("inspect", *template, ctr).stdout.strip(), name)
    return Upstream(live_cri, Recording("pods_containers"), scrub)


def _wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def _fill(args: tuple[str, ...], w: Workload, live: LiveCri) -> list[str]:
    values = {"pod": w.pod, "ctr": w.ctr, "ticker": w.ticker, "image": live.images.busybox.ref}
    return [a.format(**values) for a in args]


def error_lines(stderr: str) -> list[str]:
    """The logrus error messages, without timestamp and without our endpoint suffix."""
    out = []
    for line in stderr.splitlines():
        if "level=error" not in line:
            continue
        assert "Traceback" not in line
        msg = line.split(" msg=", 1)[1]
        out.append(re.sub(r' \(endpoint unix://[^)]*\)"$', '"', msg))
    return out


def assert_same_as_upstream(up: Upstream, args: list[str], *, timed: bool = False) -> subprocess.CompletedProcess[str]:
    """Ours equals upstream; a table with ages is retried until no row's age ticked between the runs.

    Returns our output as printed (not scrubbed)."""
    for _ in range(4 if timed else 1):
        before = up.run(*args)
        raw = up.live.ours(*args)
        mine = up.view(raw)
        after = up.run(*args) if timed else before
        assert mine.returncode == before.returncode, mine.stderr
        assert "Traceback" not in mine.stderr
        assert error_lines(mine.stderr) == error_lines(before.stderr)
        if mine.stdout in (before.stdout, after.stdout):
            return raw
        if before.stdout == after.stdout:
            break  # upstream is stable, so ours really differs
    assert mine.stdout == before.stdout
    return raw


# ------------------------------------------------------------------------------------------ listings


@pytest.mark.parametrize(
    "args",
    [
        ("pods",), ("pods", "-q"), ("pods", "-v"), ("pods", "--no-trunc"), ("pods", "--name", "web"),
        ("pods", "--namespace", "crictl-.*"), ("pods", "-s", "ready"), ("pods", "-s", "notready"),
        ("pods", "--label", "app=web"), ("pods", "--id", "{pod}"), ("pods", "--latest"), ("pods", "-n", "1"),
        ("ps",), ("ps", "-a"), ("ps", "-q"), ("ps", "-a", "-v"), ("ps", "-a", "--no-trunc"),
        ("ps", "-p", "{pod}"), ("ps", "--name", "tick"), ("ps", "-l"), ("ps", "-n", "1"),
        ("ps", "--label", "ctr=quiet"), ("ps", "--image", "{image}"), ("ps", "-r"), ("ps", "-s", "exited"),
        ("ps", "--id", "{ctr}"), ("ps", "--state", "bogus"),
        ("inspectp", "-o", "table", "{pod}"), ("inspect", "-o", "table", "{ctr}"),
    ],
)  # fmt: skip
def test_tables_match_upstream(
    live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]
) -> None:
    assert_same_as_upstream(upstream, _fill(args, workload, live_cri), timed=True)


@pytest.mark.parametrize(
    "args",
    [
        ("pods", "-o", "json"), ("pods", "-o", "yaml"), ("ps", "-a", "-o", "json"), ("ps", "-a", "-o", "yaml"),
        ("inspectp", "{pod}"), ("inspectp", "-o", "yaml", "{pod}"), ("inspectp", "--name", "web"),
        ("inspect", "{ctr}"), ("inspect", "-o", "yaml", "{ctr}"), ("inspect", "{ctr}", "{ticker}"),
        ("inspect", "--name", "quiet"), ("inspect", "-q", "{ctr}"),
        ("inspect", "-o", "go-template", "--template", "{{{{.status.state}}}} {{{{.info.pid}}}}", "{ctr}"),
        ("inspectp", "-o", "go-template", "--template", "{{{{.status.network.ip}}}}", "{pod}"),
        ("inspect", "{ctr}", "-o", "yaml"),
    ],
)  # fmt: skip
def test_structured_output_matches_upstream(
    live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]
) -> None:
    mine = assert_same_as_upstream(upstream, _fill(args, workload, live_cri))
    if mine.returncode == 0 and ("json" in args or "-o" not in args):
        assert isinstance(json.loads(mine.stdout), (dict, list))


def test_pod_has_network_and_listings_work_without_upstream(live_cri: LiveCri, workload: Workload) -> None:
    status = json.loads(live_cri.ours("inspectp", workload.pod).stdout)
    assert status["status"]["state"] == "SANDBOX_READY"
    assert re.match(r"^10\.99\.\d+\.\d+$", status["status"]["network"]["ip"])
    listed = live_cri.ours("ps", "-q", "-p", workload.pod).stdout.split()
    assert sorted(listed) == sorted([workload.ctr, workload.ticker])


# ------------------------------------------------------------------------------------------ logs


@pytest.mark.parametrize(
    "args",
    [
        ("logs", "{ctr}"), ("logs", "-t", "{ctr}"), ("logs", "--tail", "1", "{ctr}"),
        ("logs", "--stream", "stderr", "{ctr}"),
        ("logs", "--limit-bytes", "8", "{ctr}"), ("logs", "--since", "1h", "{ctr}"), ("logs", "-p", "{ctr}"),
        ("logs", "--tail", "1", "--stream", "stdout", "{ctr}"),
    ],
)  # fmt: skip
def test_logs_match_upstream(live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]) -> None:
    filled = _fill(args, workload, live_cri)
    before, mine = upstream.run(*filled), upstream.ours(*filled)
    assert (mine.returncode, mine.stdout) == (before.returncode, before.stdout)
    if before.returncode == 0:
        assert mine.stderr.replace(_warning_lines(mine.stderr), "") == before.stderr.replace(
            _warning_lines(before.stderr), ""
        )
    else:
        assert error_lines(mine.stderr) == error_lines(before.stderr)


def _warning_lines(stderr: str) -> str:
    return "".join(line + "\n" for line in stderr.splitlines() if "level=warning" in line)


def _popen_ours(live: LiveCri, *args: str) -> subprocess.Popen[bytes]:
    import os

    env = {**os.environ, "PYTHONPATH": SRC, "CONTAINER_RUNTIME_ENDPOINT": live.endpoint}
    return subprocess.Popen([*OUR_CRICTL, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip


def test_logs_follow_streams_until_interrupted(live_cri: LiveCri, workload: Workload) -> None:
    proc = _popen_ours(live_cri, "logs", "-f", "--tail", "2", workload.ticker)
    try:
        time.sleep(1.5)
        assert proc.poll() is None, "logs -f ended while the container runs"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    ticks = [int(line.split()[1]) for line in out.decode().splitlines()]
    assert len(ticks) >= 5, out
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks))), "lines lost or repeated while following"
    assert b"Traceback" not in err


def test_logs_follow_ends_when_container_exits(live_cri: LiveCri, workload: Workload) -> None:
    pod_config = workload.pod_config
    created = live_cri.ours(
        "create", workload.pod,
        live_cri.container_config("short", ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; sleep 0.3; done"]),
        pod_config,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    ctr = created.stdout.strip()
    try:
        assert live_cri.ours("start", ctr).returncode == 0
        proc = _popen_ours(live_cri, "logs", "-f", ctr)
        try:
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, err
        assert out.decode() == "".join(f"line {i}\n" for i in range(1, 6))
    finally:
        live_cri.ours("rm", "-f", ctr)


# ------------------------------------------------------------------------------------------ exec -s


@pytest.mark.parametrize(
    "args",
    [
        ("{ctr}", "echo", "hi"),
        ("{ctr}", "sh", "-c", "echo out; echo err >&2"),
        ("{ctr}", "sh", "-c", "echo out; echo err >&2; exit 3"),
        ("--timeout", "1", "{ctr}", "sleep", "3"),
        ("{ctr}", "no-such-binary"),
        ("--name", "quiet", "cat", "/etc/hostname"),
        ("-q", "--name", "quiet", "echo", "x"),
        ("-e", "{ctr}", "false"),
        ("does-not-exist", "true"),
    ],
)
def test_exec_sync_matches_upstream(
    live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]
) -> None:
    filled = ["exec", "-s", *_fill(args, workload, live_cri)]
    before, mine = upstream.run(*filled), upstream.ours(*filled)
    assert (mine.returncode, mine.stdout) == (before.returncode, before.stdout), mine.stderr
    mine_errors = [re.sub(r'failed to start exec \\"[0-9a-f]+\\"', "", e) for e in error_lines(mine.stderr)]
    their_errors = [re.sub(r'failed to start exec \\"[0-9a-f]+\\"', "", e) for e in error_lines(before.stderr)]
    assert mine_errors == their_errors


def test_exec_sync_runs_in_the_container(live_cri: LiveCri, workload: Workload) -> None:
    result = live_cri.ours("exec", "-s", workload.ctr, "sh", "-c", "echo $((6*7)); hostname")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "42"
    failed = live_cri.ours("exec", "-s", workload.ctr, "sh", "-c", "exit 7")
    assert failed.returncode == 1
    assert error_lines(failed.stderr)[0].endswith('exited with 7: "')


# ------------------------------------------------------------------------------------------ stats


def _shape(value: Any) -> Any:
    """JSON with live counters masked: same keys, same non-numeric values; lists in a stable order
    (containerd lists a pod's containers in map order, which changes from call to call).

    A scrubbed timestamp ("<NANOS>") is a counter too: containerd's CRI measures writable layers
    every 10 s, and reports timestamp 0 for a layer it has not measured yet, so a recording and a
    later run may differ there by when they ran, not by what crictl prints.
    """
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return sorted((_shape(v) for v in value), key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, (int, float)) or (isinstance(value, str) and (value.isdigit() or value == "<NANOS>")):
        return "#"
    return value


def _table_shape(text: str) -> list[list[str]]:
    """Cells with numbers masked; the header first, then the rows sorted (containerd returns a
    pod's containers in map order, which differs from one containerd to the next)."""
    lines = text.replace("\x1b[2J\x1b[H", "").splitlines()
    rows = [[re.sub(r"^[0-9.]+([kMG]?i?B)?$", "#", cell) for cell in line.split()] for line in lines]
    return rows[:1] + sorted(rows[1:])


@pytest.mark.parametrize(
    "args",
    [("stats", "-o", "json"), ("stats", "-o", "yaml"), ("statsp", "-o", "json"), ("statsp", "-o", "yaml"),
     ("stats", "-o", "json", "{ctr}"), ("statsp", "-o", "json", "--id", "{pod}"),
     ("stats", "-o", "json", "-p", "{pod}")],
)  # fmt: skip
def test_stats_structured_shape_matches_upstream(
    live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]
) -> None:
    filled = _fill(args, workload, live_cri)
    before, mine = upstream.run(*filled), upstream.ours(*filled)
    assert mine.returncode == before.returncode == 0, mine.stderr
    if "json" in args:
        assert _shape(json.loads(mine.stdout)) == _shape(json.loads(before.stdout))
    else:
        mine_lines = [re.sub(r": .*", "", line) for line in mine.stdout.splitlines()]
        their_lines = [re.sub(r": .*", "", line) for line in before.stdout.splitlines()]
        assert mine_lines == their_lines


@pytest.mark.parametrize(
    "args", [("stats",), ("stats", "-a"), ("statsp",), ("stats", "{ticker}"), ("stats", "-s", "2")]
)
def test_stats_tables_match_upstream_shape(
    live_cri: LiveCri, workload: Workload, upstream: Upstream, args: tuple[str, ...]
) -> None:
    filled = _fill(args, workload, live_cri)
    before, mine = upstream.run(*filled), upstream.ours(*filled)
    assert mine.returncode == before.returncode == 0, mine.stderr
    assert mine.stdout.startswith("\x1b[2J\x1b[H")
    assert _table_shape(mine.stdout) == _table_shape(before.stdout)


def test_stats_show_the_ticker_using_cpu(live_cri: LiveCri, workload: Workload) -> None:
    data = json.loads(live_cri.ours("stats", "-o", "json", workload.ticker).stdout)
    (entry,) = data["stats"]
    assert entry["attributes"]["id"] == workload.ticker
    assert int(entry["cpu"]["usageCoreNanoSeconds"]["value"]) > 0
    pods = json.loads(live_cri.ours("statsp", "-o", "json", workload.pod).stdout)
    assert [p["attributes"]["id"] for p in pods["stats"]] == [workload.pod]
    assert len(pods["stats"][0]["linux"]["containers"]) == 2


# ------------------------------------------------------------------------------------------ update


def _cgroup_value(live: LiveCri, controller: str, ctr: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / controller / live.cgroup_parent.lstrip("/") / ctr / name).read_text().strip()


def test_update_changes_cgroup_limits(live_cri: LiveCri, workload: Workload, upstream: Upstream) -> None:
    result = live_cri.ours("update", "--cpu-share", "256", "--memory", "50000000", workload.ctr)
    assert (result.returncode, result.stdout) == (0, workload.ctr + "\n"), result.stderr
    assert _cgroup_value(live_cri, "cpu", workload.ctr, "cpu.shares") == "256"
    assert int(_cgroup_value(live_cri, "memory", workload.ctr, "memory.limit_in_bytes")) == 50000000 // 4096 * 4096
    # A second client's update (upstream's where installed) lands on the same cgroup.
    theirs = run_crictl(interop_client(), live_cri.endpoint, "update", "--cpu-share", "512", workload.ctr)
    assert theirs.stdout == workload.ctr + "\n", theirs.stderr
    assert _cgroup_value(live_cri, "cpu", workload.ctr, "cpu.shares") == "512"
    assert_errors_equal(upstream, ["update", "--cpu-share", "2", "no-such-container"])
    assert_errors_equal(upstream, ["update"])


def assert_errors_equal(up: Upstream, args: list[str]) -> None:
    mine = up.ours(*args)
    assert mine.returncode == 1
    assert len(error_lines(mine.stderr)) == 1, mine.stderr
    theirs = up.run(*args)
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout)
    assert error_lines(mine.stderr) == error_lines(theirs.stderr)


# ------------------------------------------------------------------------------------------ events


def test_events_match_upstream_or_stream(live_cri: LiveCri, workload: Workload, upstream: Upstream) -> None:
    try:
        mine = upstream.ours("events", timeout=3)
    except subprocess.TimeoutExpired:
        pytest.skip("this containerd streams container events (1.7+); covered by the fake-server unit test")
    assert mine.returncode == 1
    (line,) = error_lines(mine.stderr)
    assert "getting container events: rpc error: code = Unimplemented" in line
    assert error_lines(upstream.run("events", timeout=10).stderr) == [line]


# ------------------------------------------------------------------------------------------ teardown verbs


def _pod_with_container(live: LiveCri, name: str) -> tuple[str, str]:
    config = live.pod_config(name)
    pod = live.ours("runp", config).stdout.strip()
    ctr = live.ours("create", pod, live.container_config(f"{name}-c", ["sleep", "3600"]), config).stdout.strip()
    assert HEX64.match(pod) and HEX64.match(ctr)
    assert live.ours("start", ctr).returncode == 0
    return pod, ctr


TEARDOWN_STEPS = [
    ("rm", "<ctr>"), ("stop", "-t", "1", "<ctr>"), ("stop", "<ctr>"), ("ps", "-a", "-q", "-p", "<pod>"),
    ("rm", "<ctr>"), ("rm", "<ctr>"), ("rmp", "<pod>"), ("stopp", "<pod>"), ("stopp", "<pod>"),
    ("pods", "-q", "--id", "<pod>"), ("rmp", "<pod>"), ("rmp", "<pod>"), ("inspectp", "<pod>"), ("inspect", "<ctr>"),
]  # fmt: skip


def _teardown_transcript(run: Any, pod: str, ctr: str) -> list[tuple[int, str, list[str]]]:
    """stop/rm/stopp/rmp in crictl's order, with IDs replaced so two runs compare."""
    transcript = []
    for template in TEARDOWN_STEPS:
        step = [{"<pod>": pod, "<ctr>": ctr}.get(a, a) for a in template]
        result = run(*step)
        errors = [e.replace(pod, "<pod>").replace(ctr, "<ctr>") for e in error_lines(result.stderr)]
        transcript.append((result.returncode, result.stdout.replace(pod, "<pod>").replace(ctr, "<ctr>"), errors))
    return transcript


def test_stop_and_remove_verbs(live_cri: LiveCri, upstream: Upstream) -> None:
    pod, ctr = _pod_with_container(live_cri, "doomed-a")
    mine = _teardown_transcript(live_cri.ours, pod, ctr)
    assert [step[:2] for step in mine] == [
        (1, ""), (0, "<ctr>\n"), (0, "<ctr>\n"), (0, "<ctr>\n"), (0, "<ctr>\n"), (1, ""),
        (1, ""), (0, "Stopped sandbox <pod>\n"), (0, "Stopped sandbox <pod>\n"), (0, "<pod>\n"),
        (0, "Removed sandbox <pod>\n"), (1, ""), (1, ""), (1, ""),
    ]  # fmt: skip
    assert all(len(step[2]) == step[0] for step in mine), "every failure is exactly one error line"

    def theirs() -> list[tuple[int, str, list[str]]]:
        pod_b, ctr_b = _pod_with_container(live_cri, "doomed-b")
        return _teardown_transcript(live_cri.upstream, pod_b, ctr_b)

    recorded = upstream.recording.value("teardown transcript", [" ".join(["crictl", *step]) for step in TEARDOWN_STEPS],
                                        theirs, lambda t: [list(step) for step in t])  # fmt: skip
    assert [list(step) for step in mine] == [list(step) for step in recorded]


def test_forced_removal_of_running_pod_and_container(live_cri: LiveCri) -> None:
    pod, ctr = _pod_with_container(live_cri, "forced")
    result = live_cri.ours("rm", "-f", ctr)
    assert (result.returncode, result.stdout) == (0, f"{ctr}\n{ctr}\n"), result.stderr
    running = live_cri.ours("rmp", pod)
    assert running.returncode == 1
    assert error_lines(running.stderr) == [f'"pod sandbox \\"{pod}\\" is running, please stop it first"']
    result = live_cri.ours("rmp", "-f", pod)
    assert (result.returncode, result.stdout) == (0, f"Stopped sandbox {pod}\nRemoved sandbox {pod}\n"), result.stderr
