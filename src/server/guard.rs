//! Who may talk to the demo: every request must name this server in its `Host` header (against
//! DNS rebinding), and `/ws` and every state-changing request must come from the page's own
//! origin (against cross-site WebSocket hijacking). Other names and origins are allowed only
//! when [`ServerOptions::allowed_origins`](super::ServerOptions::allowed_origins) lists them.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ServerError;

/// The `Host` values and origins this server answers.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    hosts: Vec<String>,
    origins: Vec<String>,
}

/// Checks an allow-list entry: `http://name[:port]` or `https://name[:port]`, nothing more.
pub(crate) fn parse_origin(origin: &str) -> Result<(String, String), ServerError> {
    let bad = |why: &str| ServerError::BadOrigin {
        origin: origin.to_string(),
        why: why.to_string(),
    };
    let normal = origin.trim_end_matches('/').to_ascii_lowercase();
    let (scheme, authority) = normal
        .split_once("://")
        .ok_or_else(|| bad("it has no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if authority.is_empty()
        || authority
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '@' | '*'))
    {
        return Err(bad(
            "it must be scheme://host[:port], without path or wildcard",
        ));
    }
    Ok((scheme.to_string(), authority.to_string()))
}

impl Guard {
    /// The guard of a server bound to `bound`, with the extra origins of the allow-list (already
    /// checked by [`parse_origin`]).
    pub(crate) fn new(bound: SocketAddr, allowed_origins: &[String]) -> Guard {
        let port = bound.port();
        let mut names = vec!["127.0.0.1".to_string(), "localhost".into(), "[::1]".into()];
        if !bound.ip().is_unspecified() {
            let ip = SocketAddr::new(bound.ip(), port).to_string();
            names.push(ip.trim_end_matches(&format!(":{port}")).to_string());
        }
        let mut hosts: Vec<String> = names.iter().map(|n| format!("{n}:{port}")).collect();
        if port == 80 {
            hosts.extend(names.iter().cloned());
        }
        let mut origins: Vec<String> = hosts.iter().map(|h| format!("http://{h}")).collect();
        for origin in allowed_origins {
            if let Ok((scheme, authority)) = parse_origin(origin) {
                origins.push(format!("{scheme}://{authority}"));
                hosts.push(authority.clone());
                if !authority.contains(':') || authority.ends_with(']') {
                    let default = if scheme == "https" { 443 } else { 80 };
                    hosts.push(format!("{authority}:{default}"));
                }
            }
        }
        hosts.dedup();
        origins.dedup();
        Guard { hosts, origins }
    }

    /// `Ok` when `host` (the `Host` header) names this server.
    pub(crate) fn check_host(&self, host: Option<&str>) -> Result<(), String> {
        let Some(host) = host else {
            return Err("the request has no Host header".into());
        };
        if self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Ok(());
        }
        Err(format!(
            "Host '{host}' is not this server (it answers {}); to serve it under another name, \
             allow that origin (ServerOptions::allowed_origins, --allow-origin)",
            self.hosts[0]
        ))
    }

    /// `Ok` when `origin` (the `Origin` header) is this server's page or allow-listed.
    pub(crate) fn check_origin(&self, origin: Option<&str>) -> Result<(), String> {
        let Some(origin) = origin else {
            return Err(
                "the request has no Origin header: open the demo's page, which \
                        connects with its own origin"
                    .into(),
            );
        };
        let normal = origin.trim_end_matches('/');
        if self.origins.iter().any(|o| o.eq_ignore_ascii_case(normal)) {
            return Ok(());
        }
        Err(format!(
            "origin '{origin}' may not use this server (only {} and the allow-list); to allow \
             it, add it to ServerOptions::allowed_origins (--allow-origin)",
            self.origins[0]
        ))
    }

    /// Checks one request: its host always; its origin for `/ws` and state-changing methods.
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<(), String> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        self.check_host(text(header::HOST))?;
        let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if path == "/ws" || !safe {
            self.check_origin(text(header::ORIGIN))?;
        }
        Ok(())
    }
}

/// The middleware: 403 with the reason for a request the guard refuses.
pub(crate) async fn guard(
    State(guard): State<Arc<Guard>>,
    request: Request,
    next: Next,
) -> Response {
    match guard.check(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(why) => (StatusCode::FORBIDDEN, format!("403 forbidden: {why}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(bound: &str, allowed: &[&str]) -> Guard {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        Guard::new(bound.parse().unwrap(), &allowed)
    }

    #[test]
    fn own_names_with_the_port_pass_others_do_not() {
        let g = guard("127.0.0.1:7860", &[]);
        for host in [
            "127.0.0.1:7860",
            "localhost:7860",
            "LOCALHOST:7860",
            "[::1]:7860",
        ] {
            assert!(g.check_host(Some(host)).is_ok(), "{host}");
        }
        for host in [
            "evil.example",
            "localhost",
            "127.0.0.1:7861",
            "evil.example:7860",
        ] {
            let e = g.check_host(Some(host)).unwrap_err();
            assert!(e.contains("allowed_origins"), "{e}");
        }
        assert!(g.check_host(None).is_err());
        assert!(g.check_origin(Some("http://localhost:7860")).is_ok());
        assert!(g.check_origin(Some("http://127.0.0.1:7860/")).is_ok());
        for origin in [
            "http://evil.example",
            "https://127.0.0.1:7860",
            "null",
            "http://localhost:1",
        ] {
            assert!(g.check_origin(Some(origin)).is_err(), "{origin}");
        }
        assert!(g.check_origin(None).unwrap_err().contains("no Origin"));
    }

    #[test]
    fn allow_list_adds_origins_and_their_hosts() {
        let g = guard(
            "0.0.0.0:8000",
            &["https://demo.example", "http://10.0.0.2:8000"],
        );
        assert!(g.check_origin(Some("https://demo.example")).is_ok());
        assert!(g.check_host(Some("demo.example")).is_ok());
        assert!(g.check_host(Some("demo.example:443")).is_ok());
        assert!(g.check_origin(Some("http://10.0.0.2:8000")).is_ok());
        assert!(g.check_host(Some("10.0.0.2:8000")).is_ok());
        assert!(g.check_origin(Some("http://demo.example")).is_err());
        assert!(g.check_host(Some("0.0.0.0:8000")).is_err());
    }

    #[test]
    fn websocket_and_unsafe_methods_need_the_origin() {
        let g = guard("127.0.0.1:9000", &[]);
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:9000".parse().unwrap());
        assert!(g.check(&Method::GET, "/api/status", &headers).is_ok());
        assert!(g.check(&Method::GET, "/ws", &headers).is_err());
        assert!(g.check(&Method::POST, "/api/status", &headers).is_err());
        headers.insert(header::ORIGIN, "http://127.0.0.1:9000".parse().unwrap());
        assert!(g.check(&Method::GET, "/ws", &headers).is_ok());
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(g.check(&Method::GET, "/ws", &headers).is_err());
    }

    #[test]
    fn bad_allow_list_entries_are_refused() {
        for bad in [
            "*",
            "demo.example",
            "ftp://x",
            "http://",
            "http://a/b",
            "http://a b",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_origin("HTTP://Demo.Example:8080/").unwrap(),
            ("http".into(), "demo.example:8080".into())
        );
    }
}
