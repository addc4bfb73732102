"""Command modules: each exposes COMMANDS, parses flags and calls the ops layer."""
