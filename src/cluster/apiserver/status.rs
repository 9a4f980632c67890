//! Kubernetes `Status` errors: every failed request is answered with one,
//! carrying the HTTP code, a machine-readable reason and a sentence that says
//! what was wrong.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One invalid field, as reported in `details.causes`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    /// The field's path, e.g. `spec.replicas`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, ...
    pub reason: &'static str,
    /// What is wrong, without the field (`Invalid value: -1: ...`), as
    /// `details.causes[].message` carries it.
    pub message: String,
}

impl FieldError {
    /// A value of the wrong type or out of range.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {}: {detail}", short(value)),
        }
    }

    /// A missing required value.
    pub fn required(field: &str, detail: &str) -> Self {
        let message = if detail.is_empty() {
            "Required value".to_owned()
        } else {
            format!("Required value: {detail}")
        };
        Self {
            field: field.to_owned(),
            reason: "FieldValueRequired",
            message,
        }
    }

    /// A change the API does not allow (`field.Forbidden`).
    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
        }
    }

    /// A value over a size limit (`field.TooLong`: the value is omitted).
    pub fn too_long(field: &str, max_bytes: usize) -> Self {
        Self {
            field: field.to_owned(),
            reason: "FieldValueTooLong",
            message: format!("Too long: may not be more than {max_bytes} bytes"),
        }
    }

    /// `field: message`, as the Status message lists it.
    pub fn full(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// A value as Kubernetes quotes it in messages: strings quoted, the rest as JSON, long ones cut.
fn short(value: &Value) -> String {
    let s = value.to_string();
    if s.len() > 80 {
        let cut: String = s.chars().take(77).collect();
        format!("{cut}...")
    } else {
        s
    }
}

/// A failed request, rendered as a `Status` object.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// HTTP status.
    pub code: StatusCode,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, ...
    pub reason: &'static str,
    /// One sentence for a person.
    pub message: String,
    /// `details`, when the error is about one object.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// With the `details` of a named object (`resource.group` and name).
    fn about(mut self, qualified: &str, name: &str) -> Self {
        let (plural, group) = qualified.split_once('.').unwrap_or((qualified, ""));
        self.details = Some(json!({"name": name, "group": group, "kind": plural}));
        self
    }

    /// 400: the request itself is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    /// 404 for a named object (`gameservers.game.kruise.io "x" not found`).
    pub fn not_found(qualified: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{qualified} \"{name}\" not found"),
        )
        .about(qualified, name)
    }

    /// 404 for a path that serves nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 409 for a create of an existing name.
    pub fn already_exists(qualified: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("{qualified} \"{name}\" already exists"),
        )
        .about(qualified, name)
    }

    /// 409 for a write based on a stale resourceVersion.
    pub fn conflict(qualified: &str, name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        )
        .about(qualified, name)
    }

    /// 409 for a server-side apply that would change fields other managers
    /// own (apimachinery `errors.NewApplyConflict`: no name, one
    /// `FieldManagerConflict` cause per field).
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "Conflict", message);
        e.details = Some(json!({"causes": causes}));
        e
    }

    /// 422 naming every invalid field.
    pub fn invalid(kind_group: &str, name: &str, errors: Vec<FieldError>) -> Self {
        let list = if errors.len() == 1 {
            errors[0].full()
        } else {
            format!(
                "[{}]",
                errors
                    .iter()
                    .map(FieldError::full)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let (kind, group) = kind_group.split_once('.').unwrap_or((kind_group, ""));
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| json!({"reason": e.reason, "message": e.message, "field": e.field}))
            .collect();
        let mut e = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            format!("{kind_group} \"{name}\" is invalid: {list}"),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": kind, "causes": causes}));
        e
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("Request entity too large: limit is {limit}"),
        )
    }

    /// 415 for a patch type the resource does not support.
    pub fn unsupported_media(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            message,
        )
    }

    /// 405 for a verb the resource does not support.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", message)
    }

    /// 401 for a missing or wrong bearer token.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// 410 for a watch or continue token older than the kept history.
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "Expired", message)
    }

    /// 500 for a storage failure; nothing was written.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }

    /// 503 while the server is shutting down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            message,
        )
    }

    /// The `Status` object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code.as_u16(),
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.to_status().to_string();
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_matches_the_apiserver_wording() {
        let status = ApiError::not_found("gameservers.game.kruise.io", "x").to_status();
        assert_eq!(
            status["message"],
            "gameservers.game.kruise.io \"x\" not found"
        );
        assert_eq!(status["reason"], "NotFound");
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["kind"], "gameservers");
    }

    #[test]
    fn invalid_lists_each_field() {
        let errors = vec![
            FieldError::invalid(
                "spec.replicas",
                &json!(-1),
                "should be greater than or equal to 0",
            ),
            FieldError::required("spec.gameServerTemplate", ""),
        ];
        let status = ApiError::invalid("GameServerSet.game.kruise.io", "m", errors).to_status();
        let message = status["message"].as_str().unwrap();
        assert!(message.starts_with(
            "GameServerSet.game.kruise.io \"m\" is invalid: [spec.replicas: Invalid value: -1"
        ));
        assert_eq!(
            status["details"]["causes"][1]["field"],
            "spec.gameServerTemplate"
        );
        assert_eq!(status["code"], 422);
    }
}
