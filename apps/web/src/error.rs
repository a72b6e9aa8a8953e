//! The one error type of the handlers: a status, a short message and, where the client can act
//! on it, a stable code. Details go to the log, never to the client.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use smimekit_service::{ErrorKind, ServiceError};

/// A refused or failed request, as every handler returns it.
#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub message: String,
    /// A stable word a client can act on (`reauth`: give the password again; `rate-limit`).
    pub code: Option<&'static str>,
    /// Seconds to wait (`Retry-After`), for 429.
    pub retry_after: Option<i64>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: None,
            retry_after: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// 401: no session.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "sign in first")
    }

    /// 403 with a reason.
    pub fn forbidden(why: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, why)
    }

    /// 400 naming what is wrong with the request.
    pub fn bad_request(why: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, why)
    }
}

impl From<ServiceError> for AppError {
    fn from(e: ServiceError) -> Self {
        let status = match e.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::Stale => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Invalid | ErrorKind::Unsupported => StatusCode::BAD_REQUEST,
            ErrorKind::Malformed | ErrorKind::Key => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        tracing::warn!(error = %e, "request failed");
        // Client errors say what was wrong with the request; server faults say nothing.
        let message = if status.is_server_error() {
            "the server could not do this; see its log".to_string()
        } else {
            e.message
        };
        AppError::new(status, message)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut body = serde_json::json!({ "error": self.message });
        if let Some(code) = self.code {
            body["code"] = code.into();
        }
        let mut res = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
        res
    }
}
