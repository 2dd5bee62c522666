"""Measuring axd itself: sampling profiles of the daemon and of plugins."""
