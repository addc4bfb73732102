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
        ("[server]\nrecovery_timeout_seconds = '10 s'\n", "server.recovery_timeout_seconds: expected seconds or a Go"),
        ("[server]\nrecovery_timeout_seconds = '5x'\n", "Go duration"),
        ("[server]\nlog_format = 'xml'\n", "server.log_format: must be text or json"),
        ("[tracing]\nprotocol = 'udp'\n", "tracing.protocol: must be grpc or http/protobuf"),
        ("[tracing]\nsampling_ratio = 2\n", "tracing.sampling_ratio: must be between 0 and 1"),
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


def test_unknown_keys_warn_with_file_and_key_and_fail_when_strict() -> None:
    text = "[server]\nsockt = '/a'\n[nope]\na = 1\n[runtime.handlers.kata]\nflavour = 'x'\n"
    cfg = config.parse(text, "f.toml")
    assert cfg.warnings == [
        "f.toml: ignoring unknown key server.sockt (known: log_format, log_level, metrics_address, "
        "recovery_timeout_seconds, root_dir, socket, state_dir)",
        "f.toml: ignoring unknown section [nope] (known: server, containerd, runtime, image, network, "
        "streaming, logs, tracing, nri)",
        "f.toml: ignoring unknown key runtime.handlers.kata.flavour (known: binary_name, "
        "privileged_without_host_devices, root, runtime_type)",
    ]
    assert cfg.server.socket == config.ServerConfig().socket
    with pytest.raises(config.ConfigError, match=r"^f\.toml: unknown key server\.sockt"):
        config.parse(text, "f.toml", strict=True)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1m30s", 90.0), ("300ms", 0.3), ("1h", 3600.0), ("1.5h", 5400.0), ("0", 0.0), ("2m0.5s", 120.5),
     ("1h2m3s4ms5us6ns", 3723.004005006), ("5m0s", 300.0)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert config.parse_go_duration(text, "k") == pytest.approx(seconds)
    cfg = config.parse(f"[image]\nimage_pull_progress_timeout_seconds = '{text}'\n", "f.toml")
    assert cfg.image.image_pull_progress_timeout_seconds == pytest.approx(seconds)


def test_drop_ins_merge_key_by_key_in_lexical_order(tmp_path: Path) -> None:
    main = tmp_path / "config.toml"
    main.write_text("[server]\nlog_level = 'warning'\nsocket = '/run/a.sock'\n"
                    "[runtime.handlers.kata]\nruntime_type = 'io.containerd.kata.v2'\n")
    drop = tmp_path / "config.d"
    drop.mkdir()
    (drop / "20-b.toml").write_text("[server]\nlog_level = 'error'\n")
    (drop / "10-a.toml").write_text("[server]\nlog_level = 'debug'\n[image]\nmax_concurrent_downloads = 7\n"
                                    "[runtime.handlers.kata]\nroot = '/run/kata'\n")
    (drop / "ignored.conf").write_text("[server]\nlog_level = 'nonsense'\n")
    cfg = config.load(str(main), str(drop))
    assert cfg.server.log_level == "error"  # 20-b wins over 10-a
    assert cfg.server.socket == "/run/a.sock"  # untouched keys of the same table survive
    assert cfg.image.max_concurrent_downloads == 7
    assert cfg.runtime.handlers["kata"].runtime_type == "io.containerd.kata.v2"
    assert cfg.runtime.handlers["kata"].root == "/run/kata"
    assert cfg.origins["server.log_level"] == str(drop / "20-b.toml")
    assert cfg.origins["server.socket"] == str(main)
    dump = config.render_effective(cfg)
    assert f'log_level = "error"  # from {drop / "20-b.toml"}' in dump
    assert f'max_concurrent_downloads = 7  # from {drop / "10-a.toml"}' in dump
    assert 'namespace = "k8s.io"\n' in dump


def test_drop_in_error_names_the_file_that_set_the_key(tmp_path: Path) -> None:
    main = tmp_path / "config.toml"
    main.write_text("[streaming]\nport = 1\n")
    drop = tmp_path / "d"
    drop.mkdir()
    (drop / "50-bad.toml").write_text("[streaming]\nport = 99999\n")
    with pytest.raises(config.ConfigError) as info:
        config.load(str(main), str(drop))
    assert str(info.value).startswith(f"{drop / '50-bad.toml'}: streaming.port: must be between")


def test_missing_config_dir_is_empty(tmp_path: Path) -> None:
    cfg = config.load(None, str(tmp_path / "absent"))
    assert cfg.warnings == []
