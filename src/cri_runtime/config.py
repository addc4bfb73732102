"""Configuration: TOML file, defaults, and validation with clear errors.

Each section is a dataclass that validates itself: wrong types and
out-of-range values fail at start-up with the file, the key and what is
wrong, before anything is created. Unknown keys only warn (naming file and
key), as containerd's "Ignoring unknown key" does, so config templates shared
across versions keep working; `config check --strict` makes them fatal.
The main file is merged with the `*.toml` drop-ins of the config directory in
lexical order, tables key by key (CRI-O's crio.conf.d, containerd's imports);
every duration key (a float named `*_seconds`, `*_timeout`, …) also takes a
Go duration string ("1m30s").
`render_default()` prints the commented defaults (`cri-runtime config
default`) from the same field declarations, so documentation and code cannot
drift apart.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

DEFAULT_CONFIG_PATH = "/etc/cri-runtime/config.toml"
DEFAULT_CONFIG_DIR = "/etc/cri-runtime/config.d"


class ConfigError(Exception):
    """A configuration problem, phrased for the operator (file, key, cause)."""


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying the comment printed by `config default`."""
    return field(metadata={"doc": text}, **kwargs)


class Section:
    """Base of all config sections: typed construction from a TOML table."""

    name: ClassVar[str]

    def validate(self, where: str) -> None:
        """Semantic checks beyond types; raise ConfigError naming `where`."""

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str) -> Any:
        hints = typing.get_type_hints(cls)
        known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        kwargs: dict[str, Any] = {}
        for key, value in table.items():
            if key not in known:
                raise ConfigError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
            tp = hints[key]
            if tp is float and isinstance(value, str) and is_duration_key(key):
                value = parse_go_duration(value, f"{where}.{key}")
            kwargs[key] = _coerce(tp, value, f"{where}.{key}")
        obj = cls(**kwargs)
        obj.validate(where)
        return obj


_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


DURATION_SUFFIXES = ("_seconds", "_timeout", "_interval", "_period")


def is_duration_key(key: str) -> bool:
    """Number-of-seconds keys, which also take Go duration strings (containerd spells them "5m0s")."""
    return key.endswith(DURATION_SUFFIXES)


