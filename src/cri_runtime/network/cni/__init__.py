"""A CNI runtime library of our own: config loading, plugin execution, results, cache."""
