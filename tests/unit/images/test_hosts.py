"""hosts.toml directory semantics, as containerd's remotes/docker/config reads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri_runtime.images import hosts


def write(root: Path, name: str, text: str) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "hosts.toml").write_text(text)
    return d


def test_no_config_means_upstream_https(tmp_path: Path) -> None:
    (h,) = hosts.registry_hosts(str(tmp_path), "quay.io")
    assert (h.scheme, h.host, h.path) == ("https", "quay.io", "/v2")
    assert h.capabilities == hosts.ALL_CAPABILITIES
    assert h.implicit
    (d,) = hosts.registry_hosts("", "docker.io")
    assert d.base_url == "https://registry-1.docker.io/v2"


def test_mirrors_in_file_order_then_server(tmp_path: Path) -> None:
    write(tmp_path, "docker.io", '''
server = "https://registry-1.docker.io"

[host."http://mirror-b:5000"]
  capabilities = ["pull", "resolve"]

[host."https://mirror-a.example/prefix"]
  capabilities = ["pull"]
  skip_verify = true
  ca = "ca.pem"
  client = [["c.pem", "k.pem"], "both.pem"]
  [host."https://mirror-a.example/prefix".header]
    x-one = "1"
    x-many = ["a", "b"]
''')
    result = hosts.registry_hosts(str(tmp_path), "docker.io")
    assert [h.base_url for h in result] == [
        "http://mirror-b:5000/v2", "https://mirror-a.example/prefix/v2", "https://registry-1.docker.io/v2"]
    b, a, up = result
    assert b.capabilities == {"pull", "resolve"}
    assert a.capabilities == {"pull"}
    assert a.skip_verify is True
    base = str(tmp_path / "docker.io")
    assert a.ca_files == (f"{base}/ca.pem",)
    assert a.client_pairs == ((f"{base}/c.pem", f"{base}/k.pem"), (f"{base}/both.pem", ""))
    assert a.headers == (("x-one", "1"), ("x-many", "a"), ("x-many", "b"))
    assert up.capabilities == hosts.ALL_CAPABILITIES and not up.implicit


def test_missing_server_falls_back_to_registry(tmp_path: Path) -> None:
    write(tmp_path, "registry.k8s.io", '[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n')
    result = hosts.registry_hosts(str(tmp_path), "registry.k8s.io")
    assert [h.base_url for h in result] == ["http://127.0.0.1:5000/v2", "https://registry.k8s.io/v2"]
    assert result[-1].implicit


def test_override_path_and_v2_suffix(tmp_path: Path) -> None:
    write(tmp_path, "example.com", '''
[host."https://m1.example/custom/api"]
  override_path = true
[host."https://m2.example/v2"]
[host."https://m3.example/a/../b/"]
''')
    paths = [h.path for h in hosts.registry_hosts(str(tmp_path), "example.com")]
    assert paths == ["/custom/api", "/v2", "/b/v2", "/v2"]


def test_server_without_scheme_is_https(tmp_path: Path) -> None:
    write(tmp_path, "example.com", 'server = "mirror.example:8443"\n')
    (h,) = hosts.registry_hosts(str(tmp_path), "example.com")
    assert (h.scheme, h.host, h.path) == ("https", "mirror.example:8443", "/v2")


def test_port_directory_and_default_dir(tmp_path: Path) -> None:
    write(tmp_path, "reg_5000_", 'server = "http://port-dir:1"\n')
    write(tmp_path, "reg:5000", 'server = "http://colon-dir:1"\n')
    write(tmp_path, "_default", 'server = "http://default:1"\n')
    assert hosts.registry_hosts(str(tmp_path), "reg:5000")[0].host == "port-dir:1"
    assert hosts.registry_hosts(str(tmp_path), "other.io")[0].host == "default:1"
    assert hosts.host_directory_candidates("/r", "h:1") == ["/r/h_1_", "/r/h:1", "/r/_default"]
    assert hosts.host_directory_candidates("/r", "h") == ["/r/h", "/r/_default"]


def test_cert_files_without_hosts_toml(tmp_path: Path) -> None:
    d = tmp_path / "secure.io"
    d.mkdir()
    (d / "ca.crt").write_text("x")
    (d / "client.cert").write_text("x")
    (d / "client.key").write_text("x")
    (d / "lonely.cert").write_text("x")
    (h,) = hosts.registry_hosts(str(tmp_path), "secure.io")
    assert h.base_url == "https://secure.io/v2"
    assert h.ca_files == (str(d / "ca.crt"),)
    assert set(h.client_pairs) == {(str(d / "client.cert"), str(d / "client.key")), (str(d / "lonely.cert"), "")}


def test_broken_toml_falls_back_to_cert_files(tmp_path: Path) -> None:
    d = write(tmp_path, "bad.io", "this is [not toml")
    (d / "ca.crt").write_text("x")
    (h,) = hosts.registry_hosts(str(tmp_path), "bad.io")
    assert h.host == "bad.io" and h.ca_files == (str(d / "ca.crt"),)


def test_unknown_capability_rejects_file(tmp_path: Path) -> None:
    write(tmp_path, "x.io", '[host."http://m"]\n  capabilities = ["fly"]\n')
    (h,) = hosts.registry_hosts(str(tmp_path), "x.io")
    assert h.host == "x.io"  # whole file ignored, like containerd


def test_capabilities_filter() -> None:
    h = hosts.RegistryHost("http", "m", "/v2", frozenset({"pull"}))
    assert h.can("pull") and not h.can("resolve")


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("localhost:5000", True), ("127.0.0.1:80", True), ("[::1]:5000", True),
    ("::1", True), ("example.com", False), ("10.0.0.1:5000", False)])
def test_is_loopback(host: str, loopback: bool) -> None:
    assert hosts.is_loopback_host(host) is loopback