def parse_go_duration(text: str, where: str) -> float:
    """Seconds in a Go duration string ("1m30s", "300ms", "1.5h", "0"), as Go's time.ParseDuration reads it."""
    body = text.strip()
    sign = -1.0 if body.startswith("-") else 1.0
    body = body.lstrip("+-")
    if body == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(body):
        m = _GO_PART.match(body, pos)
        if m is None:
            break
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if not body or pos != len(body):
        raise ConfigError(f"{where}: expected seconds or a Go duration such as \"1m30s\", got {text!r}")
    return sign * total


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return "table"
    if isinstance(tp, type) and issubclass(tp, Section):
        return "table"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}.get(tp, str(tp))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; build nested sections."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        return _coerce(options[0], value, where)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__}")
        return [_coerce(item_tp, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        _, val_tp = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return {k: _coerce(val_tp, v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, Section):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table, got {type(value).__name__}")
        return tp.from_table(value, where)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected integer, got boolean")
    if not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    return value


def _require_abs(path: str, where: str) -> None:
    if not path or not os.path.isabs(path):
        raise ConfigError(f"{where}: must be an absolute path, got {path!r}")


@dataclass
class ServerConfig(Section):
    name = "server"
    socket: str = _doc("Unix socket the CRI gRPC server listens on.", default="/run/cri-runtime/cri-runtime.sock")
    root_dir: str = _doc("Persistent state (pod and container records that must survive reboots).",
                         default="/var/lib/cri-runtime")
    state_dir: str = _doc("Volatile state (status files, fifos, CNI results); survives restarts of "
                          "cri-runtime, not of the machine.", default="/run/cri-runtime/state")
    log_level: str = _doc("debug, info, warning or error.", default="info")
    log_format: str = _doc("text (logfmt) or json (logrus field names: time, level, msg).", default="text")
    recovery_timeout_seconds: float = _doc("Time allowed per object while recovering state at start-up.",
                                           default=10.0)
    metrics_address: str = _doc("host:port for Prometheus metrics of the server itself; empty = off.",
                                default="")

    def validate(self, where: str) -> None:
        _require_abs(self.socket, f"{where}.socket")
        if len(self.socket.encode()) > 107:
            raise ConfigError(f"{where}.socket: unix socket paths are limited to 107 bytes")
        _require_abs(self.root_dir, f"{where}.root_dir")
        _require_abs(self.state_dir, f"{where}.state_dir")
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{where}.log_level: must be debug, info, warning or error, got {self.log_level!r}")
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"{where}.log_format: must be text or json, got {self.log_format!r}")
        if self.recovery_timeout_seconds <= 0:
            raise ConfigError(f"{where}.recovery_timeout_seconds: must be positive")
        if self.metrics_address:
            _split_host_port(self.metrics_address, f"{where}.metrics_address")


@dataclass
class ContainerdConfig(Section):
    name = "containerd"
    address: str = _doc("containerd's gRPC socket.", default="/run/containerd/containerd.sock")
    namespace: str = _doc("containerd namespace for every object we create.", default="k8s.io")
    snapshotter: str = _doc("Snapshotter for image layers and container root filesystems.",
                            default="overlayfs")
    connect_timeout_seconds: float = _doc("How long start-up waits for containerd to answer.",
                                          default=10.0)

    def validate(self, where: str) -> None:
        _require_abs(self.address.removeprefix("unix://"), f"{where}.address")
        if not self.namespace:
            raise ConfigError(f"{where}.namespace: must not be empty")
        if not self.snapshotter:
            raise ConfigError(f"{where}.snapshotter: must not be empty")
        if self.connect_timeout_seconds <= 0:
            raise ConfigError(f"{where}.connect_timeout_seconds: must be positive")


@dataclass
class RuntimeHandlerConfig(Section):
    name = "handler"
    runtime_type: str = _doc("containerd runtime (shim) name.", default="io.containerd.runc.v2")
    binary_name: str = _doc("runc binary the shim runs; empty = runc from PATH.", default="")
    root: str = _doc("runc state directory (runc --root); empty = the shim's default "
                     "/run/containerd/runc/<namespace>.", default="")
    privileged_without_host_devices: bool = _doc(
        "Privileged containers of this handler do not get the host's devices.", default=False)

    def validate(self, where: str) -> None:
        if not self.runtime_type.startswith("io.containerd."):
            raise ConfigError(f"{where}.runtime_type: expected a containerd runtime name such as "
                              f"io.containerd.runc.v2, got {self.runtime_type!r}")
        if self.root:
            _require_abs(self.root, f"{where}.root")


def _default_handlers() -> dict[str, RuntimeHandlerConfig]:
    return {"runc": RuntimeHandlerConfig()}


@dataclass
class RuntimeConfig(Section):
    name = "runtime"
    default_handler: str = _doc("Handler used when a pod names none (RuntimeHandler \"\").", default="runc")
    cgroup_driver: str = _doc("cgroupfs or systemd; must match kubelet's cgroupDriver.", default="cgroupfs")
    restrict_oom_score_adj: str = _doc(
        "Clamp oom_score_adj to our own value: \"auto\" (on when we lack CAP_SYS_RESOURCE), "
        "\"true\" or \"false\".", default="auto")
    relay_cgroup: str = _doc(
        "cgroup (path in every mounted hierarchy, cgroupfs) the container IO relays run in, apart from the "
        "server's, so restarting or limiting the service never touches them; empty = the server's own.",
        default="/cri-runtime-relays")
    handlers: dict[str, RuntimeHandlerConfig] = _doc("Runtime handlers by name ([runtime.handlers.NAME]).",
                                                     default_factory=_default_handlers)
    drain_exec_sync_io_timeout: float = _doc(
        "containerd's option of that name (seconds, or a Go duration such as \"10s\"): how long ExecSync "
        "waits for the command's output to close after it exited (a background child may hold it); "
        "0 = until the caller's deadline.", default=0.0)
    enable_cdi: bool = _doc("Resolve CDI devices (ContainerConfig.CDI_devices, cdi.k8s.io/* annotations).",
                            default=True)
    cdi_spec_dirs: list[str] = _doc("CDI spec directories, lowest priority first (a later one overrides).",
                                    default_factory=lambda: ["/etc/cdi", "/var/run/cdi"])
    userns_rootfs: str = _doc(
        "How user-namespaced pods get a usable rootfs: \"auto\" (idmapped layers and volumes when the "
        "start-up self-check finds them working, else a chowned copy-up of the snapshot) or \"copy\".",
        default="auto")

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str) -> Any:
        # Handlers named in the file are added to (or replace) the built-in
        # ones, so declaring an extra handler does not silently drop runc.
        merged = dict(table)
        if isinstance(table.get("handlers"), dict):
            merged["handlers"] = {"runc": {}, **table["handlers"]}
        return super().from_table(merged, where)

    def validate(self, where: str) -> None:
        if self.cgroup_driver not in ("cgroupfs", "systemd"):
            raise ConfigError(f"{where}.cgroup_driver: must be cgroupfs or systemd, got {self.cgroup_driver!r}")
        if self.restrict_oom_score_adj not in ("auto", "true", "false"):
            raise ConfigError(f"{where}.restrict_oom_score_adj: must be auto, true or false")
        if self.drain_exec_sync_io_timeout < 0:
            raise ConfigError(f"{where}.drain_exec_sync_io_timeout: must not be negative")
        if self.relay_cgroup and (not self.relay_cgroup.startswith("/") or ".." in self.relay_cgroup.split("/")):
            raise ConfigError(f"{where}.relay_cgroup: must be an absolute cgroup path without '..', "
                              f"got {self.relay_cgroup!r}")
        if self.userns_rootfs not in ("auto", "copy"):
            raise ConfigError(f"{where}.userns_rootfs: must be auto or copy, got {self.userns_rootfs!r}")
        for i, d in enumerate(self.cdi_spec_dirs):
            _require_abs(d, f"{where}.cdi_spec_dirs[{i}]")
        if self.default_handler not in self.handlers:
            raise ConfigError(f"{where}.default_handler: {self.default_handler!r} is not among "
                              f"the handlers ({', '.join(sorted(self.handlers)) or 'none'})")


@dataclass
class ImageConfig(Section):
    name = "image"
    sandbox_image: str = _doc("Image of the pause container that holds a pod's namespaces.",
                              default="registry.k8s.io/pause:3.10")
    registry_config_path: str = _doc(
        "Directory of per-registry hosts.toml files (containerd's certs.d format); empty = none.",
        default="/etc/containerd/certs.d")
    max_concurrent_downloads: int = _doc("Layers downloaded in parallel per pull.", default=3)
    image_pull_progress_timeout_seconds: float = _doc(
        "Cancel a pull when no byte arrives for this long; 0 = never.", default=300.0)
    image_volumes: str = _doc(
        "VOLUMEs an image config declares: \"bind\" (a per-container directory seeded with the image's "
        "content, as containerd does), \"mkdir\" (only create the path in the rootfs) or \"ignore\".",
        default="bind")

    def validate(self, where: str) -> None:
        if not self.sandbox_image:
            raise ConfigError(f"{where}.sandbox_image: must not be empty")
        if self.registry_config_path:
            _require_abs(self.registry_config_path, f"{where}.registry_config_path")
        if not 1 <= self.max_concurrent_downloads <= 64:
            raise ConfigError(f"{where}.max_concurrent_downloads: must be between 1 and 64")
        if self.image_pull_progress_timeout_seconds < 0:
            raise ConfigError(f"{where}.image_pull_progress_timeout_seconds: must not be negative")
        if self.image_volumes not in ("bind", "mkdir", "ignore"):
            raise ConfigError(f"{where}.image_volumes: must be bind, mkdir or ignore, got {self.image_volumes!r}")


@dataclass
class NetworkConfig(Section):
    name = "network"
    cni_bin_dirs: list[str] = _doc("Directories searched for CNI plugin binaries, in order.",
                                   default_factory=lambda: ["/usr/lib/cni", "/opt/cni/bin"])
    cni_conf_dir: str = _doc("Directory of CNI network configs; the first file in lexical order wins.",
                             default="/etc/cni/net.d")
    cni_conf_template: str = _doc(
        "A CNI config template rendered with the pod CIDR from UpdateRuntimeConfig; empty = off.",
        default="")
    cni_plugin_timeout_seconds: float = _doc("Upper bound for one CNI ADD/DEL call.", default=60.0)

    def validate(self, where: str) -> None:
        if not self.cni_bin_dirs:
            raise ConfigError(f"{where}.cni_bin_dirs: needs at least one directory")
        for i, d in enumerate(self.cni_bin_dirs):
            _require_abs(d, f"{where}.cni_bin_dirs[{i}]")
        _require_abs(self.cni_conf_dir, f"{where}.cni_conf_dir")
        if self.cni_conf_template:
            _require_abs(self.cni_conf_template, f"{where}.cni_conf_template")
        if self.cni_plugin_timeout_seconds <= 0:
            raise ConfigError(f"{where}.cni_plugin_timeout_seconds: must be positive")


@dataclass
class StreamingConfig(Section):
    name = "streaming"
    address: str = _doc("Address of the streaming (exec/attach/port-forward) server.", default="127.0.0.1")
    port: int = _doc("Port of the streaming server; 0 = a free port.", default=0)
    tls_cert_file: str = _doc("PEM certificate for TLS; empty = plain HTTP.", default="")
    tls_key_file: str = _doc("PEM key for TLS.", default="")
    idle_timeout_seconds: float = _doc("Close a stream with no traffic after this long.", default=14400.0)

    def validate(self, where: str) -> None:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            raise ConfigError(f"{where}.address: must be an IP address, got {self.address!r}") from None
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"{where}.port: must be between 0 and 65535, got {self.port}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError(f"{where}: tls_cert_file and tls_key_file go together")
        if self.idle_timeout_seconds <= 0:
            raise ConfigError(f"{where}.idle_timeout_seconds: must be positive")


@dataclass
class LogsConfig(Section):
    name = "logs"
    max_container_log_line_size: int = _doc(
        "Longer lines are split into partial (P) records of this many bytes; -1 = no limit.",
        default=16384)

    def validate(self, where: str) -> None:
        if self.max_container_log_line_size == 0 or self.max_container_log_line_size < -1:
            raise ConfigError(f"{where}.max_container_log_line_size: must be positive or -1")


@dataclass
class TracingConfig(Section):
    name = "tracing"
    endpoint: str = _doc("OTLP collector: host:port for grpc, a URL for http/protobuf; empty = tracing off.",
                         default="")
    protocol: str = _doc("OTLP transport: grpc or http/protobuf.", default="grpc")
    sampling_ratio: float = _doc("Fraction of new traces sampled (a sampled parent is always followed).",
                                 default=1.0)
    service_name: str = _doc("service.name resource attribute of every span.", default="cri-runtime")
    insecure: bool = _doc("Plain-text gRPC to the collector (no TLS).", default=True)

    def validate(self, where: str) -> None:
        if self.protocol not in ("grpc", "http/protobuf"):
            raise ConfigError(f"{where}.protocol: must be grpc or http/protobuf, got {self.protocol!r}")
        if not 0.0 <= self.sampling_ratio <= 1.0:
            raise ConfigError(f"{where}.sampling_ratio: must be between 0 and 1, got {self.sampling_ratio}")
        if not self.service_name:
            raise ConfigError(f"{where}.service_name: must not be empty")
        if self.endpoint and self.protocol == "http/protobuf" and "://" not in self.endpoint:
            raise ConfigError(f"{where}.endpoint: http/protobuf needs a URL such as "
                              f"http://127.0.0.1:4318/v1/traces, got {self.endpoint!r}")


@dataclass
class NriConfig(Section):
    """NRI, the Node Resource Interface (containerd's `io.containerd.nri.v1.nri` options and defaults)."""

    name = "nri"
    enable: bool = _doc("Host NRI plugins (containerd 2.x has it on by default).", default=True)
    socket_path: str = _doc("Socket external plugins connect to.", default="/var/run/nri/nri.sock")
    plugin_path: str = _doc("Pre-installed plugins (executables named NN-name) launched at start-up.",
                            default="/opt/nri/plugins")
    plugin_config_path: str = _doc("Configuration of pre-installed plugins (NN-name.conf or name.conf).",
                                   default="/etc/nri/conf.d")
    plugin_registration_timeout: float = _doc("How long a connected plugin may take to register.", default=5.0)
    plugin_request_timeout: float = _doc("How long a plugin may take to answer one event; then it is "
                                         "disconnected and the event goes on without it.", default=2.0)
    disable_connections: bool = _doc("Only launch pre-installed plugins; accept no external connections.",
                                     default=False)

    def validate(self, where: str) -> None:
        _require_abs(self.socket_path, f"{where}.socket_path")
        for key in ("plugin_registration_timeout", "plugin_request_timeout"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{where}.{key}: must be positive")


@dataclass
class Config:
    """The whole configuration; every section has complete defaults."""

    server: ServerConfig = field(default_factory=ServerConfig)
    containerd: ContainerdConfig = field(default_factory=ContainerdConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    image: ImageConfig = field(default_factory=ImageConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    streaming: StreamingConfig = field(default_factory=StreamingConfig)
    logs: LogsConfig = field(default_factory=LogsConfig)
    tracing: TracingConfig = field(default_factory=TracingConfig)
    nri: NriConfig = field(default_factory=NriConfig)
    # Files read, in merge order ("," joined); which file set each dotted key; unknown-key warnings.
    source: str = ""
    origins: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for `Status(verbose)` and logs."""
        data = dataclasses.asdict(self)
        for meta in ("source", "origins", "warnings"):
            data.pop(meta)
        return data


SECTIONS: dict[str, type[Section]] = {
    s.name: s
    for s in (ServerConfig, ContainerdConfig, RuntimeConfig, ImageConfig, NetworkConfig, StreamingConfig,
              LogsConfig, TracingConfig, NriConfig)
}


def _section_keys(cls: type[Section]) -> dict[str, Any]:
    return {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _prune(data: dict[str, Any], source: str, warnings: list[str]) -> dict[str, Any]:
    """`data` without the keys no section knows; each dropped key adds a warning naming file and key."""
    pruned: dict[str, Any] = {}
    for key, value in data.items():
        section = SECTIONS.get(key)
        if section is None:
            warnings.append(f"{source}: ignoring unknown section [{key}] (known: {', '.join(SECTIONS)})")
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key} must be a table")
        pruned[key] = _prune_table(section, value, key, source, warnings)
    return pruned


def _prune_table(cls: type[Section], table: dict[str, Any], where: str, source: str,
                 warnings: list[str]) -> dict[str, Any]:
    known = _section_keys(cls)
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            warnings.append(f"{source}: ignoring unknown key {where}.{key} (known: {', '.join(sorted(known))})")
            continue
        tp = hints[key]
        if typing.get_origin(tp) is dict and isinstance(value, dict):
            _, val_tp = typing.get_args(tp)
            if isinstance(val_tp, type) and issubclass(val_tp, Section):
                value = {name: _prune_table(val_tp, sub, f"{where}.{key}.{name}", source, warnings)
                         if isinstance(sub, dict) else sub for name, sub in value.items()}
        out[key] = value
    return out


def _merge(base: dict[str, Any], over: dict[str, Any], source: str, origins: dict[str, str],
           prefix: str = "") -> None:
    """Merge `over` into `base`: tables key by key, anything else replaced; record who set each leaf."""
    for key, value in over.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, source, origins, dotted + ".")
        else:
            base[key] = value
            for stale in [k for k in origins if k.startswith(dotted + ".")]:
                del origins[stale]
            _record(value, dotted, source, origins)


def _record(value: Any, dotted: str, source: str, origins: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _record(v, f"{dotted}.{k}", source, origins)
    else:
        origins[dotted] = source


_KEY_AT_START = re.compile(r"^([A-Za-z0-9_.\-]+)")


def _blame(message: str, origins: dict[str, str], sources: list[str]) -> str:
    """The file that set the key an error message starts with (the last file read if none did)."""
    match = _KEY_AT_START.match(message)
    key = match.group(1) if match else ""
    while key:
        if key in origins:
            return origins[key]
        under = [src for k, src in origins.items() if k.startswith(key + ".")]
        if under:
            return under[-1]
        key = key.rpartition(".")[0]
    return sources[-1] if sources else "(defaults)"


def build(layers: list[tuple[str, dict[str, Any]]], *, strict: bool = False) -> Config:
    """Merge raw TOML tables in order (later wins) into a validated Config.

    Unknown keys are dropped with a warning (an error when `strict`); every
    error names the file that set the offending key.
    """
    warnings: list[str] = []
    merged: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for source, data in layers:
        _merge(merged, _prune(data, source, warnings), source, origins)
    sources = [source for source, _ in layers]
    if strict and warnings:
        raise ConfigError(warnings[0].replace("ignoring unknown", "unknown", 1))
    kwargs: dict[str, Any] = {}
    for key, value in merged.items():
        try:
            kwargs[key] = SECTIONS[key].from_table(value, key)
        except ConfigError as exc:
            raise ConfigError(f"{_blame(str(exc), origins, sources)}: {exc}") from None
    return Config(source=",".join(sources) or "(defaults)", origins=origins, warnings=warnings, **kwargs)


def _read_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None


def parse(text: str, source: str, *, strict: bool = False) -> Config:
    """Build a Config from TOML text; errors name `source` and the key."""
    return build([(source, _read_toml(text, source))], strict=strict)


def _read_file(path: str) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return _read_toml(text, path)


def drop_in_files(config_dir: str) -> list[str]:
    """The `*.toml` files of `config_dir` in lexical order; a missing directory has none."""
    if not os.path.exists(config_dir):
        return []
    if not os.path.isdir(config_dir):
        raise ConfigError(f"{config_dir}: config directory is not a directory")
    try:
        names = sorted(n for n in os.listdir(config_dir) if n.endswith(".toml") and not n.startswith("."))
    except OSError as exc:
        raise ConfigError(f"{config_dir}: cannot list: {exc.strerror}") from None
    return [os.path.join(config_dir, n) for n in names]


def load(path: str | None, config_dir: str | None = None, *, strict: bool = False) -> Config:
    """Load `path` (default: the default file if it exists) merged with the drop-ins of `config_dir`."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if path is None and os.path.exists(DEFAULT_CONFIG_PATH):
        path = DEFAULT_CONFIG_PATH
    if path is not None:
        layers.append((path, _read_file(path)))
    if config_dir:
        layers.extend((f, _read_file(f)) for f in drop_in_files(config_dir))
    return build(layers, strict=strict)


def _split_host_port(value: str, where: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{where}: expected host:port, got {value!r}")
    return host.strip("[]"), int(port)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


def _render_section(lines: list[str], header: str, obj: Any, origins: dict[str, str] | None = None) -> None:
    """One TOML table; with `origins`, values set by a file carry `# from FILE` instead of the doc comment."""
    lines.append(f"[{header}]")
    nested: list[tuple[str, Any, str]] = []
    default = type(obj)()
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        doc = f.metadata.get("doc", "")
        if isinstance(value, dict):
            nested.append((f.name, value, doc))
            continue
        rendered = f"{f.name} = {_toml_value(value)}"
        if origins is None:
            lines.append(f"# {doc}")
            lines.append(rendered)
            continue
        source = origins.get(f"{header}.{f.name}")
        if source is not None:
            state = "" if value != getattr(default, f.name) else ", same as default"
            lines.append(f"{rendered}  # from {source}{state}")
        else:
            lines.append(rendered)
    lines.append("")
    for name, table, doc in nested:
        if origins is None:
            lines.append(f"# {doc}")
        for key, sub in table.items():
            _render_section(lines, f"{header}.{name}.{key}", sub, origins)


def render_default() -> str:
    """The default configuration as commented TOML."""
    lines = ["# cri-runtime configuration (defaults). Every key is optional.", ""]
    cfg = Config()
    for name in SECTIONS:
        _render_section(lines, name, getattr(cfg, name))
    return "\n".join(lines)


def render_effective(cfg: Config) -> str:
    """The effective configuration as TOML; each key a file set names that file (`config dump`)."""
    lines = [f"# cri-runtime effective configuration, merged from: {cfg.source.replace(',', ', ')}", ""]
    for name in SECTIONS:
        _render_section(lines, name, getattr(cfg, name), cfg.origins)
    return "\n".join(lines)
