"""Jinja2 templates shipped with swarmop (installed as swarmop.templates)."""
