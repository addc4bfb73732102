"""CNI network configuration: parse, validate, and pick the default network.

The CNI spec leaves "which network is the default" to the runtime; the
convention libcni and containerd follow is the first config file in lexical
order among `*.conf`, `*.conflist` and `*.json` in the config directory. A
single-plugin `.conf`/`.json` is turned into a one-plugin list so the rest of
the code only deals with lists. Unlike containerd (whose load fails as a whole
on the first broken file), a file that does not validate is skipped and
reported, so one stray file does not take a node's network down; the reasons
are kept for the NetworkReady message.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any

from cri_runtime.network.cni import version

CONF_EXTENSIONS = (".conf", ".conflist", ".json")

#: Names of networks and container IDs, as libcni validates them.
_VALID_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


class InvalidConfig(ValueError):
    """A network configuration that cannot be used; the message says why."""


@dataclass(frozen=True)
class PluginConf:
    """One plugin object of a network list, kept as written (unknown keys pass through)."""

    raw: dict[str, Any]

    @property
    def type(self) -> str:
        return str(self.raw["type"])

    @property
    def capabilities(self) -> frozenset[str]:
        """The capabilities the plugin declares as enabled (`{"portMappings": true}`)."""
        caps = self.raw.get("capabilities") or {}
        return frozenset(name for name, enabled in caps.items() if enabled)

    def describe(self) -> str:
        return f'type="{self.type}"'


@dataclass(frozen=True)
class NetworkConfigList:
    """A validated network configuration list (the unit CNI ADD/DEL operate on)."""

    name: str
    cni_version: str
    plugins: tuple[PluginConf, ...]
    disable_check: bool = False
    source: str = ""
    #: The top-level keys other than `plugins`, as written (passed through to the cache).
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The list as conflist JSON; what the cache stores so DEL reuses exactly this config."""
        data = dict(self.extra)
        data["name"] = self.name
        data["cniVersion"] = self.cni_version
        data["plugins"] = [dict(p.raw) for p in self.plugins]
        return data

    def capabilities(self) -> frozenset[str]:
        """Union of the capabilities the plugins declare."""
        caps: set[str] = set()
        for plugin in self.plugins:
            caps |= plugin.capabilities
        return frozenset(caps)


def validate_name(name: Any, what: str = "network name") -> str:
    """A network name or container ID: alphanumeric start, then [A-Za-z0-9_.-]."""
    if not isinstance(name, str) or not name:
        raise InvalidConfig(f"missing {what}")
    if not _VALID_NAME.match(name):
        raise InvalidConfig(f"invalid characters in {what} {name!r}")
    return name


def _read_bool(data: dict[str, Any], key: str) -> bool:
    value = data.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidConfig(f"invalid value {value!r} for {key} (expected a boolean)")


def _select_version(data: dict[str, Any]) -> str:
    """The version to run the list with: the highest supported of cniVersion and cniVersions."""
    declared = data.get("cniVersion", "")
    if not isinstance(declared, str):
        raise InvalidConfig(f"invalid cniVersion type {type(declared).__name__} (expected a string)")
    candidates = [declared] if declared else []
    extra = data.get("cniVersions")
    if extra is not None:
        if not isinstance(extra, list) or not all(isinstance(v, str) for v in extra):
            raise InvalidConfig("cniVersions must be a list of strings")
        candidates.extend(extra)
    for candidate in candidates:
        try:
            version.parse_version(candidate)
        except version.VersionError as exc:
            raise InvalidConfig(str(exc)) from None
    if not candidates:
        return "0.1.0"
    chosen = version.highest_supported(candidates)
    if chosen is None:
        raise InvalidConfig(f"unsupported cniVersion {', '.join(candidates)} "
                            f"(supported: {', '.join(version.SUPPORTED_VERSIONS)})")
    return chosen


def parse_plugin(raw: Any, where: str) -> PluginConf:
    """Validate one plugin object: a JSON object with a `type` naming a binary."""
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where}: expected a JSON object, got {type(raw).__name__}")
    ptype = raw.get("type")
    if not isinstance(ptype, str) or not ptype:
        raise InvalidConfig(f"{where}: missing 'type'")
    if "/" in ptype or "\\" in ptype or ptype in (".", ".."):
        raise InvalidConfig(f"{where}: invalid plugin type {ptype!r}")
    caps = raw.get("capabilities")
    if caps is not None and (
        not isinstance(caps, dict) or not all(isinstance(v, bool) for v in caps.values())
    ):
        raise InvalidConfig(f"{where}: capabilities must be an object of booleans")
    ipam = raw.get("ipam")
    if ipam is not None and not isinstance(ipam, dict):
        raise InvalidConfig(f"{where}: ipam must be an object")
    return PluginConf(raw=dict(raw))


