//! The HTTP client for targets people name (a project's webhook channel): checked again
//! when it is used, not only when it was saved. A name is resolved here and only its public
//! addresses are dialled, so a name that points (or is re-pointed) at a loopback, link-local
//! or private address reaches nothing unless `inputs.allow_private_targets`; and no redirect
//! is followed, so a target cannot send aiops somewhere else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::model::target::is_public;

/// A client for people's targets: public addresses only (unless `allow_private`), no
/// redirects, `timeout` per request.
pub fn client(timeout: Duration, allow_private: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("aiops/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none());
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(Arc::new(PublicOnly))
    };
    builder.build().expect("the HTTP client builds")
}

/// Resolves a name to its public addresses; errs, naming what it found, when it has none.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public = public_only(&found);
            if public.is_empty() {
                let addresses: Vec<String> = found.iter().map(|a| a.ip().to_string()).collect();
                return Err(format!(
                    "{host} resolves to {}, a loopback, link-local or private address; set inputs.allow_private_targets to allow it",
                    addresses.join(", ")
                )
                .into());
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

fn public_only(found: &[SocketAddr]) -> Vec<SocketAddr> {
    found
        .iter()
        .filter(|a| is_public(a.ip()))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A name the host resolves to loopback (`localhost`, the machine's own name) is
    /// refused at connect time, and the reason names the address; with private targets
    /// allowed, the same request reaches the receiver.
    #[tokio::test]
    async fn names_of_internal_addresses_are_refused_when_dialled() {
        let receiver = axum::Router::new().fallback(|| async { "took it" });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        let url = format!("http://localhost:{port}/hook");

        let refused = client(Duration::from_secs(5), false)
            .post(&url)
            .send()
            .await
            .unwrap_err();
        let chain = crate::notify::post::with_causes(&refused);
        assert!(chain.contains("resolves to 127.0.0.1"), "{chain}");

        let allowed = client(Duration::from_secs(5), true)
            .post(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.text().await.unwrap(), "took it");
    }

    /// A target's redirect is not followed.
    #[tokio::test]
    async fn redirects_are_not_followed() {
        let receiver = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(|| async { axum::response::Redirect::temporary("/other") }),
            )
            .route("/other", axum::routing::post(|| async { "followed" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, receiver).await });
        let answer = client(Duration::from_secs(5), true)
            .post(&url)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::TEMPORARY_REDIRECT);
    }

    #[test]
    fn only_public_addresses_are_kept() {
        let found: Vec<SocketAddr> = ["127.0.0.1:0", "10.0.0.1:0", "[::1]:0", "93.184.215.14:0"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            public_only(&found),
            vec!["93.184.215.14:0".parse().unwrap()]
        );
    }
}
