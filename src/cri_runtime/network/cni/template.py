"""Generate the node's CNI config from a template once kubelet tells us the pod CIDR.

Same contract as containerd's `conf_template`: kubelet sends the node's pod
CIDR(s) with UpdateRuntimeConfig; when no usable network config exists yet,
the template is rendered with `.PodCIDR` (the first CIDR), `.PodCIDRRanges`
(all of them) and `.Routes` (a default route per address family) and written
into the config directory. The output is validated before it is written, so a
broken template is reported instead of leaving a broken file to be skipped.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from typing import Any

from cri_runtime import errors, gotemplate
from cri_runtime.network.cni import config

#: File name the rendered config is written to (sorts early, like containerd's 10-containerd-net).
CONF_FILE_NAME = "10-cri-runtime-net.conflist"


def parse_pod_cidrs(value: str) -> list[str]:
    """Split kubelet's comma-separated pod CIDR string and validate each entry."""
    cidrs = [part.strip() for part in value.split(",") if part.strip()]
    if not cidrs:
        raise errors.InvalidArgument("pod CIDR is empty")
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise errors.InvalidArgument(f"invalid pod CIDR {cidr!r}") from None
    return cidrs


def template_data(cidrs: list[str]) -> dict[str, Any]:
    """The values a template sees: PodCIDR, PodCIDRRanges, Routes."""
    families = {ipaddress.ip_network(c, strict=False).version for c in cidrs}
    routes = []
    if 4 in families:
        routes.append("0.0.0.0/0")
    if 6 in families:
        routes.append("::/0")
    return {"PodCIDR": cidrs[0], "PodCIDRRanges": list(cidrs), "Routes": routes}


def render_template(template_text: str, cidrs: list[str], template_path: str = "") -> str:
    """Render and validate; errors name the template file."""
    try:
        text = gotemplate.render(template_text, template_data(cidrs), name=os.path.basename(template_path) or "cni")
    except gotemplate.TemplateError as exc:
        raise errors.FailedPrecondition(f"cni conf template {template_path}: {exc}") from None
    try:
        config.parse_text(text, CONF_FILE_NAME)
    except config.InvalidConfig as exc:
        raise errors.FailedPrecondition(
            f"cni conf template {template_path} rendered an invalid network config: {exc}") from None
    return text


def write_atomically(path: str, text: str, mode: int = 0o644) -> None:
    """Write via a temp file and rename, so readers never see half a file."""
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_conf_from_template(template_path: str, conf_dir: str, cidrs: list[str]) -> str:
    """Render `template_path` for `cidrs` into `conf_dir`; returns the file written."""
    try:
        with open(template_path, encoding="utf-8") as f:
            template_text = f.read()
    except OSError as exc:
        raise errors.FailedPrecondition(f"cannot read cni conf template {template_path}: "
                                        f"{exc.strerror or exc}") from None
    text = render_template(template_text, cidrs, template_path)
    try:
        os.makedirs(conf_dir, mode=0o755, exist_ok=True)
        target = os.path.join(conf_dir, CONF_FILE_NAME)
        write_atomically(target, text)
    except OSError as exc:
        raise errors.Internal(f"cannot write cni config into {conf_dir}: {exc}") from None
    return target
