//! The one error type of the HTTP API, rendered as `{"code","message"}` in one place; warp's own
//! rejections are mapped into it so every error body has the same shape.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::http::header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::access::AccessError;
use crate::modules::NotInstalled;
use crate::query::{CursorError, FilterError};
use crate::wire::{ErrorBody, ErrorCode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Seconds, for a `429`'s `Retry-After`.
    pub retry_after: Option<u64>,
}

impl warp::reject::Reject for ApiError {}

/// The longest message an error carries; messages quote client input through `api::quote`,
/// and this bounds whatever else they hold.
const MAX_MESSAGE: usize = 512;

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE {
            let cut = (0..=MAX_MESSAGE).rev().find(|i| message.is_char_boundary(*i)).unwrap_or(0);
            message.truncate(cut);
            message.push('…');
        }
        ApiError { status, code, message, retry_after: None }
    }
    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, ErrorCode::NotFound, message)
    }
    pub fn unavailable(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl From<AccessError> for ApiError {
    /// Says nothing of any resource: only that the caller must authenticate, or retry.
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::Unauthenticated(why) => ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, why),
            AccessError::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, why),
            AccessError::Unavailable(_) => {
                ApiError::unavailable(ErrorCode::AuthUnavailable, "access cannot be checked now; retry shortly")
            }
            AccessError::Busy => {
                let mut error = ApiError::unavailable(
                    ErrorCode::TooManyReviews,
                    "too many access reviews are in flight over every caller; retry shortly",
                );
                error.retry_after = Some(1);
                error
            }
        }
    }
}

impl From<CursorError> for ApiError {
    fn from(e: CursorError) -> Self {
        let hint = match e {
            CursorError::Malformed => "",
            CursorError::OtherFilter => "; repeat the first request's filters",
        };
        ApiError::bad_request(ErrorCode::InvalidParameter, format!("query parameter continue is invalid: {e}{hint}"))
    }
}

impl From<FilterError> for ApiError {
    fn from(e: FilterError) -> Self {
        ApiError::bad_request(ErrorCode::InvalidParameter, e.to_string())
    }
}

impl From<NotInstalled> for ApiError {
    fn from(e: NotInstalled) -> Self {
        ApiError::unavailable(ErrorCode::ModuleNotInstalled, e.0)
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body =
            warp::reply::json(&ErrorBody { code: self.code, message: std::borrow::Cow::Borrowed(&self.message) });
        let mut response = warp::reply::with_status(body, self.status).into_response();
        let headers = response.headers_mut();
        match self.status {
            // Every route is read-only (RFC 9110 requires the list on a 405).
            StatusCode::METHOD_NOT_ALLOWED => {
                headers.insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            StatusCode::UNAUTHORIZED => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"execwatch\""));
            }
            _ => {}
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Maps every rejection to an `ApiError` response.
pub async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such endpoint; see /api/v1")
    } else if let Some(header) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(ErrorCode::InvalidHeader, format!("header {} is not valid", header.name()))
    } else if let Some(refused) = rejection.find::<warp::filters::cors::CorsForbidden>() {
        ApiError::new(
            StatusCode::FORBIDDEN,
            ErrorCode::CorsForbidden,
            format!("cross-origin request refused: {refused}"),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed, "only GET and HEAD are supported")
    } else {
        tracing::warn!(?rejection, "unhandled rejection");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, ErrorCode::Internal, "internal error")
    };
    Ok(error.into_response())
}
