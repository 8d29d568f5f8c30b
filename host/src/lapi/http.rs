//! The API over HTTP/1.1 (hyper, on the daemon's tokio runtime). Every
//! request needs a bouncer's `X-Api-Key`; a missing or wrong one gets 403,
//! as from CrowdSec. It reads little and holds little: request heads
//! within [`HEAD_TIMEOUT`], bodies of at most [`MAX_BODY`] bytes, at most
//! [`MAX_CONNECTIONS`] connections at once (more are closed at once).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use super::Lapi;

/// How long a client may take to send a request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request body read (`usage-metrics`).
pub const MAX_BODY: usize = 256 * 1024;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 256;

/// Serve bouncers on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, lapi: Arc<Lapi>) {
    let bound = crate::listen::Bound { max: MAX_CONNECTIONS, warn: true };
    crate::listen::accept_bounded(listener, bound, "[lapi]", move |stream, peer| {
        let lapi = lapi.clone();
        async move {
            let service = hyper::service::service_fn(move |request| {
                let lapi = lapi.clone();
                async move { Ok::<_, Infallible>(answer(lapi, request).await) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!("[lapi] {peer}: {e}");
            }
        }
    })
    .await
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    response
}

fn message(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    json(status, serde_json::json!({ "message": text }).to_string())
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Stream,
    Decisions,
    UsageMetrics,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    let path = format!("/{}", path.trim_matches('/'));
    match (method, path.as_str()) {
        (&Method::GET | &Method::HEAD, "/v1/decisions/stream") => Route::Stream,
        (&Method::GET | &Method::HEAD, "/v1/decisions") => Route::Decisions,
        (&Method::POST, "/v1/usage-metrics") => Route::UsageMetrics,
        _ => Route::NotFound,
    }
}

/// Run `work` off the runtime's threads: with 100,000 bans a pull takes
/// tens of milliseconds, which the control socket should not wait for.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T, String> + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(work).await.map_err(|e| e.to_string())?
}

async fn answer(lapi: Arc<Lapi>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let route = route(request.method(), request.uri().path());
    if route == Route::NotFound {
        return message(StatusCode::NOT_FOUND, "Page or Method not found");
    }
    let key = request.headers().get("x-api-key").and_then(|k| k.to_str().ok()).unwrap_or("");
    let Some(bouncer) = (!key.is_empty()).then(|| lapi.bouncer(key)).flatten() else {
        tracing::warn!(
            "[lapi] a request for {} with {}: 403",
            request.uri().path(),
            if key.is_empty() { "no X-Api-Key" } else { "an unknown X-Api-Key" }
        );
        return message(StatusCode::FORBIDDEN, "access forbidden");
    };
    let head = request.method() == Method::HEAD;
    let query = request.uri().query().unwrap_or("").to_string();
    let mut response = match route {
        // HEAD checks the key only, and moves no stream on: the next GET
        // still says everything since the previous GET.
        Route::Stream | Route::Decisions if head => json(StatusCode::OK, String::new()),
        Route::Stream => match blocking({
            let (lapi, bouncer) = (lapi.clone(), bouncer.clone());
            move || {
                lapi.pull(&bouncer, &query)
                    .map(|a| (serde_json::to_string(&a).unwrap_or_default(), a.new.len(), a.deleted.len()))
            }
        })
        .await
        {
            Ok((body, new, deleted)) => {
                if new + deleted > 0 {
                    tracing::debug!("[lapi] {bouncer}: {new} new, {deleted} deleted decision(s)");
                }
                json(StatusCode::OK, body)
            }
            Err(e) => message(StatusCode::BAD_REQUEST, &e),
        },
        Route::Decisions => match blocking({
            let lapi = lapi.clone();
            move || lapi.lookup(&query)
        })
        .await
        {
            // CrowdSec answers `null` when nothing matches.
            Ok(found) if found.is_empty() => json(StatusCode::OK, "null".into()),
            Ok(found) => json(StatusCode::OK, serde_json::to_string(&found).unwrap_or_default()),
            Err(e) => message(StatusCode::BAD_REQUEST, &e),
        },
        Route::UsageMetrics => {
            match Limited::new(request.into_body(), MAX_BODY).collect().await.map(|b| b.to_bytes()) {
                Ok(body) if serde_json::from_slice::<serde_json::Value>(&body).is_ok() => {
                    json(StatusCode::CREATED, String::new())
                }
                Ok(_) => message(StatusCode::BAD_REQUEST, "the body is not JSON"),
                Err(_) => message(StatusCode::PAYLOAD_TOO_LARGE, "the body is too large"),
            }
        }
        Route::NotFound => message(StatusCode::NOT_FOUND, "Page or Method not found"),
    };
    if head {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::GET, "/v1/decisions/stream"), Route::Stream);
        assert_eq!(route(&Method::HEAD, "//v1/decisions/stream/"), Route::Stream);
        assert_eq!(route(&Method::GET, "/v1/decisions"), Route::Decisions);
        assert_eq!(route(&Method::POST, "/v1/usage-metrics"), Route::UsageMetrics);
        assert_eq!(route(&Method::DELETE, "/v1/decisions"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/v1/alerts"), Route::NotFound);
    }
}
