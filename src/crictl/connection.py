"""Connections to CRI endpoints: endpoint choice, validation, retries, deadlines, debug logging.

Calls go through our blocking gRPC client (`cri_runtime.grpc_client.blocking`), not grpcio:
importing grpcio and starting its channel cost more than all the rest of `crictl ps`. The
client and the CRI messages are imported lazily so commands that never talk to a runtime
(help, config, completion) start faster still. Every RPC failure becomes a CliError whose
one-line message names the endpoint and the gRPC status, formatted as Go's grpc prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from crictl import log
from crictl.errors import CliError
from crictl.settings import Settings

DEFAULT_RUNTIME_ENDPOINTS = (
    "unix:///run/cri-runtime/cri-runtime.sock",
    "unix:///run/containerd/containerd.sock",
    "unix:///run/crio/crio.sock",
    "unix:///var/run/cri-dockerd.sock",
)
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

_GO_CODE_NAMES = {
    "OK": "OK",
    "CANCELLED": "Canceled",
    "UNKNOWN": "Unknown",
    "INVALID_ARGUMENT": "InvalidArgument",
    "DEADLINE_EXCEEDED": "DeadlineExceeded",
    "NOT_FOUND": "NotFound",
    "ALREADY_EXISTS": "AlreadyExists",
    "PERMISSION_DENIED": "PermissionDenied",
    "RESOURCE_EXHAUSTED": "ResourceExhausted",
    "FAILED_PRECONDITION": "FailedPrecondition",
    "ABORTED": "Aborted",
    "OUT_OF_RANGE": "OutOfRange",
    "UNIMPLEMENTED": "Unimplemented",
    "INTERNAL": "Internal",
    "UNAVAILABLE": "Unavailable",
    "DATA_LOSS": "DataLoss",
    "UNAUTHENTICATED": "Unauthenticated",
}


def go_list(items: tuple[str, ...] | list[str]) -> str:
    """Go's %v of a []string."""
    return "[" + " ".join(items) + "]"


def socket_path(endpoint: str) -> str:
    """The unix socket of a CRI endpoint; only unix sockets are supported on Linux."""
    if endpoint.startswith("unix://"):
        path = endpoint[len("unix://") :]
        if not path:
            raise CliError(f'endpoint "{endpoint}": empty socket path')
        return path
    if "://" in endpoint:
        scheme = endpoint.split("://", 1)[0]
        raise CliError(f'endpoint "{endpoint}": protocol "{scheme}" not supported')
    if endpoint.startswith("/"):
        log.warning(
            f'Using "{endpoint}" as endpoint is deprecated, please consider using full url format "unix://{endpoint}".'
        )
        return endpoint
    raise CliError(f'endpoint "{endpoint}": protocol "" not supported')


def format_rpc_error(exc: Exception) -> str:
    """'rpc error: code = NotFound desc = ...' like Go's status errors."""
    code = getattr(exc, "code", None)
    details = getattr(exc, "details", None)
    if callable(code) and callable(details):
        name = _GO_CODE_NAMES.get(code().name, code().name)
        return f"rpc error: code = {name} desc = {details()}"
    return str(exc)


CallHook = Callable[[str, Callable[[list[tuple[str, str]]], Any]], Any]
_call_hook: list[CallHook] = []


def set_call_hook(hook: CallHook | None) -> None:
    """Route every CRI call through `hook(full_method, invoke(metadata))` (tracing), or stop."""
    _call_hook.clear()
    if hook is not None:
        _call_hook.append(hook)


def rpc_code(exc: Exception) -> str | None:
    code = getattr(exc, "code", None)
    if callable(code):
        return str(code().name)
    return None


def short_text(message: Any) -> str:
    """Compact one-line protobuf text for --debug logs."""
    from google.protobuf import text_format

    return str(text_format.MessageToString(message, as_one_line=True))


