//! Every error the API answers: a code for programs and a message for people.

use serde::Serialize;

/// What went wrong, for programs: every code an error can carry, serialised as its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum ErrorCode {
    UnknownParameter,
    InvalidParameter,
    InvalidHeader,
    NotFound,
    Unauthorized,
    Forbidden,
    AuthUnavailable,
    TooManyReviews,
    TooManyRequests,
    TooManyWaiting,
    NotSynced,
    ModuleNotInstalled,
    HistoryUnavailable,
    CorsForbidden,
    MethodNotAllowed,
    Internal,
}

/// Every error's body; a client decodes it as `ErrorBody<'static>`.
#[derive(Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody<'a> {
    pub code: ErrorCode,
    pub message: std::borrow::Cow<'a, str>,
}
