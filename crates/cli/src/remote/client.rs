//! The service's API seen from the command line: one blocking HTTP client
//! with the token, answers read into the shared types of
//! `coffer-api-types`, and the API's error answer kept as a typed
//! [`ServiceError`] so the remote command line exits with the same code as
//! the local one would for the same error.

use anyhow::{Context, Result};
use coffer_api_types::ErrorCode;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

pub(crate) struct Client {
    pub(crate) http: reqwest::blocking::Client,
    pub(crate) base: String,
    pub(crate) token: String,
}

/// An error answer of the service: its status, wire code, message, the
/// request field it names and its hint.
#[derive(Debug, thiserror::Error)]
#[error("{message}{} [{status}]", field.as_ref().map(|f| format!(" (field {f})")).unwrap_or_default())]
pub(crate) struct ServiceError {
    pub(crate) status: u16,
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) field: Option<String>,
    pub(crate) hint: Option<String>,
}

impl ServiceError {
    fn from_answer(status: reqwest::StatusCode, value: &Value) -> ServiceError {
        let err = &value["error"];
        let text = |key: &str| err[key].as_str().map(str::to_string);
        ServiceError {
            status: status.as_u16(),
            code: err["code"]
                .as_str()
                .map_or(ErrorCode::Internal, ErrorCode::from_api_code),
            message: text("message").unwrap_or_else(|| value.to_string()),
            field: text("field"),
            hint: text("hint"),
        }
    }
}

impl Client {
    /// One request; the answer as JSON, or the service's error.
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let response = req
            .send()
            .with_context(|| format!("cannot reach the service at {}", self.base))?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            Ok(value)
        } else {
            Err(ServiceError::from_answer(status, &value).into())
        }
    }

    /// One request with a typed body and a typed answer.
    pub(crate) fn typed<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T> {
        let body = body
            .map(serde_json::to_value)
            .transpose()
            .context("the request cannot be written as JSON")?;
        let value = self.call(method, path, body)?;
        serde_json::from_value(value).with_context(|| {
            format!("the service's answer to {path} is not what this coffer expects: are the service and this command line the same version?")
        })
    }

    pub(crate) fn get_as<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.typed(reqwest::Method::GET, path, None::<&()>)
    }

    /// A POST with a typed body and a typed answer.
    pub(crate) fn post_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        self.typed(reqwest::Method::POST, path, Some(body))
    }

    /// A PUT with a typed body and a typed answer.
    pub(crate) fn put_as<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T> {
        self.typed(reqwest::Method::PUT, path, Some(body))
    }
}

/// A path segment, percent-encoded.
pub(crate) fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
