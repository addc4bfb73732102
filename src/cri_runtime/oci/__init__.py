"""OCI runtime spec construction for CRI containers and pod sandboxes.

Everything in this package is pure: it turns CRI messages, the image config and
facts about the node (passed in by the caller) into an OCI runtime-spec 1.0 dict
that serialises to the JSON runc reads. The only I/O is reading files the caller
names (the image rootfs's /etc/passwd, a Localhost seccomp profile, host paths to
resolve symlinks, device nodes), so every rule can be unit-tested without
containerd.
"""
