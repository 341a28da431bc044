//! Stand-ins for services the tests cannot reach: they answer like the real service and
//! record what they received, and the real client code talks to them over HTTP.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// What the stand-in GitHub API received: (create | edit | installation_token | unknown,
/// path, body with the request's `authorization` header added).
pub type Recorded = Arc<Mutex<Vec<(String, String, Value)>>>;

/// A stand-in for api.github.com that records comment, pull request and App token calls
/// and answers like GitHub.
pub async fn github_stand_in() -> (String, Recorded) {
    let recorded: Recorded = Arc::default();
    let comment = |id: u64, body: &str| {
        let mut comment =
            super::fixture_json("github/issue_comment.created.json")["comment"].clone();
        comment["id"] = json!(id);
        comment["body"] = json!(body);
        comment
    };
    // POST /repos/{o}/{r}/issues/{n}/comments creates; PATCH (or POST, as octocrab sends it)
    // /repos/{o}/{r}/issues/comments/{id} edits. Recorded as ("create" | "edit", path, body).
    let app = axum::Router::new()
        .fallback(
            move |State(rec): State<Recorded>,
                  method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  raw: axum::body::Bytes| async move {
                let path = uri.path().to_string();
                let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
                let mut body = axum::Json(serde_json::from_slice::<Value>(&raw).unwrap_or(json!({})));
                let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
                body.0["authorization"] = json!(authorization);
                let text = body.0["body"].as_str().unwrap_or_default().to_string();
                let text = text.as_str();
                let (kind, answer) = match (method.as_str(), parts.as_slice()) {
                    ("POST", ["app", "installations", _, "access_tokens"]) => (
                        "installation_token",
                        (
                            StatusCode::CREATED,
                            axum::Json(json!({"token": "ghs_installation_token", "expires_at": "2099-01-01T00:00:00Z", "permissions": {"issues": "write"}, "repository_selection": "all"})),
                        ),
                    ),
                    ("POST", ["repos", _, _, "issues", "comments", id])
                    | ("PATCH", ["repos", _, _, "issues", "comments", id]) => (
                        "edit",
                        (
                            StatusCode::OK,
                            axum::Json(comment(id.parse().unwrap(), text)),
                        ),
                    ),
                    ("POST", ["repos", owner, repo, "pulls"]) => (
                        "pull",
                        (
                            StatusCode::CREATED,
                            axum::Json(json!({
                                "id": 99, "number": 7, "url": format!("{}/repos/{owner}/{repo}/pulls/7", "http://stand-in"),
                                "html_url": format!("https://github.example/{owner}/{repo}/pull/7"),
                                "head": {"ref": body.0["head"], "sha": "0"}, "base": {"ref": body.0["base"], "sha": "0"},
                            })),
                        ),
                    ),
                    ("POST", ["repos", _, _, "issues", _, "comments"]) => (
                        "create",
                        (StatusCode::CREATED, axum::Json(comment(4242, text))),
                    ),
                    _ => (
                        "unknown",
                        (
                            StatusCode::NOT_FOUND,
                            axum::Json(json!({"message": "Not Found"})),
                        ),
                    ),
                };
                rec.lock()
                    .unwrap()
                    .push((kind.to_string(), path.clone(), body.0.clone()));
                answer
            },
        )
        .with_state(recorded.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, recorded)
}
