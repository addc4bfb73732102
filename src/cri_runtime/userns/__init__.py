"""User namespaces for pods (``hostUsers: false``).

runc 1.1.5 runs a container in a user namespace but cannot idmap mounts, so
this package does the part it lacks, as containerd 2.x does for its overlay
snapshotter: the image layers (overlay lowerdirs) and requested volumes become
idmapped mounts (``open_tree`` + ``mount_setattr(MOUNT_ATTR_IDMAP)``) prepared
before the task is created, and the snapshot's upper dir is chowned to the
pod's root, so runc is handed ready-made mounts. ``mappings`` validates what
kubelet sends, ``idmap`` wraps the syscalls (ctypes: no maintained Python
binding exists), ``rootfs`` rewrites a snapshot's mounts, ``support`` is the
start-up self-check behind ``user_namespaces`` in Status.
"""

from .mappings import IdMap, PodUserns, pod_userns

__all__ = ["IdMap", "PodUserns", "pod_userns"]
