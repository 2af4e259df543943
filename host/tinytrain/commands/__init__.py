"""Subcommands of the tinytrain CLI, one module each."""
