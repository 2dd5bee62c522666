"""The daemon process: command line, socket and lock, signals, sd_notify, logging, and the
one place (`app.py`) where the services are wired to the HTTP API."""
