"""Container lifecycle: OCI spec, exit monitoring, logs and IO (the relay), exec."""
