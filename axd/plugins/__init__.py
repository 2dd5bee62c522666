"""Plugins: manifests, the child-process host, the framed JSON-RPC channel, cgroup budgets,
supervision and monitoring."""
