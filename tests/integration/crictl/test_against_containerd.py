"""Our crictl against containerd's built-in CRI, compared with upstream crictl.

Upstream runs live where it is installed; elsewhere ours is compared with upstream's output
recorded against the same steps (tests/golden/crictl/live.py), both scrubbed of the image's
IDs, sizes and the registry's and containerd's addresses, which change between runs.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest

from tests.golden.crictl.live import Recording, Scrubber
from tests.upstream import OUR_CRICTL, SRC, UPSTREAM_CRICTL

pytestmark = pytest.mark.integration
RECORDING = Recording("against_containerd")
_HUMAN_SIZE = re.compile(r"\b\d+(?:\.\d+)?[kMG]?B\b")  # the image's size follows Debian's busybox


def ours(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": SRC, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
    return subprocess.run([*OUR_CRICTL, *args], env=env, capture_output=True, text=True, timeout=60)


def upstream(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONTAINER_RUNTIME_ENDPOINT": endpoint}
    return subprocess.run([str(UPSTREAM_CRICTL), *args], env=env, capture_output=True, text=True, timeout=60)


def _scrubber(containerd_cri: Any, test_images: Any, endpoint: str) -> Scrubber:
    scrub = Scrubber()
    busybox = test_images.busybox
    scrub.add(busybox.image_id.removeprefix("sha256:"), "<IMAGE_ID>", truncated=True)
    scrub.add(busybox.digest.removeprefix("sha256:"), "<DIGEST>", truncated=True)
    scrub.add(busybox.ref.split("/", 1)[0], "<REGISTRY>")
    scrub.add(str(containerd_cri.tmpdir), "<CONTAINERD>")
    size = ours(endpoint, "inspecti", "-o", "go-template", "--template", "{{.status.size}}", busybox.ref)
    scrub.add(size.stdout.strip(), "<SIZE_BYTES>")
    return scrub


def compare(pulled: tuple[str, str, Scrubber], *args: str) -> tuple[subprocess.CompletedProcess[str], ...]:
    """(ours, upstream's) for one command: both raw where upstream runs live, else both scrubbed."""
    endpoint, _, scrub = pulled

    def full(text: str) -> str:
        return _HUMAN_SIZE.sub("<SIZE>", scrub(text))

    mine = ours(endpoint, *args)
    scrubbed = [full(a) for a in args]
    theirs = RECORDING.process(" ".join(scrubbed), ["crictl", *scrubbed], lambda: upstream(endpoint, *args), full)
    if not RECORDING.live:
        mine = subprocess.CompletedProcess(mine.args, mine.returncode, full(mine.stdout), full(mine.stderr))
    return mine, theirs


@pytest.fixture(scope="module")
def pulled(containerd_cri: Any, registry: Any, test_images: Any) -> Any:
    containerd_cri.add_registry_host(registry.host, "http://" + registry.host)
    endpoint = "unix://" + str(containerd_cri.address)
    ref = test_images.busybox.ref
    result = ours(endpoint, "pull", ref)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Image is up to date for sha256:")
    yield endpoint, ref, _scrubber(containerd_cri, test_images, endpoint)
    ours(endpoint, "rmi", ref)


def test_version_and_images(pulled: tuple[str, str, Scrubber]) -> None:
    endpoint, ref, _ = pulled
    result = ours(endpoint, "version")
    assert result.returncode == 0 and "RuntimeName:  containerd" in result.stdout
    result = ours(endpoint, "images")
    repo, tag = ref.rsplit(":", 1)
    assert any(line.split()[:2] == [repo, tag] for line in result.stdout.splitlines()[1:])
    result = ours(endpoint, "inspecti", "-o", "go-template", "--template", "{{index .status.repoTags 0}}", ref)
    assert result.stdout == ref + "\n"


def test_missing_container_is_one_line_error(pulled: tuple[str, str, Scrubber]) -> None:
    endpoint, _, _ = pulled
    result = ours(endpoint, "inspect", "does-not-exist")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if "level=error" in line]
    assert len(errors) == 1 and "NotFound" in errors[0] and "Traceback" not in result.stderr


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
def test_byte_for_byte_with_upstream(pulled: tuple[str, str, Scrubber], args: tuple[str, ...]) -> None:
    mine, theirs = compare(pulled, *args)
    assert mine.returncode == theirs.returncode
    assert mine.stdout == theirs.stdout


def test_inspecti_matches_upstream(pulled: tuple[str, str, Scrubber]) -> None:
    ref = pulled[1]
    for args in (("inspecti", ref), ("inspecti", "-o", "yaml", ref), ("inspecti", "-o", "table", ref)):
        mine, theirs = compare(pulled, *args)
        assert mine.stdout == theirs.stdout
