"""The I/O edge: everything that talks to Docker or Consul lives under here."""
