//! The Flux Operator input provider (`ResourceSetInputProvider` of type
//! `ExternalService`, CONTRACTS section 2): `GET /flux/v1/inputs?env=NAME`
//! answers `{"inputs":[{"id","tag","digest","image","env"}]}` for a
//! configured environment, first = the tag to run. `id` is the decimal
//! Adler-32 of the tag, the id Flux's own `OCIArtifactTag` provider gives,
//! so a ResourceSet can switch providers without changing.
//!
//! Answers are reused for `flux.cacheSeconds`; while the registry is down a
//! previous answer is served stale (with a `Warning` header and a log
//! line), and without one the answer is 503 so that Flux retries. The body
//! never exceeds Flux's 900 KiB cap.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use crate::http::Credential;
use crate::registry::config::{Config, FluxAuth};
use crate::registry::filter::adler32_id;
use crate::registry::{ResolveError, Resolver};

/// The path Flux's `spec.url` names.
pub const INPUTS_PATH: &str = "/flux/v1/inputs";
/// Flux reads at most this much of a body.
pub const MAX_BODY: usize = 900 * 1024;

/// One input, as a ResourceSet templates it (`<< inputs.tag >>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// Decimal Adler-32 of the tag.
    pub id: String,
    /// The tag.
    pub tag: String,
    /// Its digest.
    pub digest: String,
    /// `repository:tag@digest`.
    pub image: String,
    /// The environment asked for.
    pub env: String,
}

/// The last answer for one environment.
struct Answer {
    at: Instant,
    inputs: Vec<Input>,
}

/// The endpoint's state.
pub struct FluxInputs {
    resolver: Arc<Resolver>,
    answers: std::sync::Mutex<HashMap<String, Arc<Mutex<Option<Answer>>>>>,
}

impl FluxInputs {
    /// The endpoint over `resolver`'s environments.
    pub fn new(resolver: Arc<Resolver>) -> Self {
        Self {
            resolver,
            answers: std::sync::Mutex::default(),
        }
    }

    fn slot(&self, env: &str) -> Arc<Mutex<Option<Answer>>> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(env.to_owned())
            .or_default()
            .clone()
    }

    /// `GET /flux/v1/inputs`.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(INPUTS_PATH, get(inputs_handler))
            .with_state(self)
    }
}

fn error(status: StatusCode, message: String, extra: serde_json::Value) -> Response {
    let mut body = json!({"error": message});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    (status, axum::Json(body)).into_response()
}

fn authorised(auth: &FluxAuth, headers: &HeaderMap) -> bool {
    let credential = match auth {
        FluxAuth::None => return true,
        FluxAuth::Bearer(token) => Credential::Bearer(token.clone()),
        FluxAuth::Basic(user, password) => Credential::Basic(user.clone(), password.clone()),
    };
    credential.presented_in(headers)
}

/// The body for `inputs`, cut to fit [`MAX_BODY`].
fn body(inputs: &[Input]) -> Vec<u8> {
    let mut n = inputs.len();
    loop {
        let bytes = serde_json::to_vec(&json!({"inputs": &inputs[..n]})).unwrap_or_default();
        if bytes.len() <= MAX_BODY || n == 0 {
            if n < inputs.len() {
                tracing::warn!(
                    kept = n,
                    of = inputs.len(),
                    "flux: inputs cut to fit Flux's 900 KiB limit; lower the filter's limit"
                );
            }
            return bytes;
        }
        // Shrink in proportion, at least by one.
        let ratio = MAX_BODY as f64 / bytes.len() as f64;
        n = ((n as f64 * ratio) as usize).min(n - 1);
    }
}

fn reply(inputs: &[Input], stale: Option<&str>) -> Response {
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body(inputs),
    )
        .into_response();
    if let Some(reason) = stale
        && let Ok(v) = HeaderValue::from_str(&format!(
            "110 gameops \"Response is Stale: {}\"",
            reason.replace(['"', '\n', '\r'], "'")
        ))
    {
        response.headers_mut().insert(header::WARNING, v);
    }
    response
}

#[derive(Deserialize)]
struct Params {
    env: Option<String>,
}

/// `GET /inputs?env=NAME`: checks the caller, picks the environment, answers.
async fn inputs_handler(
    State(flux): State<Arc<FluxInputs>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let config = flux.resolver.config();
    if !authorised(&config.flux_auth, &headers) {
        return unauthorised(&config.flux_auth);
    }
    match environment(config, params) {
        Ok(env) => answer(&flux, config, env).await,
        Err((code, message)) => {
            let known = config.environment_names();
            error(code, message, json!({"known": known}))
        }
    }
}

