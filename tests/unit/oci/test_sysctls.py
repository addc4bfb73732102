from __future__ import annotations

import pytest

from cri_runtime.errors import InvalidArgument
from cri_runtime.oci.sysctls import normalize_sysctl_name, validate_sysctls


@pytest.mark.parametrize(
    ("name", "expected"),
    [("net.ipv4.ip_forward", "net.ipv4.ip_forward"), ("net/ipv4/conf/eth0.100/rp_filter",
                                                       "net.ipv4.conf.eth0/100.rp_filter")],
)  # fmt: skip
def test_normalize(name: str, expected: str) -> None:
    assert normalize_sysctl_name(name) == expected


@pytest.mark.parametrize(
    ("sysctls", "host_network", "host_ipc", "error"),
    [
        ({"net.ipv4.ip_unprivileged_port_start": "0"}, False, False, None),
        ({"net.ipv4.ip_unprivileged_port_start": "0"}, True, False, "host network"),
        ({"kernel.shm_rmid_forced": "1", "fs.mqueue.msg_max": "10"}, False, False, None),
        ({"kernel.shm_rmid_forced": "1"}, True, False, None),
        ({"kernel.shm_rmid_forced": "1"}, False, True, "host IPC"),
        ({"fs.mqueue.msg_max": "10"}, False, True, "host IPC"),
        ({"kernel.domainname": "x"}, True, False, "UTS"),
        ({"kernel.panic": "1"}, False, False, "not namespaced"),
        ({"vm.overcommit_memory": "1"}, False, False, "not namespaced"),
        ({"net..x": "1"}, False, False, "invalid name"),
    ],
)
def test_validate(sysctls: dict[str, str], host_network: bool, host_ipc: bool, error: str | None) -> None:
    if error is None:
        assert validate_sysctls(sysctls, host_network=host_network, host_ipc=host_ipc) == sysctls
    else:
        with pytest.raises(InvalidArgument, match=error):
            validate_sysctls(sysctls, host_network=host_network, host_ipc=host_ipc)
