"""Training, losses, metrics and evaluation of the built-in Mono Depth network (core.mono.network)."""
