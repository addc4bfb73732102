"""Which changed keys a SIGHUP applies live, and which need a restart."""

from __future__ import annotations

from cri_runtime import config, reload


def test_changed_keys_split_into_live_and_restart() -> None:
    old = config.parse("[server]\nlog_level = 'info'\n", "a.toml")
    new = config.parse("[server]\nlog_level = 'debug'\nsocket = '/run/x.sock'\n"
                       "[network]\ncni_conf_dir = '/etc/other'\n[tracing]\nendpoint = '127.0.0.1:4317'\n"
                       "[runtime.handlers.kata]\nruntime_type = 'io.containerd.kata.v2'\n", "b.toml")
    keys = reload.changed_keys(old, new)
    live, restart = reload.split(keys)
    assert live == ["network.cni_conf_dir", "server.log_level", "tracing.endpoint"]
    assert "server.socket" in restart
    assert "runtime.handlers.kata.runtime_type" in restart
    assert not set(live) & set(restart)


def test_copy_live_updates_the_running_sections_in_place() -> None:
    running = config.parse("", "a.toml")
    network_section = running.network
    new = config.parse("[server]\nlog_level = 'error'\nsocket = '/run/x.sock'\n"
                       "[network]\ncni_bin_dirs = ['/x']\n", "b.toml")
    live, _ = reload.split(reload.changed_keys(running, new))
    reload.copy_live(running, new, live)
    assert running.server.log_level == "error"
    assert running.server.socket == config.ServerConfig().socket  # needs restart: untouched
    assert running.network is network_section and network_section.cni_bin_dirs == ["/x"]
