//! An order's money: the payments asked of the provider and what became of them, and the
//! refunds. Folded into [`crate::Order`] from the order's events; the rules that decide on
//! payments live in [`crate::Order::decide`], which uses what this module knows (what was
//! captured, what may still be refunded, which payment a refund goes to).
//!
//! Money is captured only by the provider's word (a `succeeded` payment, reported by its
//! signed webhook or read back from its API) or by an admin's offline payment with a reason:
//! both are `OrderPaid`. A provider success the order cannot take (wrong amount or
//! currency, an order already paid, expired or cancelled) is `PaymentNeedsReview`: the money
//! is captured, but the order is not paid by it, and an admin refunds it.

use serde::{Deserialize, Serialize};

use crate::values::{PaymentRef, RefundId};

/// What became of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Asked of the provider; the buyer has not paid yet.
    Requested,
    /// Captured, and the order is paid by it.
    Succeeded,
    /// The provider refused it (the buyer may try again).
    Failed,
    /// Captured, but the order could not take it (see the module doc): an admin decides.
    NeedsReview,
    /// Withdrawn (the order was cancelled or expired before it was paid).
    Canceled,
}

impl PaymentStatus {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::NeedsReview => "needs_review",
            Self::Canceled => "canceled",
        }
    }

    /// Whether the provider holds this payment's money.
    pub fn is_captured(self) -> bool {
        matches!(self, Self::Succeeded | Self::NeedsReview)
    }
}

/// What became of a refund.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Sent to the provider.
    Requested,
    /// The provider paid it back.
    Succeeded,
    /// The provider could not pay it back.
    Failed,
}

impl RefundStatus {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }
}

/// One payment of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The provider's id (a PaymentIntent `pi_...`, or an offline payment's reference).
    pub payment_id: PaymentRef,
    pub status: PaymentStatus,
    /// What was asked for, or what the provider reports it captured.
    pub amount_cents: i64,
    /// Recorded by an admin as paid outside the provider (its refunds are offline too).
    #[serde(default)]
    pub offline: bool,
}

/// One refund of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub refund_id: RefundId,
    /// The payment it pays back.
    pub payment_id: PaymentRef,
    pub status: RefundStatus,
    pub amount_cents: i64,
}

/// An order's payments and refunds, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payments {
    pub payments: Vec<Payment>,
    pub refunds: Vec<Refund>,
}

impl Payments {
    /// The payment with this id.
    pub fn payment(&self, payment_id: &PaymentRef) -> Option<&Payment> {
        self.payments.iter().find(|p| &p.payment_id == payment_id)
    }

    /// The refund with this id.
    pub fn refund(&self, refund_id: &RefundId) -> Option<&Refund> {
        self.refunds.iter().find(|r| &r.refund_id == refund_id)
    }

    /// The payment still waiting for the buyer, if one is.
    pub fn open(&self) -> Option<&Payment> {
        self.payments
            .iter()
            .rev()
            .find(|p| p.status == PaymentStatus::Requested)
    }

    /// The money the provider holds for this order (succeeded and needs-review payments).
    pub fn captured_cents(&self) -> i64 {
        self.payments
            .iter()
            .filter(|p| p.status.is_captured())
            .map(|p| p.amount_cents)
            .sum()
    }

    /// Refunds the provider confirmed.
    pub fn refunded_cents(&self) -> i64 {
        self.refunds
            .iter()
            .filter(|r| r.status == RefundStatus::Succeeded)
            .map(|r| r.amount_cents)
            .sum()
    }

    /// What `payment_id` may still pay back: its captured amount minus its refunds that
    /// are not failed.
    fn refundable_of(&self, payment: &Payment) -> i64 {
        if !payment.status.is_captured() {
            return 0;
        }
        let claimed: i64 = self
            .refunds
            .iter()
            .filter(|r| r.payment_id == payment.payment_id && r.status != RefundStatus::Failed)
            .map(|r| r.amount_cents)
            .sum();
        (payment.amount_cents - claimed).max(0)
    }

    /// What may still be refunded in all: captured minus every refund not failed.
    pub fn refundable_cents(&self) -> i64 {
        self.payments.iter().map(|p| self.refundable_of(p)).sum()
    }

    /// The captured payment a refund of `amount_cents` goes to: the first with that much
    /// left to pay back.
    pub fn refundable_payment(&self, amount_cents: i64) -> Option<&Payment> {
        self.payments
            .iter()
            .find(|p| self.refundable_of(p) >= amount_cents)
    }

    /// Records a payment's status (adding the payment when it is new).
    pub(crate) fn set_payment(
        &mut self,
        payment_id: PaymentRef,
        status: PaymentStatus,
        amount_cents: i64,
    ) {
        match self
            .payments
            .iter_mut()
            .find(|p| p.payment_id == payment_id)
        {
            Some(payment) => {
                payment.status = status;
                payment.amount_cents = amount_cents;
            }
            None => self.payments.push(Payment {
                payment_id,
                status,
                amount_cents,
                offline: false,
            }),
        }
    }

    /// Records a refund's status; a refund not known yet is ignored (every refund starts
    /// with `RefundRequested`).
    pub(crate) fn set_refund_status(&mut self, refund_id: &RefundId, status: RefundStatus) {
        if let Some(refund) = self.refunds.iter_mut().find(|r| &r.refund_id == refund_id) {
            refund.status = status;
        }
    }

    /// Marks a payment as recorded outside the provider.
    pub(crate) fn mark_offline(&mut self, payment_id: &PaymentRef) {
        if let Some(payment) = self
            .payments
            .iter_mut()
            .find(|p| &p.payment_id == payment_id)
        {
            payment.offline = true;
        }
    }

    /// Withdraws every payment still waiting for the buyer.
    pub(crate) fn cancel_open(&mut self) {
        for payment in &mut self.payments {
            if payment.status == PaymentStatus::Requested {
                payment.status = PaymentStatus::Canceled;
            }
        }
    }
}