def parse_conflist(data: Any, source: str = "") -> NetworkConfigList:
    """Validate a network configuration list (the `.conflist` format)."""
    if not isinstance(data, dict):
        raise InvalidConfig(f"expected a JSON object, got {type(data).__name__}")
    name = validate_name(data.get("name"))
    cni_version = _select_version(data)
    disable_check = _read_bool(data, "disableCheck")
    plugins = data.get("plugins")
    if plugins is None:
        raise InvalidConfig("no 'plugins' key")
    if not isinstance(plugins, list):
        raise InvalidConfig(f"invalid 'plugins' type {type(plugins).__name__} (expected a list)")
    if not plugins:
        raise InvalidConfig("no plugins in list")
    parsed = tuple(parse_plugin(p, f"plugin {i}") for i, p in enumerate(plugins))
    extra = {k: v for k, v in data.items() if k not in ("name", "cniVersion", "plugins")}
    return NetworkConfigList(name=name, cni_version=cni_version, plugins=parsed,
                             disable_check=disable_check, source=source, extra=extra)


def parse_single(data: Any, source: str = "") -> NetworkConfigList:
    """Validate a single-plugin config (`.conf`/`.json`) and wrap it as a one-plugin list."""
    if not isinstance(data, dict):
        raise InvalidConfig(f"expected a JSON object, got {type(data).__name__}")
    if "plugins" in data and "type" not in data:
        raise InvalidConfig("has 'plugins' but no 'type': a config list belongs in a .conflist file")
    plugin = parse_plugin(data, "config")
    name = validate_name(data.get("name"))
    cni_version = _select_version(data)
    return NetworkConfigList(name=name, cni_version=cni_version, plugins=(plugin,), source=source)


def parse_text(text: str, filename: str) -> NetworkConfigList:
    """Parse the contents of a config file; the extension decides list vs single plugin."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidConfig(f"not valid JSON: {exc}") from None
    if filename.endswith(".conflist"):
        return parse_conflist(data, filename)
    return parse_single(data, filename)


def config_files(conf_dir: str) -> list[str]:
    """Config file paths in `conf_dir` in lexical order; a missing directory has none."""
    try:
        names = os.listdir(conf_dir)
    except FileNotFoundError:
        return []
    files = []
    for name in sorted(names):
        if not name.endswith(CONF_EXTENSIONS):
            continue
        path = os.path.join(conf_dir, name)
        if os.path.isfile(path):
            files.append(path)
    return files


@dataclass(frozen=True)
class ConfDirScan:
    """Outcome of looking for the default network in a config directory."""

    conf_dir: str
    network: NetworkConfigList | None
    #: Files passed over before the chosen one (or all, if none was usable), with the reason.
    skipped: tuple[tuple[str, str], ...] = ()

    def not_ready_reason(self) -> str:
        """Why there is no usable network, phrased for a NetworkReady message."""
        if self.network is not None:
            return ""
        if not self.skipped:
            return f"no network config found in {self.conf_dir}"
        details = "; ".join(f"{os.path.basename(path)}: {why}" for path, why in self.skipped)
        return f"no valid network config in {self.conf_dir} ({details})"


def load_default_network(conf_dir: str) -> ConfDirScan:
    """The first valid network config in `conf_dir` (lexical order), plus what was skipped."""
    skipped: list[tuple[str, str]] = []
    for path in config_files(conf_dir):
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            skipped.append((path, f"cannot read: {exc}"))
            continue
        try:
            network = parse_text(text, path)
        except InvalidConfig as exc:
            skipped.append((path, str(exc)))
            continue
        return ConfDirScan(conf_dir, network, tuple(skipped))
    return ConfDirScan(conf_dir, None, tuple(skipped))


def conf_dir_fingerprint(conf_dir: str) -> tuple[tuple[str, int, int, int], ...]:
    """Cheap identity of the directory's config files; a change means "load again"."""
    stamp = []
    for path in config_files(conf_dir):
        try:
            st = os.stat(path)
        except OSError:
            continue
        stamp.append((path, st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamp)


#: containerd's built-in loopback network: brings `lo` up in every pod via the loopback plugin.
LOOPBACK_NETWORK = NetworkConfigList(
    name="cni-loopback",
    cni_version="0.3.1",
    plugins=(PluginConf(raw={"type": "loopback"}),),
    source="(built-in)",
)
