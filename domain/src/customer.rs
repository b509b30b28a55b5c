//! The Customer aggregate (stream type `customer`, one stream per token subject, see
//! [`stream_id`]): the customer's profile (email, name, an address to ship to) and its
//! erasure.
//!
//! Personal data arrives here already sealed with the customer's data key ([`Sealed`]):
//! the domain decides on the profile's shape, never on its plaintext, and the events it
//! writes carry only ciphertext. Erasure records who erased whom and why (no personal
//! data); the key itself is destroyed outside the domain, which is what makes every sealed
//! value of the customer unreadable while the events stay as they were.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::DomainError;
use crate::stored::stored_events;
use crate::values::{ActorId, CustomerId, Reason, Sealed};

/// The stream type of customer streams.
pub const STREAM_TYPE: &str = "customer";

/// The namespace of customer stream ids (UUID v5 of the token subject).
const STREAM_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_2c3e_9b7d_4e58_8f01_a2b3_c4d5_e6f7);

/// The stream of `customer`: the same subject always names the same stream.
pub fn stream_id(customer: &CustomerId) -> Uuid {
    Uuid::new_v5(&STREAM_NAMESPACE, customer.as_str().as_bytes())
}

/// What the names of sealed fields are, as bound into their ciphertext (with the customer's
/// stream id): a value sealed as one field does not open as another.
pub mod field {
    pub const EMAIL: &str = "email";
    pub const NAME: &str = "name";
    pub const ADDRESS: &str = "address";
}

/// A command on one customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomerCommand {
    /// Sets the customer's profile (replacing the previous one). Refused once erased.
    SetProfile {
        customer_id: CustomerId,
        email: Sealed,
        name: Sealed,
        address: Option<Sealed>,
        /// Whether they want the emails that are not receipts (shipping, expiry).
        email_updates: bool,
    },
    /// Records the erasure of the customer's personal data. Once is enough: erasing an
    /// erased customer records nothing.
    Erase {
        customer_id: CustomerId,
        erased_by: ActorId,
        reason: Reason,
    },
}

/// Payload of `CustomerProfileSet`: the customer's profile, every personal field sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerProfileSet {
    pub customer_id: CustomerId,
    pub email: Sealed,
    pub name: Sealed,
    /// The address to ship to when an order names none (a sealed `PostalAddress`).
    pub address: Option<Sealed>,
    /// Whether they want the emails that are not receipts (shipping, expiry); order
    /// confirmations, payment receipts and refunds always go. Not personal data.
    pub email_updates: bool,
}

/// Payload of `CustomerErased`: the customer's data key was destroyed, so every sealed
/// value of theirs is unreadable. Holds no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomerErased {
    pub customer_id: CustomerId,
    /// Who asked: an admin, or the customer themself.
    pub erased_by: ActorId,
    pub reason: Reason,
}

stored_events!(
    /// An event of a customer stream.
    CustomerEvent, stream_type = STREAM_TYPE, {
        /// See [`CustomerProfileSet`].
        CustomerProfileSet,
        /// See [`CustomerErased`].
        CustomerErased,
    }
);

/// A customer's profile as sealed in the events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub email: Sealed,
    pub name: Sealed,
    pub address: Option<Sealed>,
    #[serde(default = "yes")]
    pub email_updates: bool,
}

fn yes() -> bool {
    true
}

/// The state of one customer, folded from its events. `Default` is "no profile".
///
/// Serialized as `{"customer_id", "profile": {"email", "name", "address"} | null,
/// "erased"}`; after erasure the profile is dropped, so snapshots and caches of an erased
/// customer hold none of their ciphertext either.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    customer_id: Option<CustomerId>,
    profile: Option<Profile>,
    erased: bool,
}

impl Customer {
    /// Folds events, oldest first, into a state.
    pub fn from_events(events: impl IntoIterator<Item = CustomerEvent>) -> Self {
        let mut customer = Self::default();
        for event in events {
            customer.apply(event);
        }
        customer
    }

    /// The profile, unless none was set or the customer was erased.
    pub fn profile(&self) -> Option<&Profile> {
        self.profile.as_ref()
    }

