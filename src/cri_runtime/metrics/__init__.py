"""Prometheus metrics of the cri-runtime server itself (not the containers' metrics)."""
