from shop.cart import Cart


def test_total_adds_tax():
    cart = Cart("ada")
    cart.add_item("book", 2, 10.0)
    assert cart.total("eu") == 24.2


def test_discount_applies_to_subtotal():
    cart = Cart("ada")
    cart.add_item("pen", 4, 2.5)
    assert cart.apply_discount(10) == 9.0
