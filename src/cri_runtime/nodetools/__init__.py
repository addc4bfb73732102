"""Node tools of the `cri-runtime` CLI: containerd's views (`ctr`), the process tree, and `doctor`.

They join three views an operator otherwise reads with ctr, crictl and ps:
CRI's (pods and containers by name), containerd's (containers, tasks,
snapshots, leases, content) and the kernel's (processes, cgroups, netns,
mounts). Everything here only reads, except `doctor --fix`.
"""
