"""Node-level runtime facts: readiness conditions, version, runtime config."""