_SERVICES = {"runtime": "runtime.v1.RuntimeService", "image": "runtime.v1.ImageService"}


class Responses:
    """The decoded messages of a server-streaming call; `cancel()` ends the call."""

    def __init__(self, stream: Any, response_type: Any) -> None:
        self._stream = stream
        self._type = response_type

    def __iter__(self) -> Iterator[Any]:
        for raw in self._stream:
            yield _decode(self._type, raw)

    def cancel(self) -> None:
        self._stream.cancel()


def _decode(response_type: Any, raw: bytes) -> Any:
    try:
        return response_type.FromString(raw)
    except Exception as exc:  # protobuf's DecodeError: what grpc-go reports for it
        from cri_runtime.grpc_client.status import RpcError, StatusCode

        raise RpcError(StatusCode.INTERNAL, f"grpc: failed to unmarshal the received message: {exc}") from exc


def _response_type(service: str, method: str) -> Any:
    from crictl.ops import pb

    api = pb()
    return getattr(api, api.DESCRIPTOR.services_by_name[service.rpartition(".")[2]].methods_by_name[method]
                   .output_type.name)  # fmt: skip


class Service:
    """One validated connection to one endpoint, calling the named CRI service."""

    def __init__(self, endpoint: str, kind: str, settings: Settings) -> None:
        self.endpoint = endpoint
        self.kind = kind
        self.settings = settings
        self.channel: Any = None
        self.shared = False

    def open(self) -> None:
        from cri_runtime.grpc_client.blocking import Channel

        path = socket_path(self.endpoint)
        self.channel = Channel(path, max_receive=MAX_MESSAGE_BYTES, max_send=MAX_MESSAGE_BYTES)

    def sibling(self, kind: str) -> Service:
        """The other CRI service over this already-validated connection (saves a round trip)."""
        other = Service(self.endpoint, kind, self.settings)
        other.channel = self.channel
        other.shared = True
        return other

    def close(self) -> None:
        if self.channel is not None and not self.shared:
            self.channel.close()
            self.channel = None

    def validate(self) -> None:
        """Cheap RPC proving the endpoint speaks CRI v1 (crictl validates the same way)."""
        from crictl.ops import pb

        api = pb()
        try:
            if self.kind == "runtime":
                self._invoke("Version", api.VersionRequest(), self.settings.timeout)  # cri-client sends it empty
            else:
                self._invoke("ImageFsInfo", api.ImageFsInfoRequest(), self.settings.timeout)
        except Exception as exc:
            if rpc_code(exc) is None:
                raise
            raise CliError(
                f"validate service connection: validate CRI v1 {self.kind} API for endpoint "
                f'"{self.endpoint}": {format_rpc_error(exc)}'
            ) from exc

    def call(self, method: str, request: Any, timeout: float | None = -1.0) -> Any:
        """Unary call with crictl's deadline (connection timeout unless given), logged in debug."""
        deadline = self.settings.timeout if timeout is not None and timeout < 0 else timeout
        if log.debug_enabled():
            log.debug(f"{method}Request: {short_text(request)}")
        try:
            response = self._invoke(method, request, deadline)
        except Exception as exc:
            if rpc_code(exc) is None:
                raise
            raise RpcError(method, self.endpoint, exc) from exc
        if log.debug_enabled():
            log.debug(f"{method}Response: {short_text(response)}")
        return response

    def stream(self, method: str, request: Any) -> Any:
        if log.debug_enabled():
            log.debug(f"{method}Request: {short_text(request)}")
        return self._invoke(method, request, None, streaming=True)

    def _invoke(self, method: str, request: Any, timeout: float | None, streaming: bool = False) -> Any:
        service = _SERVICES[self.kind]
        path = f"/{service}/{method}"
        response_type = _response_type(service, method)
        payload = request.SerializeToString()

        def invoke(metadata: list[tuple[str, str]] | None) -> Any:
            if streaming:
                stream = self.channel.server_stream(path, payload, timeout=timeout, metadata=metadata or ())
                return Responses(stream, response_type)
            return _decode(response_type, self.channel.unary(path, payload, timeout=timeout, metadata=metadata or ()))

        if not _call_hook:
            return invoke(None)
        return _call_hook[0](f"{service}/{method}", invoke)


