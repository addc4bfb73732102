"""Pod sandboxes: the pause container holding a pod's namespaces, its network and files."""
