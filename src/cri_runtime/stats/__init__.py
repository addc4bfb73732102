"""Resource usage of containers and pods: cgroup samples, CRI stats, cAdvisor-style metrics."""
