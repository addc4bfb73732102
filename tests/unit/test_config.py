"""Config parsing and validation: every bad input names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_runtime import config


def test_defaults_render_and_parse_back() -> None:
    text = config.render_default()
    parsed = config.parse(text, "defaults.toml")
    assert parsed.to_dict() == config.Config().to_dict()
    assert "# Unix socket the CRI gRPC server listens on." in text


def test_values_override_defaults() -> None:
    cfg = config.parse(
        '[server]\nsocket = "/run/x/x.sock"\n[image]\nmax_concurrent_downloads = 8\n'
        '[streaming]\nport = 10010\n[network]\ncni_plugin_timeout_seconds = 5\n',
        "f.toml",
    )
    assert cfg.server.socket == "/run/x/x.sock"
    assert cfg.image.max_concurrent_downloads == 8
    assert cfg.streaming.port == 10010
    assert cfg.network.cni_plugin_timeout_seconds == 5.0
    assert cfg.containerd.namespace == "k8s.io"


def test_extra_handler_keeps_runc() -> None:
    cfg = config.parse('[runtime.handlers.kata]\nruntime_type = "io.containerd.kata.v2"\n', "f.toml")
    assert set(cfg.runtime.handlers) == {"runc", "kata"}
    assert cfg.runtime.handlers["kata"].runtime_type == "io.containerd.kata.v2"
    assert cfg.runtime.handlers["runc"].runtime_type == "io.containerd.runc.v2"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[server]\nsocket = 1\n", "f.toml: server.socket: expected string, got int 1"),
        ("[server]\nsockt = '/a'\n", "f.toml: server.sockt: unknown key"),
        ("[nope]\na = 1\n", "f.toml: unknown section [nope]"),
        ("[server]\nsocket = 'relative.sock'\n", "server.socket: must be an absolute path"),
        ("[server]\nsocket = '/" + "a" * 120 + "'\n", "server.socket: unix socket paths are limited"),
        ("[server]\nlog_level = 'loud'\n", "server.log_level: must be debug, info"),
        ("[runtime]\ncgroup_driver = 'x'\n", "runtime.cgroup_driver: must be cgroupfs or systemd"),
        ("[runtime]\ndefault_handler = 'kata'\n", "runtime.default_handler: 'kata' is not among"),
        ("[runtime.handlers.k]\nruntime_type = 'kata'\n", "runtime.handlers.k.runtime_type"),
        ("[runtime]\ncdi_spec_dirs = ['/etc/cdi', 'cdi']\n", "runtime.cdi_spec_dirs[1]: must be an absolute"),
        ("[runtime]\nuserns_rootfs = 'chown'\n", "runtime.userns_rootfs: must be auto or copy"),
        ("[image]\nmax_concurrent_downloads = 0\n", "image.max_concurrent_downloads: must be between"),
        ("[image]\nmax_concurrent_downloads = true\n", "expected integer, got boolean"),
        ("[network]\ncni_bin_dirs = 'x'\n", "network.cni_bin_dirs: expected list of string"),
        ("[network]\ncni_bin_dirs = ['/ok', 'rel']\n", "network.cni_bin_dirs[1]: must be an absolute"),
        ("[streaming]\nport = 70000\n", "streaming.port: must be between 0 and 65535"),
        ("[streaming]\naddress = 'localhost'\n", "streaming.address: must be an IP address"),
        ("[streaming]\ntls_cert_file = '/c.pem'\n", "tls_cert_file and tls_key_file go together"),
        ("[logs]\nmax_container_log_line_size = 0\n", "must be positive or -1"),
        ("[server]\nmetrics_address = 'nohost'\n", "server.metrics_address: expected host:port"),
        ("server = 3\n", "f.toml: server must be a table"),
        ("[server\n", "f.toml: not valid TOML"),
    ],
)
def test_bad_config_is_rejected_with_file_and_key(text: str, expected: str) -> None:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, "f.toml")
    assert expected in str(info.value)
    assert str(info.value).startswith("f.toml")


def test_load_missing_file_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(config.ConfigError, match=r"none\.toml: cannot read"):
        config.load(str(missing))


def test_load_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[containerd]\naddress = '/tmp/c.sock'\n")
    cfg = config.load(str(path))
    assert cfg.containerd.address == "/tmp/c.sock"
    assert cfg.source == str(path)
