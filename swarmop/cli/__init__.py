"""The `swarmop` command line."""
