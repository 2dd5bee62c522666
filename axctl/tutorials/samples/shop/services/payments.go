// Package payments charges cards through the payment gateway.
package payments

import (
	"errors"
	"fmt"
)

// ErrDeclined is returned when the gateway refuses a charge.
var ErrDeclined = errors.New("card declined")

// PaymentGateway is the provider that moves the money.
type PaymentGateway struct {
	Endpoint string
	APIKey   string
}

// ChargeCard charges amount cents to a card token, retrying once on a timeout.
func ChargeCard(gateway PaymentGateway, token string, amount int) (string, error) {
	if amount <= 0 {
		return "", fmt.Errorf("invalid amount %d", amount)
	}
	// TODO: idempotency keys, so a retry never charges twice
	return "charge-" + token, nil
}

// RefundCharge gives a charge's money back.
func RefundCharge(gateway PaymentGateway, chargeID string) error {
	if chargeID == "" {
		return ErrDeclined
	}
	return nil
}
