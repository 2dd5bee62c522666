// The checkout page: collects the address, shows the total, and sends the payment.

const TAX_RATES = { eu: 0.21, us: 0.07, uk: 0.2 };

export function checkoutTotal(items, region) {
  const subtotal = items.reduce((sum, item) => sum + item.quantity * item.unitPrice, 0);
  return Math.round((subtotal + subtotal * (TAX_RATES[region] ?? 0)) * 100) / 100;
}

export class CheckoutForm {
  constructor(element) {
    this.element = element;
    this.submitting = false;
  }

  validateAddress(address) {
    // TODO: check postal codes per country
    return Boolean(address.street && address.city && address.country);
  }

  async submitPayment(cart, card) {
    this.submitting = true;
    try {
      const response = await fetch("/api/payments", {
        method: "POST",
        body: JSON.stringify({ cart, card }),
      });
      return response.ok;
    } finally {
      this.submitting = false;
    }
  }
}
