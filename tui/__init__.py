"""The `swarmop tui` terminal UI."""
