"""HTTP handlers, one module per area. Thin: parse and validate, call a service, render."""
