"""Container lifecycle events fanned out to GetContainerEvents subscribers."""
