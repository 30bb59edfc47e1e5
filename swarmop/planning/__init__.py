"""Pure planning: plain data in, plain data out; no I/O, no clocks read here."""
