"""crictl's client config file (/etc/crictl.yaml) and the flag > file > default precedence.

The file is a flat YAML mapping of seven known keys. Reading validates every key; writing
(crictl.configedit, through ruamel.yaml) edits values in place so comments, ordering and quoting
the user chose survive, and appends missing keys at the end, as crictl's yaml.v3 editing does.
"""

from __future__ import annotations

import os
import re

from crictl.errors import CliError

DEFAULT_CONFIG_PATH = "/etc/crictl.yaml"
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_RETRIES = 3

RUNTIME_ENDPOINT = "runtime-endpoint"
IMAGE_ENDPOINT = "image-endpoint"
TIMEOUT = "timeout"
DEBUG = "debug"
PULL_IMAGE_ON_CREATE = "pull-image-on-create"
DISABLE_PULL_ON_RUN = "disable-pull-on-run"
MAX_RETRIES = "max-retries"

KEYS = (RUNTIME_ENDPOINT, IMAGE_ENDPOINT, TIMEOUT, DEBUG, PULL_IMAGE_ON_CREATE, DISABLE_PULL_ON_RUN, MAX_RETRIES)
_INT_KEYS = (TIMEOUT, MAX_RETRIES)
_BOOL_KEYS = (DEBUG, PULL_IMAGE_ON_CREATE, DISABLE_PULL_ON_RUN)

_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class FileConfig:
    """Values of the config file (zero values for absent keys, like crictl's Config struct).

    This module's classes are plain classes, not dataclasses: importing dataclasses (and the
    inspect module it needs) cost about a tenth of crictl's start-up.
    """

    def __init__(self, text: str = "") -> None:
        self.runtime_endpoint = ""
        self.image_endpoint = ""
        self.timeout = 0
        self.debug = False
        self.pull_image_on_create = False
        self.disable_pull_on_run = False
        self.max_retries = 0
        self.text = text

    def get(self, key: str) -> str:
        value = getattr(self, key.replace("-", "_"))
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def parse_go_bool(value: str) -> bool:
    """strconv.ParseBool."""
    if value in _GO_TRUE:
        return True
    if value in _GO_FALSE:
        return False
    raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')


def parse_go_int(value: str) -> int:
    """strconv.Atoi."""
    if not re.fullmatch(r"[-+]?[0-9]+", value):
        raise ValueError(f'strconv.Atoi: parsing "{value}": invalid syntax')
    return int(value)


def read_config(path: str) -> FileConfig:
    """Parse the config file; errors name the file and the offending key."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    return parse_config_text(text, path)


_FLAT_LINE = re.compile(r"^([A-Za-z][A-Za-z-]*):(?: +(.*?))? *$")
_PLAIN_TEXT = re.compile(r"^[A-Za-z/][A-Za-z0-9/:._@+=-]*$")
_YAML11_WORDS = {"y", "yes", "n", "no", "on", "off", "true", "false", "null"}


def _flat_config(text: str) -> dict[str, object] | None:
    """The common file (`key: value` lines) read without PyYAML, which costs ~9 ms to import.

    Returns None whenever a line could mean anything else to YAML; the caller then uses PyYAML,
    so the values produced here are exactly what yaml.safe_load would give.
    """
    values: dict[str, object] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or (stripped.startswith("#") and line[0] == "#"):
            continue
        match = _FLAT_LINE.match(line)
        if match is None or match.group(1).lower() in _YAML11_WORDS:
            return None
        value = _flat_value(match.group(2) or "")
        if value is _NOT_FLAT:
            return None
        values[match.group(1)] = value
    return values or None


_NOT_FLAT = object()
_FLAT_WORDS: dict[str, object] = {"": None, "true": True, "false": False}


def _flat_value(value: str) -> object:
    """The value yaml.safe_load gives a scalar we are sure about, else _NOT_FLAT."""
    if value in _FLAT_WORDS:
        return _FLAT_WORDS[value]
    if value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
        return int(value)
    if _PLAIN_TEXT.match(value) and value.lower() not in _YAML11_WORDS:
        return value
    quote = value[:1]
    if quote in ("'", '"') and len(value) >= 2 and value[-1] == quote and not any(c in value[1:-1] for c in "'\\\""):
        return value[1:-1]
    return _NOT_FLAT


def parse_config_text(text: str, path: str = "<config>") -> FileConfig:
    """getConfigOptions: every pair in file order (a duplicated key: the last wins); errors in
    upstream's words, without the "load config file: " prefix its callers add."""
    flat = _flat_config(text) if text.strip() else {}
    if flat is not None:
        items = [(key, _scalar_text(value)) for key, value in flat.items()]
    else:
        from crictl import configedit

        items = configedit.pairs(configedit.compose(text))
    config = FileConfig(text=text)
    for name, value in items:
        try:
            if name in (RUNTIME_ENDPOINT, IMAGE_ENDPOINT):
                setattr(config, name.replace("-", "_"), value)
            elif name in _INT_KEYS:
                setattr(config, name.replace("-", "_"), parse_go_int(value))
            elif name in _BOOL_KEYS:
                setattr(config, name.replace("-", "_"), parse_go_bool(value))
            else:
                raise CliError(f"Config option '{name}' is not valid")
        except ValueError as exc:
            raise CliError(f"parsing config option '{name}': {exc}") from exc
    return config


