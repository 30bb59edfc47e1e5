"""The reactor: watchers, per-object queues, handler invocation, progress and status."""
