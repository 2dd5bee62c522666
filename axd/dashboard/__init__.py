"""The dashboard: a loopback page of live charts over the monitoring signals."""
