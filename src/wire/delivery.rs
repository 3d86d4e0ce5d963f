//! A namespace's notification deliveries, as `GET /api/v1/namespaces/{namespace}/deliveries`
//! and `execwatch get deliveries` show them.

use serde::{Deserialize, Serialize};

/// Where a message is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not accepted yet: tried again at `nextAttemptAt`.
    Waiting,
    /// Accepted by the receiver (a 2xx).
    Sent,
    /// Given up on: not accepted within `--notify-max-age`.
    Dead,
}

impl DeliveryState {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "waiting" => Some(DeliveryState::Waiting),
            "sent" => Some(DeliveryState::Sent),
            "dead" => Some(DeliveryState::Dead),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Waiting => "waiting",
            DeliveryState::Sent => "sent",
            DeliveryState::Dead => "dead",
        }
    }
}

/// One message to one subscription, and what became of it.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// The `webhook-id` and CloudEvent id: the same on every attempt.
    pub id: String,
    pub subscription: String,
    /// The CloudEvent's type.
    pub event_type: String,
    /// The ConfigMap it is about: `namespace/name`.
    pub subject: String,
    /// `run/PHASE`, `environment/NAME/PHASE` or `rejected/RESOURCEVERSION`.
    pub transition: String,
    pub state: DeliveryState,
    pub attempts: i64,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// The receiver's status at the last attempt, where it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<String>,
}

/// A namespace's latest deliveries, newest first.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryList {
    pub namespace: String,
    pub items: Vec<Delivery>,
}
