"""Per-container IO relay: a small detached process that owns a container's stdio FIFOs.

Container output never passes through the cri-runtime server: the relay reads the FIFOs
the containerd shim writes, appends CRI-format records to the log file and fans the raw
bytes out to attach clients. It survives a server crash (kill -9 included), so no log
line is lost and attach keeps working after a restart. Only the standard library may be
imported by the relay process itself (start-up cost is on the CreateContainer path);
the server side talks to it through :mod:`.client`.
"""
