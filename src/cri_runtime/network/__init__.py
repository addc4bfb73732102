"""Pod networking: pinned network namespaces and CNI (see `manager.PodNetworkManager`)."""
