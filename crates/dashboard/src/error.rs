//! Errors every route answers with: a status, the field at fault (if any) and the reason.
//! The API answers JSON (`{"error": {"field": ..., "reason": ...}}`); pages render the same
//! message in HTML.

use axum::http::StatusCode;
use serde::Serialize;

/// An error answered to the client.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppError {
    /// HTTP status.
    #[serde(skip)]
    pub status: StatusCode,
    /// The field or parameter at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Why.
    pub reason: String,
}

impl AppError {
    fn new(status: StatusCode, field: Option<&str>, reason: &str) -> Self {
        Self { status, field: field.map(str::to_string), reason: reason.into() }
    }

    /// 400: a malformed parameter.
    pub fn bad_request(field: &str, reason: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(field), reason)
    }

    /// 401: not signed in.
    pub fn unauthenticated() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, None, "sign in first")
    }

    /// 403: the role does not allow it.
    pub fn forbidden(reason: &str) -> Self {
        Self::new(StatusCode::FORBIDDEN, None, reason)
    }

    /// 404: nothing there (or nothing the viewer may see: the two are not told apart).
    pub fn not_found(field: &str, reason: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(field), reason)
    }

    /// 409: the request was made against a state that has changed.
    pub fn conflict(reason: &str) -> Self {
        Self::new(StatusCode::CONFLICT, None, reason)
    }

    /// 422: the request is well-formed but not allowed by the rules.
    pub fn unprocessable(field: &str, reason: &str) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, Some(field), reason)
    }

    /// 429: too many failed sign-ins.
    pub fn too_many(reason: &str) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, None, reason)
    }

    /// 503: a dependency did not answer; nothing was changed.
    pub fn unavailable(reason: &str) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, None, reason)
    }

    /// 500.
    pub fn internal(reason: &str) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, None, reason)
    }
}

impl From<pv_store::StoreError> for AppError {
    fn from(e: pv_store::StoreError) -> Self {
        tracing::error!(error = %e, "reading the store failed");
        AppError::unavailable(&format!("the store did not answer: {e}"))
    }
}

impl From<crate::workflow::ActError> for AppError {
    fn from(e: crate::workflow::ActError) -> Self {
        use crate::workflow::ActError;
        use pv_workflow::Refusal;
        match &e {
            ActError::Refused(Refusal::Stale { .. }) => AppError::conflict(&e.to_string()),
            ActError::Refused(Refusal::Transition { field, .. } | Refusal::Field { field, .. }) => {
                let reason = e.to_string();
                let reason = reason.strip_prefix(&format!("{field}: ")).unwrap_or(&reason).to_string();
                AppError::unprocessable(field, &reason)
            }
            ActError::Produce(_) | ActError::Kafka(_) | ActError::Store(_) => {
                AppError::unavailable(&e.to_string())
            }
            ActError::Encode(_) => AppError::internal(&e.to_string()),
        }
    }
}
