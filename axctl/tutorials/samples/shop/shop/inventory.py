"""Stock levels, and reservations that hold items while a customer checks out."""

from __future__ import annotations


class OutOfStock(Exception):
    """Raised when a reservation asks for more than the warehouse holds."""


class Inventory:
    def __init__(self) -> None:
        self.stock: dict[str, int] = {}
        self.reserved: dict[str, int] = {}

    def restock(self, sku: str, quantity: int) -> None:
        self.stock[sku] = self.stock.get(sku, 0) + quantity

    def available(self, sku: str) -> int:
        return self.stock.get(sku, 0) - self.reserved.get(sku, 0)

    def reserve(self, sku: str, quantity: int) -> None:
        """Hold items for a checkout; release them if payment fails."""
        if quantity > self.available(sku):
            raise OutOfStock(sku)
        self.reserved[sku] = self.reserved.get(sku, 0) + quantity

    def release(self, sku: str, quantity: int) -> None:
        self.reserved[sku] = max(self.reserved.get(sku, 0) - quantity, 0)
