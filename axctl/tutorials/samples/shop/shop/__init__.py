"""The shop's core: carts, prices and stock."""
