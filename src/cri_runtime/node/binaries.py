"""Start-up checks of the binaries pods need: the shim, runc and the CNI plugins (as CRI-O checks its runtimes).

Without them the server would start, report ready, and fail every
RunPodSandbox with an error from deep inside containerd. The default
handler's shim and runc must be there, or the server does not start (one
line naming the binary and the config key). Other handlers, and the CNI
plugin directories, only get a warning: a CNI DaemonSet (flannel, calico …)
installs its plugins after the runtime is up, and an extra handler may be
installed later; `NetworkReady` and the failing RunPodSandbox say the rest.
"""

from __future__ import annotations

import os
import shutil

from cri_runtime.config import Config, RuntimeHandlerConfig

#: Searched after our own PATH: containerd (which starts the shim, which starts runc) may have a
#: wider PATH than we were given, and Debian installs runc in /usr/sbin.
SYSTEM_PATH = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
RUNC_SHIMS = ("io.containerd.runc.v1", "io.containerd.runc.v2")


def shim_binary(runtime_type: str) -> str:
    """containerd's name for a runtime's shim: io.containerd.runc.v2 → containerd-shim-runc-v2."""
    return "containerd-shim-" + "-".join(runtime_type.split(".")[2:])


def find(binary: str) -> str | None:
    """The executable `binary` (a path, or a name looked up in PATH and the system dirs), or None."""
    if os.sep in binary:
        return binary if os.path.isfile(binary) and os.access(binary, os.X_OK) else None
    search = os.pathsep.join([*os.environ.get("PATH", "").split(os.pathsep), *SYSTEM_PATH])
    return shutil.which(binary, path=search)


def handler_problems(name: str, handler: RuntimeHandlerConfig) -> list[str]:
    """What is missing for handler `name`: its shim, and for runc shims the runc binary."""
    where = f"runtime.handlers.{name}"
    problems = []
    shim = shim_binary(handler.runtime_type)
    if find(shim) is None:
        problems.append(f"runtime handler {name!r}: shim {shim} (for {where}.runtime_type "
                        f"{handler.runtime_type}) is not in PATH nor in {':'.join(SYSTEM_PATH)}")
    if handler.runtime_type in RUNC_SHIMS:
        runc = handler.binary_name or "runc"
        if find(runc) is None:
            source = f"{where}.binary_name" if handler.binary_name else f"{where}.binary_name is empty"
            problems.append(f"runtime handler {name!r}: runc binary {runc} ({source}) is not "
                            + ("an executable file" if os.sep in runc else
                               f"in PATH nor in {':'.join(SYSTEM_PATH)}"))
    return problems


def fatal_problems(config: Config) -> list[str]:
    """Missing binaries of the default handler: the server must not start without them."""
    name = config.runtime.default_handler
    handler = config.runtime.handlers.get(name)
    return [] if handler is None else handler_problems(name, handler)


def warnings(config: Config) -> list[str]:
    """Missing binaries of the other handlers, and CNI plugin directories that do not exist (yet)."""
    found = [line for name, handler in sorted(config.runtime.handlers.items())
             if name != config.runtime.default_handler for line in handler_problems(name, handler)]
    dirs = config.network.cni_bin_dirs
    if not any(os.path.isdir(d) for d in dirs):
        found.append(f"no CNI plugin directory exists yet (network.cni_bin_dirs: {', '.join(dirs)}); "
                     "pods that are not hostNetwork fail until plugins are installed")
    return found