/// 401 with the challenge for the configured scheme.
fn unauthorised(auth: &FluxAuth) -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized: send the token (Flux secretRef key `token`) or the username and password configured under flux.auth in gameops.yaml".into(),
        json!({}),
    );
    let challenge = match auth {
        FluxAuth::Basic(..) => "Basic realm=\"gameops\"",
        _ => "Bearer realm=\"gameops\"",
    };
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

/// The configured environment `?env=` names, or why not (400 or 404, the
/// message listing the known ones).
fn environment(config: &Config, params: Params) -> Result<String, (StatusCode, String)> {
    let known = config.environment_names();
    let Some(env) = params.env.filter(|e| !e.is_empty()) else {
        return Err((
            StatusCode::BAD_REQUEST,
            format!(
                "give the environment as ?env=NAME in the provider's spec.url; known: {}",
                known.join(", ")
            ),
        ));
    };
    if config.environments.contains_key(&env) {
        return Ok(env);
    }
    let known = if known.is_empty() {
        "none".to_owned()
    } else {
        known.join(", ")
    };
    Err((
        StatusCode::NOT_FOUND,
        format!("environment {env:?} is not configured in gameops.yaml; known: {known}"),
    ))
}

/// The inputs of `env`: the cached answer while it is fresh, else resolved
/// again (a transient registry failure serves the last answer, with a
/// warning).
async fn answer(flux: &FluxInputs, config: &Config, env: String) -> Response {
    let slot = flux.slot(&env);
    let mut answer = slot.lock().await;
    if let Some(a) = answer.as_ref()
        && a.at.elapsed() < config.flux_cache
    {
        return reply(&a.inputs, None);
    }
    let inputs = match flux.resolver.resolve_environment(&env).await {
        Ok(resolved) => resolved
            .into_iter()
            .map(|r| Input {
                id: adler32_id(&r.tag),
                tag: r.tag,
                digest: r.digest,
                image: r.image,
                env: env.clone(),
            })
            .collect(),
        Err(ResolveError::NoMatch { .. }) => Vec::new(),
        Err(ResolveError::Registry(e)) if e.is_transient() => {
            return match answer.as_ref() {
                Some(stale) => {
                    tracing::warn!(env, error = %e, age_s = stale.at.elapsed().as_secs(), "flux: registry unavailable; serving the last answer");
                    reply(&stale.inputs, Some(&e.to_string()))
                }
                None => error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{e}; Flux will retry"),
                    json!({}),
                ),
            };
        }
        Err(e) => return error(StatusCode::BAD_GATEWAY, e.to_string(), json!({})),
    };
    let response = reply(&inputs, None);
    *answer = Some(Answer {
        at: Instant::now(),
        inputs,
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(tag: &str) -> Input {
        Input {
            id: adler32_id(tag),
            tag: tag.into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            image: format!(
                "registry.example.com/game/server:{tag}@sha256:{}",
                "a".repeat(64)
            ),
            env: "staging".into(),
        }
    }

    #[test]
    fn bodies_never_exceed_flux_cap() {
        let many: Vec<Input> = (0..10_000).map(|i| input(&format!("v1.0.{i}"))).collect();
        let b = body(&many);
        assert!(b.len() <= MAX_BODY, "{}", b.len());
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        let kept = v["inputs"].as_array().unwrap();
        assert!(kept.len() > 1000 && kept.len() < 10_000, "{}", kept.len());
        assert_eq!(kept[0]["tag"], "v1.0.0", "the first inputs are kept");
        let few = body(&many[..3]);
        let v: serde_json::Value = serde_json::from_slice(&few).unwrap();
        assert_eq!(v["inputs"].as_array().unwrap().len(), 3);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body(&[])).unwrap(),
            json!({"inputs": []})
        );
    }

    #[test]
    fn auth_accepts_only_what_is_configured() {
        let mut h = HeaderMap::new();
        assert!(authorised(&FluxAuth::None, &h));
        assert!(!authorised(&FluxAuth::Bearer("t".into()), &h));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        assert!(authorised(&FluxAuth::Bearer("t".into()), &h));
        assert!(!authorised(&FluxAuth::Bearer("u".into()), &h));
        assert!(!authorised(&FluxAuth::Basic("a".into(), "b".into()), &h));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic YTpi"),
        );
        assert!(authorised(&FluxAuth::Basic("a".into(), "b".into()), &h));
        assert!(!authorised(&FluxAuth::Basic("a".into(), "c".into()), &h));
    }
}
