"""The reactor: watchers, queues, workers, retries."""
