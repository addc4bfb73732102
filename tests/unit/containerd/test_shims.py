"""Finding a stuck runc exec and a task's shim in a process table (a fake /proc tree)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_runtime.containerd import shims
from cri_runtime.containerd.connection import Containerd
from cri_runtime.containerd.deadlines import DEFAULT_TASK_CALL_TIMEOUT, default_timeout

ADDR = "/run/test/containerd.sock"


def _proc(root: Path, pid: int, ppid: int, argv: list[str], comm: str = "x") -> None:
    d = root / str(pid)
    d.mkdir()
    (d / "stat").write_bytes(f"{pid} ({comm}) S {ppid} 1 1 0 -1".encode())
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")


@pytest.fixture
def table(tmp_path: Path) -> list[shims.Proc]:
    shim = "/usr/bin/containerd-shim-runc-v2"
    _proc(tmp_path, 100, 1, [shim, "-namespace", "k8s.io", "-id", "pod1", "-address", ADDR])
    _proc(tmp_path, 101, 100, ["/pause"])
    _proc(tmp_path, 102, 100, ["sleep", "3600"])
    _proc(tmp_path, 103, 102, ["sh"], comm="a) b")  # a name with ") " must not confuse the parser
    _proc(tmp_path, 110, 100, ["runc", "--root", "/r", "exec", "--process", "/tmp/p.json", "--detach",
                               "--pid-file", "/run/b/pod1/exec-abc.pid", "c1"])
    _proc(tmp_path, 111, 110, ["runc", "init"])
    _proc(tmp_path, 200, 1, [shim, "-namespace", "k8s.io", "-id", "pod2", "-address", "/other/containerd.sock"])
    _proc(tmp_path, 201, 200, ["runc", "exec", "--pid-file", "/run/b/pod2/exec-abc.pid", "c2"])
    _proc(tmp_path, 300, 1, [shim, "-namespace", "other", "-id", "pod1", "-address", ADDR])
    (tmp_path / "self").mkdir()
    return shims.process_table(str(tmp_path))


def test_process_table_reads_parent_and_argv(table: list[shims.Proc]) -> None:
    by_pid = {p.pid: p for p in table}
    assert by_pid[103].ppid == 102
    assert by_pid[110].argv[3] == "exec"


@pytest.mark.parametrize(
    ("address", "namespace", "ids", "expected"),
    [
        (ADDR, "k8s.io", ["pod1"], 100),
        ("unix://" + ADDR, "k8s.io", ["c1", "pod1"], 100),  # a container of a grouped shim: the pod's ID
        (ADDR, "other", ["pod1"], 300),
        (ADDR, "k8s.io", ["pod2"], None),  # pod2's shim belongs to another containerd
        (ADDR, "k8s.io", ["nope"], None),
    ],
)
def test_find_shim(table: list[shims.Proc], address: str, namespace: str, ids: list[str],
                   expected: int | None) -> None:
    shim = shims.find_shim(table, address, namespace, ids)
    assert (shim.pid if shim else None) == expected


def test_stuck_runc_matches_only_the_exec_pid_file(table: list[shims.Proc]) -> None:
    assert [p.pid for p in shims.stuck_runc(table, 100, "exec-abc.pid")] == [110]
    assert shims.stuck_runc(table, 100, "exec-other.pid") == []


def test_descendants_parents_first(table: list[shims.Proc]) -> None:
    pids = [p.pid for p in shims.descendants(table, 100)]
    assert sorted(pids) == [101, 102, 103, 110, 111]
    assert pids.index(102) < pids.index(103) and pids.index(110) < pids.index(111)


@pytest.mark.parametrize(
    ("method", "expected"),
    [("Kill", 10.0), ("Wait", None), ("Create", 60.0), ("Metrics", 10.0), ("Pause", DEFAULT_TASK_CALL_TIMEOUT)],
)
def test_task_calls_have_deadlines(method: str, expected: float | None) -> None:
    ctd = Containerd("/nonexistent/containerd.sock", "k8s.io")  # no call is made
    assert default_timeout(getattr(ctd.tasks, method)) == expected


def test_other_services_keep_no_default_deadline() -> None:
    ctd = Containerd("/nonexistent/containerd.sock", "k8s.io")
    assert default_timeout(ctd.content.Read) is None
    assert default_timeout(ctd.containers.Get) is None


def test_kill_stale_execs_picks_only_old_execs_of_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shim = "/usr/bin/containerd-shim-runc-v2"
    hz = 100
    monkeypatch.setattr(shims.os, "sysconf", lambda name: hz)
    (tmp_path / "uptime").write_text("1000.00 5.0\n")

    def proc(pid: int, ppid: int, argv: list[str], started_at: float) -> None:
        _proc(tmp_path, pid, ppid, argv)
        stat = tmp_path / str(pid) / "stat"
        fields = ["S", str(ppid)] + ["0"] * 17 + [str(int(started_at * hz))]
        stat.write_text(f"{pid} (x) " + " ".join(fields))

    proc(100, 1, [shim, "-namespace", "k8s.io", "-id", "pod1", "-address", ADDR], 10)
    proc(110, 100, ["runc", "exec", "--pid-file", "/b/exec-old.pid", "c1"], 500)  # 500 s old: stale
    proc(111, 100, ["runc", "exec", "--pid-file", "/b/exec-new.pid", "c1"], 990)  # 10 s old
    proc(112, 100, ["runc", "exec", "--pid-file", "/b/other.pid", "c1"], 500)  # not one of ours
    killed: list[int] = []
    monkeypatch.setattr(shims.os, "kill", lambda pid, sig: killed.append(pid))
    assert shims.kill_stale_execs(ADDR, "k8s.io", 60.0, proc_root=str(tmp_path)) == [110]
    assert killed == [110]
    # limited to the server's own containers: another server's stuck exec is not ours to kill
    assert shims.kill_stale_execs(ADDR, "k8s.io", 60.0, proc_root=str(tmp_path), container_ids={"c2"}) == []
    assert shims.kill_stale_execs(ADDR, "k8s.io", 60.0, proc_root=str(tmp_path), container_ids={"c1"}) == [110]
