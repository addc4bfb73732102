"""crictl-compatible command-line client for CRI runtimes."""
