"""Session fixtures of the test rig, the ``integration`` marker and the leak check.

Fixtures (all session-scoped, started only when a test asks for them):

* ``containerd``     -- :class:`tests.rig.containerd.PrivateContainerd`, built-in CRI *off*:
  the containerd our own server is tested against. Use ``.address`` (socket path),
  ``.namespace`` (``k8s.io``), ``.hosts_dir`` (registry hosts config to hand to the server),
  ``.runc_root`` (pass as runc ``Root`` option), ``.ctr(...)`` to inspect it.
* ``containerd_cri`` -- the same with containerd's built-in CRI plugin *on* (reference
  implementation for side-by-side tests; its CRI endpoint is ``unix://`` + ``.address``).
* ``registry``       -- :class:`tests.rig.registry.LocalRegistry`, plain HTTP, no auth.
* ``auth_registry``  -- a second registry requiring Basic auth (``.credentials``).
* ``tls_registry``   -- a third one serving HTTPS with a self-signed cert (``.ca_file``).
* ``test_images``    -- :class:`tests.rig.images.TestImages` pushed to ``registry``.
* ``root_only``      -- skips the requesting test unless root with containerd/runc/registry.

A fixture that starts cri-runtime should put its state dir, socket and netns dir under
:func:`tests.rig.paths.make_dir` so the leak check can attribute what it leaves behind.

Everything under ``tests/integration`` is marked ``integration`` and skipped with a reason
when not root or a required binary is missing. At the end of the session the leak check
(:mod:`tests.rig.leaks`) compares host state with the start and fails the run (exit
status 1) listing every leaked process, mount, netns, link, IP allocation or file.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.rig.containerd import PrivateContainerd
from tests.rig.images import TestImages, push_standard_images
from tests.rig.leaks import LeakChecker
from tests.rig.registry import REGISTRY_BIN, LocalRegistry

INTEGRATION_DIR = Path(__file__).resolve().parent / "integration"
REQUIRED_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc", REGISTRY_BIN)
AUTH_CREDENTIALS = ("tester", "s3cret-pass")

_leak_checker = pytest.StashKey[LeakChecker]()
_leaks = pytest.StashKey[list[str]]()


def integration_unavailable() -> str | None:
    """Why integration tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "integration tests need root"
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if missing:
        return f"integration tests need {', '.join(missing)} (not installed)"
    return None


# ------------------------------------------------------------------------ hooks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests under tests/integration and skip them when the host cannot run them."""
    reason = integration_unavailable()
    for item in items:
        if INTEGRATION_DIR in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)
            if reason:
                item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_leak_checker] = LeakChecker()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Runs after every session fixture is torn down: fail the run on any leak."""
    checker = session.config.stash.get(_leak_checker, None)
    if checker is None:
        return
    leaks = checker.check()
    session.config.stash[_leaks] = leaks
    if leaks and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    leaks = config.stash.get(_leaks, [])
    if leaks:
        terminalreporter.section("LEAK CHECK FAILED", sep="=", red=True, bold=True)
        for leak in leaks:
            terminalreporter.line(f"leaked: {leak}", red=True)
        terminalreporter.line(
            "(on a machine shared with other runtimes, CRIRT_LEAK_SCOPE=session limits the "
            "check to what this session provably made)"
        )


# --------------------------------------------------------------------- fixtures
@pytest.fixture
def root_only() -> None:
    """Skip the test unless root with containerd, runc and docker-registry installed."""
    reason = integration_unavailable()
    if reason:
        pytest.skip(reason)


def _stop_containerd(ctrd: PrivateContainerd) -> None:
    problems = ctrd.stop()
    if problems:
        pytest.fail("private containerd cleanup: " + "; ".join(problems))


@pytest.fixture(scope="session")
def containerd() -> Iterator[PrivateContainerd]:
    """Private containerd with the built-in CRI plugin disabled (for our server)."""
    reason = integration_unavailable()
    if reason:
        pytest.skip(reason)
    ctrd = PrivateContainerd(with_cri=False).start()
    yield ctrd
    _stop_containerd(ctrd)


@pytest.fixture(scope="session")
def containerd_cri() -> Iterator[PrivateContainerd]:
    """Private containerd with its built-in CRI plugin (the reference implementation)."""
    reason = integration_unavailable()
    if reason:
        pytest.skip(reason)
    ctrd = PrivateContainerd(with_cri=True).start()
    yield ctrd
    _stop_containerd(ctrd)


def _registry(**kwargs: object) -> Iterator[LocalRegistry]:
    reason = integration_unavailable()
    if reason:
        pytest.skip(reason)
    reg = LocalRegistry(**kwargs).start()  # type: ignore[arg-type]
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    """Local plain-HTTP registry without auth; ``registry.host`` is ``127.0.0.1:PORT``."""
    yield from _registry()


@pytest.fixture(scope="session")
def auth_registry() -> Iterator[LocalRegistry]:
    """Local registry requiring HTTP Basic auth with ``auth_registry.credentials``."""
    yield from _registry(auth=AUTH_CREDENTIALS)


@pytest.fixture(scope="session")
def tls_registry() -> Iterator[LocalRegistry]:
    """Local HTTPS registry; trust ``tls_registry.ca_file`` (self-signed, SAN 127.0.0.1)."""
    yield from _registry(tls=True)


@pytest.fixture(scope="session")
def test_images(registry: LocalRegistry) -> TestImages:
    """The standard images (see :mod:`tests.rig.images`) pushed to ``registry``."""
    return push_standard_images(registry)
