"""A sample application's tasks, tested in `test_shop.py` with taskjet's pytest fixtures."""

from __future__ import annotations

from src.tasks.broker import register_task


class OutOfStockError(Exception):
    """Fewer items in stock than asked for."""


STOCK = {"apple": 10, "pear": 0}


@register_task(api=True, max_retries=0)
async def reserve(sku: str, quantity: int) -> dict[str, object]:
    """Reserve `quantity` items of `sku`."""
    if STOCK.get(sku, 0) < quantity:
        raise OutOfStockError(f"only {STOCK.get(sku, 0)} {sku} left")
    return {"sku": sku, "reserved": quantity}