    /// True once the customer was erased.
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// Decides what `command` appends, or why it is refused.
    pub fn decide(&self, command: CustomerCommand) -> Result<Vec<CustomerEvent>, DomainError> {
        match command {
            CustomerCommand::SetProfile {
                customer_id,
                email,
                name,
                address,
                email_updates,
            } => {
                if self.erased {
                    return Err(DomainError::CustomerErased);
                }
                Ok(vec![CustomerProfileSet {
                    customer_id,
                    email,
                    name,
                    address,
                    email_updates,
                }
                .into()])
            }
            CustomerCommand::Erase {
                customer_id,
                erased_by,
                reason,
            } => {
                if self.erased {
                    return Ok(Vec::new());
                }
                Ok(vec![CustomerErased {
                    customer_id,
                    erased_by,
                    reason,
                }
                .into()])
            }
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: CustomerEvent) {
        match event {
            CustomerEvent::CustomerProfileSet(set) => {
                self.customer_id = Some(set.customer_id);
                self.profile = Some(Profile {
                    email: set.email,
                    name: set.name,
                    address: set.address,
                    email_updates: set.email_updates,
                });
            }
            CustomerEvent::CustomerErased(erased) => {
                self.customer_id = Some(erased.customer_id);
                self.profile = None;
                self.erased = true;
            }
        }
    }
}

impl cqrs_es::Aggregate for Customer {
    const TYPE: &'static str = STREAM_TYPE;
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CustomerCommand,
        _services: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), DomainError> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CustomerEvent) {
        Customer::apply(self, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(tag: &str) -> Sealed {
        Sealed::parse(format!("pii1.{tag}")).unwrap()
    }

    fn ana() -> CustomerId {
        CustomerId::parse("ana").unwrap()
    }

    fn set_profile() -> CustomerCommand {
        CustomerCommand::SetProfile {
            customer_id: ana(),
            email: sealed("e"),
            name: sealed("n"),
            address: Some(sealed("a")),
            email_updates: true,
        }
    }

    fn erase() -> CustomerCommand {
        CustomerCommand::Erase {
            customer_id: ana(),
            erased_by: ActorId::parse("root").unwrap(),
            reason: Reason::parse("GDPR article 17 request").unwrap(),
        }
    }

    #[test]
    fn a_profile_is_set_and_replaced() {
        let mut customer = Customer::default();
        for event in customer.decide(set_profile()).unwrap() {
            customer.apply(event);
        }
        assert_eq!(customer.profile().unwrap().address, Some(sealed("a")));
        let replaced = CustomerCommand::SetProfile {
            customer_id: ana(),
            email: sealed("e2"),
            name: sealed("n2"),
            address: None,
            email_updates: false,
        };
        for event in customer.decide(replaced).unwrap() {
            customer.apply(event);
        }
        assert_eq!(customer.profile().unwrap().email, sealed("e2"));
        assert_eq!(customer.profile().unwrap().address, None);
        assert!(!customer.profile().unwrap().email_updates);
    }

    #[test]
    fn erasure_drops_the_profile_refuses_new_ones_and_happens_once() {
        let mut customer =
            Customer::from_events(Customer::default().decide(set_profile()).unwrap());
        let erased = customer.decide(erase()).unwrap();
        assert_eq!(erased.len(), 1);
        for event in erased {
            customer.apply(event);
        }
        assert!(customer.is_erased());
        assert_eq!(customer.profile(), None);
        let json = serde_json::to_string(&customer).unwrap();
        assert!(!json.contains("pii1."), "{json}");
        assert_eq!(customer.decide(erase()).unwrap(), Vec::new());
        assert_eq!(
            customer.decide(set_profile()).unwrap_err(),
            DomainError::CustomerErased
        );
    }

    #[test]
    fn a_customer_without_a_profile_can_be_erased() {
        let events = Customer::default().decide(erase()).unwrap();
        assert!(matches!(events[..], [CustomerEvent::CustomerErased(_)]));
    }

    #[test]
    fn stream_ids_are_stable_and_distinct() {
        let bob = CustomerId::parse("bob").unwrap();
        assert_eq!(stream_id(&ana()), stream_id(&ana()));
        assert_ne!(stream_id(&ana()), stream_id(&bob));
    }

    #[test]
    fn events_round_trip_through_their_stored_form() {
        for event in Customer::default()
            .decide(set_profile())
            .unwrap()
            .into_iter()
            .chain(Customer::default().decide(erase()).unwrap())
        {
            let back = CustomerEvent::from_stored(
                event.event_type(),
                event.schema_version(),
                &event.payload(),
            )
            .unwrap();
            assert_eq!(back, event);
        }
    }
}
