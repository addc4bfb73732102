"""Our crictl against containerd's built-in CRI, compared with upstream crictl when it is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

UPSTREAM = Path("/opt/cri-tools/bin/crictl")
SRC = str(Path(__file__).resolve().parents[3] / "src")


def ours(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
    return subprocess.run([sys.executable, "-m", "crictl", *args], env=env, capture_output=True, text=True, timeout=60)


def upstream(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
    return subprocess.run([str(UPSTREAM), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def pulled(containerd_cri: Any, registry: Any, test_images: Any) -> tuple[str, str]:
    containerd_cri.add_registry_host(registry.host, "http://" + registry.host)
    endpoint = "unix://" + str(containerd_cri.address)
    ref = test_images.busybox.ref
    result = ours(endpoint, "pull", ref)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Image is up to date for sha256:")
    yield endpoint, ref
    ours(endpoint, "rmi", ref)


def test_version_and_images(pulled: tuple[str, str]) -> None:
    endpoint, ref = pulled
    result = ours(endpoint, "version")
    assert result.returncode == 0 and "RuntimeName:  containerd" in result.stdout
    result = ours(endpoint, "images")
    repo, tag = ref.rsplit(":", 1)
    assert any(line.split()[:2] == [repo, tag] for line in result.stdout.splitlines()[1:])
    result = ours(endpoint, "inspecti", "-o", "go-template", "--template", "{{index .status.repoTags 0}}", ref)
    assert result.stdout == ref + "\n"


def test_missing_container_is_one_line_error(pulled: tuple[str, str]) -> None:
    endpoint, _ = pulled
    result = ours(endpoint, "inspect", "does-not-exist")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1 and "NotFound" in errors[0] and "Traceback" not in result.stderr


@pytest.mark.skipif(not UPSTREAM.exists(), reason="upstream crictl not installed at /opt/cri-tools/bin")
@pytest.mark.parametrize(
    "args",
    [
        ("images",),
        ("images", "-q"),
        ("images", "--digests", "--no-trunc"),
        ("images", "-v"),
        ("images", "-o", "json"),
        ("images", "-o", "yaml"),
        ("info", "-o", "yaml"),
        ("runtime-config",),
        ("pods",),
        ("ps", "-a"),
        ("ps", "-a", "-o", "json"),
    ],
)
def test_byte_for_byte_with_upstream(pulled: tuple[str, str], args: tuple[str, ...]) -> None:
    endpoint, _ = pulled
    mine, theirs = ours(endpoint, *args), upstream(endpoint, *args)
    assert mine.returncode == theirs.returncode
    assert mine.stdout == theirs.stdout


@pytest.mark.skipif(not UPSTREAM.exists(), reason="upstream crictl not installed at /opt/cri-tools/bin")
def test_inspecti_matches_upstream(pulled: tuple[str, str]) -> None:
    endpoint, ref = pulled
    for args in (("inspecti", ref), ("inspecti", "-o", "yaml", ref), ("inspecti", "-o", "table", ref)):
        assert ours(endpoint, *args).stdout == upstream(endpoint, *args).stdout
