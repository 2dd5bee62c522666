"""A customer's cart: items, quantities and the total they will pay."""

from __future__ import annotations

from dataclasses import dataclass, field

from shop.pricing import PriceRule, compute_tax


@dataclass
class LineItem:
    sku: str
    quantity: int
    unit_price: float


@dataclass
class Cart:
    customer: str
    items: list[LineItem] = field(default_factory=list)
    rules: list[PriceRule] = field(default_factory=list)

    def add_item(self, sku: str, quantity: int, unit_price: float) -> None:
        """Add an item, or raise the quantity of one already in the cart."""
        for item in self.items:
            if item.sku == sku:
                item.quantity += quantity
                return
        self.items.append(LineItem(sku, quantity, unit_price))

    def remove_item(self, sku: str) -> None:
        self.items = [item for item in self.items if item.sku != sku]

    def subtotal(self) -> float:
        return sum(item.quantity * item.unit_price for item in self.items)

    def apply_discount(self, percent: float) -> float:
        """The subtotal after a percentage discount (coupon codes end up here)."""
        # TODO: cap stacked discounts at 50 percent
        return self.subtotal() * (1 - percent / 100)

    def total(self, region: str) -> float:
        amount = self.subtotal()
        for rule in self.rules:
            amount = rule.apply(amount)
        return round(amount + compute_tax(amount, region), 2)