def _scalar_text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    return str(raw)


def set_value(config: FileConfig, key: str, value: str) -> None:
    """crictl's setValue with its error texts."""
    attr = key.replace("-", "_")
    if key in (RUNTIME_ENDPOINT, IMAGE_ENDPOINT):
        setattr(config, attr, value)
        return
    try:
        if key in _INT_KEYS:
            setattr(config, attr, parse_go_int(value))
            return
        if key in _BOOL_KEYS:
            setattr(config, attr, parse_go_bool(value))
            return
    except ValueError as exc:
        raise CliError(f"parse {key} value '{value}': {exc}") from exc
    raise CliError(f"no configuration option named {key}")


def write_config(config: FileConfig, path: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o755, exist_ok=True)
    from crictl import configedit

    values = {key: config.get(key) for key in KEYS}
    text = configedit.render(configedit.compose(config.text) if config.text.strip() else None, values)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    config.text = text


class Settings:
    """The effective client settings after applying precedence."""

    def __init__(self, config_path: str = DEFAULT_CONFIG_PATH) -> None:
        self.runtime_endpoint = ""
        self.runtime_endpoint_set = False
        self.image_endpoint = ""
        self.image_endpoint_set = False
        self.timeout: float = DEFAULT_TIMEOUT
        self.debug = False
        self.pull_image_on_create = False
        self.disable_pull_on_run = False
        self.max_retries = DEFAULT_MAX_RETRIES
        self.config_path = config_path

    def with_timeout(self, timeout: float) -> Settings:
        """A copy with another timeout."""
        copy = Settings()
        copy.__dict__.update(self.__dict__, timeout=timeout)
        return copy


class FlagValues:
    """Global flags as given (None = not set on the command line or in the environment)."""

    def __init__(self, config: str | None = None, runtime_endpoint: str | None = None,
                 image_endpoint: str | None = None, timeout: float | None = None, debug: bool | None = None,
                 max_retries: int | None = None) -> None:  # fmt: skip
        self.config = config
        self.runtime_endpoint = runtime_endpoint
        self.image_endpoint = image_endpoint
        self.timeout = timeout
        self.debug = debug
        self.max_retries = max_retries


def load_file_config(config_path: str, explicitly_set: bool, command: str | None, executable: str) -> FileConfig | None:
    """crictl's GetServerConfigFromFile, falling back to crictl.yaml beside the executable.

    A missing file is only an error when -c/CRI_CONFIG_FILE named it (and not for `config`,
    which creates it); a malformed file is always an error naming the file.
    """
    from crictl import log

    path = config_path
    try:
        if not os.path.exists(path):
            fallback = os.path.join(os.path.dirname(executable), "crictl.yaml")
            log.warning(f'Config "{config_path}" does not exist, trying next: "{fallback}"')
            if not os.path.exists(fallback):
                if explicitly_set and command != "config":
                    raise CliError(f"load config file: stat {fallback}: no such file or directory")
                return None
            path = fallback
        try:
            return read_config(path)
        except OSError as exc:
            raise CliError(f"load config file: open {path}: {(exc.strerror or str(exc)).lower()}") from exc
        except CliError as exc:
            raise CliError(f"load config file: {exc.message}") from exc
    except CliError as exc:
        if not explicitly_set:
            return None  # upstream ignores a default config it cannot read
        raise CliError(f"get server config: {exc.message}") from exc


def resolve(flags: FlagValues, file_config: FileConfig | None) -> Settings:
    """Apply flag > config file > default, exactly as crictl's newCrictlConfig."""
    settings = Settings(config_path=flags.config or DEFAULT_CONFIG_PATH)
    fc = file_config
    if flags.runtime_endpoint is not None:
        settings.runtime_endpoint, settings.runtime_endpoint_set = flags.runtime_endpoint, True
    elif fc is not None and fc.runtime_endpoint:
        settings.runtime_endpoint, settings.runtime_endpoint_set = fc.runtime_endpoint, True
    if flags.image_endpoint is not None:
        settings.image_endpoint, settings.image_endpoint_set = flags.image_endpoint, True
    elif fc is not None and fc.image_endpoint:
        settings.image_endpoint, settings.image_endpoint_set = fc.image_endpoint, True
    if flags.timeout is not None:
        settings.timeout = flags.timeout if flags.timeout > 0 else DEFAULT_TIMEOUT
    elif fc is not None and fc.timeout > 0:
        settings.timeout = float(fc.timeout)
    if flags.debug is not None:
        settings.debug = flags.debug
    elif fc is not None:
        settings.debug = fc.debug
    if flags.max_retries is not None:
        settings.max_retries = flags.max_retries
    elif fc is not None:
        settings.max_retries = fc.max_retries
    if fc is not None:
        settings.pull_image_on_create = fc.pull_image_on_create
        settings.disable_pull_on_run = fc.disable_pull_on_run
    return settings
