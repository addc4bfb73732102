"""cri-runtime: a Kubernetes CRI v1 runtime that delegates to containerd."""

__version__ = "0.1.0"
RUNTIME_NAME = "cri-runtime"