class RpcError(CliError):
    """A failed RPC; keeps the gRPC code so callers can treat NotFound specially."""

    def __init__(self, method: str, endpoint: str, exc: Exception) -> None:
        self.code = rpc_code(exc)
        self.details = str(getattr(exc, "details", lambda: "")())
        super().__init__(format_rpc_error(exc))  # upstream's wording: the endpoint is not named


def _connect_with_retry(endpoint: str, kind: str, settings: Settings) -> Service:
    """crictl's connectWithRetry: exponential backoff from 0.5 s up to 5 s."""
    delay = 0.5
    attempt = 0
    while True:
        service = Service(endpoint, kind, settings)
        service.open()
        try:
            service.validate()
            return service
        except CliError as exc:
            service.close()
            retries = settings.max_retries
            if retries == 0 or (retries > 0 and attempt >= retries):
                raise
            if retries > 0:
                log.debug(f"Connection attempt {attempt + 1}/{retries} failed: {exc.message}, retrying in {delay}s")
            else:
                log.debug(f"Connection attempt {attempt + 1} failed: {exc.message}, retrying in {delay}s")
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            attempt += 1


def _connect_default(kind: str, settings: Settings) -> Service:
    label = "runtime" if kind == "runtime" else "Image"
    log.warning(
        f"{label} connect using default endpoints: {go_list(DEFAULT_RUNTIME_ENDPOINTS)}. "
        "As the default settings are now deprecated, you should set the endpoint instead."
    )
    last: CliError | None = None
    for endpoint in DEFAULT_RUNTIME_ENDPOINTS:
        log.debug(f'Connect using endpoint "{endpoint}" with "{settings.timeout:g}s" timeout')
        service = Service(endpoint, kind, settings)
        service.open()
        try:
            service.validate()
        except CliError as exc:
            service.close()
            log.error(exc.message)
            last = exc
            continue
        log.debug(f"Connected successfully using endpoint: {endpoint}")
        return service
    assert last is not None
    raise last


class Clients:
    """Lazily-connected runtime and image services for one CLI invocation."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._runtime: Service | None = None
        self._image: Service | None = None

    def runtime(self, timeout: float | None = None) -> Service:
        if self._runtime is None:
            settings = self.settings
            if timeout:
                settings = settings.with_timeout(timeout)
            if settings.runtime_endpoint_set and not settings.runtime_endpoint:
                raise CliError("--runtime-endpoint is not set")
            log.debug("Get runtime connection")
            if not settings.runtime_endpoint_set:
                self._runtime = _connect_default("runtime", settings)
            else:
                self._runtime = _connect_with_retry(settings.runtime_endpoint, "runtime", settings)
        return self._runtime

    def image(self) -> Service:
        if self._image is None:
            settings = self.settings
            endpoint, is_set = settings.image_endpoint, settings.image_endpoint_set
            if not endpoint:
                if settings.runtime_endpoint_set and not settings.runtime_endpoint:
                    raise CliError("--image-endpoint is not set")
                endpoint, is_set = settings.runtime_endpoint, settings.runtime_endpoint_set
            log.debug("Get image connection")
            if self._runtime is not None and (not is_set or endpoint == self._runtime.endpoint):
                self._image = self._runtime.sibling("image")
                self._image.validate()  # upstream validates each service it connects to
            elif not is_set:
                self._image = _connect_default("image", settings)
            else:
                self._image = _connect_with_retry(endpoint, "image", settings)
        return self._image

    def close(self) -> None:
        for service in (self._runtime, self._image):
            if service is not None:
                service.close()
