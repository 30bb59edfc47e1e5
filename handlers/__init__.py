"""The built-in operator handlers, written against swarmop's public API only."""
