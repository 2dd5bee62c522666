"""axctl commands, one module per noun."""
