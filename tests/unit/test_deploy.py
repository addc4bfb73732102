"""The shipped systemd unit and config examples stay what the README promises."""

from __future__ import annotations

import configparser
from pathlib import Path

from cri_runtime import config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubelet"


def test_unit_is_notify_with_reload_and_containerd_limits() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "cri-runtime.service")
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["KillMode"] == "process"
    assert service["TasksMax"] == "infinity"
    assert service["LimitNPROC"] == "infinity" and service["LimitCORE"] == "infinity"
    assert "--config-dir /etc/cri-runtime/config.d" in service["ExecStart"]


def test_config_examples_pass_the_strict_check() -> None:
    cfg = config.load(str(DEPLOY / "config.toml"), str(DEPLOY / "config.d"), strict=True)
    assert cfg.server.metrics_address == "127.0.0.1:1338"
    assert cfg.image.image_pull_progress_timeout_seconds == 300.0
    assert cfg.origins["server.metrics_address"] == str(DEPLOY / "config.d" / "50-example.toml")
