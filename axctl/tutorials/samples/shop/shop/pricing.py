"""Prices: tax per region and the rules (sales, bundles) that change a total."""

from __future__ import annotations

from dataclasses import dataclass

TAX_RATES = {"eu": 0.21, "us": 0.07, "uk": 0.20}


def compute_tax(amount: float, region: str) -> float:
    """Sales tax for a region; unknown regions pay none (and are logged upstream)."""
    return amount * TAX_RATES.get(region, 0.0)


@dataclass
class PriceRule:
    name: str
    percent_off: float = 0.0
    minimum_total: float = 0.0

    def apply(self, amount: float) -> float:
        if amount < self.minimum_total:
            return amount
        return amount * (1 - self.percent_off / 100)


def seasonal_sale(percent: float) -> PriceRule:
    # FIXME: read the season's dates from the calendar service
    return PriceRule("seasonal sale", percent_off=percent)
