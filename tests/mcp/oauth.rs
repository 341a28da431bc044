//! aiops as the OAuth 2.1 authorization server of `/mcp`, driven by the MCP SDK's own OAuth
//! client (rmcp `auth`: discovery from the 401, dynamic registration, PKCE, the `iss` check,
//! token exchange, refresh) and by hand for each refusal, over real HTTP on loopback. The
//! person signs in (a session cookie) and consents on the real page.

use std::sync::Arc;

use aiops::model::ProjectRole;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::auth::{AuthClient, AuthorizationManager};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{call, ok, text_of};
use crate::common::pages::{client, csrf_of, page, post_form};
use crate::common::people::member;
use crate::common::{Db, TestApp, wait_for};

/// Where the test's MCP client says it receives codes (nothing listens: the test reads the
/// `Location` the consent answers with).
const CALLBACK: &str = "http://127.0.0.1:9/callback";

async fn app_with_people(
    db: Db,
    adjust: impl FnOnce(&mut aiops::config::Config),
) -> (TestApp, String, String) {
    let app = TestApp::spawn_with(db, adjust).await;
    let repo = crate::common::git_repo();
    crate::common::pipeline::add_project(&app, "shop", repo.path(), json!({})).await;
    std::mem::forget(repo);
    let approver = member(&app, "ana", "shop", ProjectRole::Approver).await;
    let viewer = member(&app, "vic", "shop", ProjectRole::Viewer).await;
    (app, approver, viewer)
}

/// The person at `session` opens `authorize_url`, sees the consent page and answers
/// `decision`; the URL the browser is sent to next.
async fn consent(app: &TestApp, session: &str, authorize_url: &str, decision: &str) -> url::Url {
    let path = authorize_url
        .strip_prefix(&app.url(""))
        .expect("an authorize URL of this service");
    let (status, html) = page(app, session, path).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(html.contains("consent-form"), "{html}");
    let asked = url::Url::parse(authorize_url).unwrap();
    let mut form: Vec<(String, String)> = asked.query_pairs().into_owned().collect();
    form.push(("csrf".into(), csrf_of(&html)));
    form.push(("decision".into(), decision.into()));
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = client()
        .post(app.url("/oauth/authorize"))
        .header("cookie", format!("{}={session}", aiops::sessions::COOKIE))
        .form(&pairs)
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{:?}",
        response.text().await
    );
    let location = response.headers()["location"].to_str().unwrap().to_string();
    url::Url::parse(&location).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// POST `/mcp` with bearer `token`: the status and the `WWW-Authenticate` header.
async fn mcp_status(app: &TestApp, host: Option<&str>, token: &str) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .post(app.url("/mcp"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "probe", "version": "1"}}}),
        );
    if let Some(host) = host {
        request = request.header("host", host);
    }
    let response = request.send().await.unwrap();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status(), challenge)
}

/// A public client registered by hand for `redirect`.
async fn register(app: &TestApp, redirect: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url("/oauth/register"))
        .json(
            &json!({"client_name": "hand-made", "redirect_uris": [redirect],
                      "token_endpoint_auth_method": "none"}),
        )
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A PKCE verifier and its S256 challenge.
fn pkce() -> (String, String) {
    let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(
    app: &TestApp,
    client_id: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = url::Url::parse(&app.url("/oauth/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", CALLBACK)
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "st-1");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// A code for `client_id` consented to by `session`, and its verifier.
async fn code_for(
    app: &TestApp,
    session: &str,
    client_id: &str,
    extra: &[(&str, &str)],
) -> (String, String) {
    let (verifier, challenge) = pkce();
    let back = consent(
        app,
        session,
        &authorize_url(app, client_id, &challenge, extra),
        "allow",
    )
    .await;
    (param(&back, "code").expect("a code"), verifier)
}

async fn exchange(
    app: &TestApp,
    client_id: &str,
    code: &str,
    verifier: &str,
) -> (StatusCode, Value) {
    token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("client_id", client_id),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await
}

/// The whole flow with the SDK's client: 401 → metadata → registration → consent → token →
/// tool calls → refresh (rotation; the old refresh token replayed revokes the grant) →
/// revocation from "my account".
pub async fn the_sdk_client_connects_through_oauth(db: Db) {
    let (app, session, _) = app_with_people(db, |_| {}).await;
    let (status, challenge) = mcp_status(&app, None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.contains("resource_metadata="), "{challenge}");

    let mut manager = AuthorizationManager::new(app.url("/mcp")).await.unwrap();
    let resolved = manager
        .resolve_metadata_from_challenge(Some(&challenge))
        .await
        .unwrap();
    let metadata = resolved.metadata;
    assert_eq!(
        metadata.issuer.as_deref(),
        Some(app.url("").as_str()),
        "{metadata:?}"
    );
    manager.set_metadata(metadata);
    manager
        .register_client("Claude (test)", CALLBACK, &[])
        .await
        .unwrap();
    let authorize = manager
        .get_authorization_url(&["read", "write", "approve"])
        .await
        .unwrap();
    assert!(
        authorize.contains("code_challenge_method=S256"),
        "{authorize}"
    );

    let (_, html) = page(
        &app,
        &session,
        authorize.strip_prefix(&app.url("")).unwrap(),
    )
    .await;
    assert!(
        html.contains("Claude (test)") && html.contains("data-scope=\"approve\""),
        "{html}"
    );
    let back = consent(&app, &session, &authorize, "allow").await;
    assert!(back.as_str().starts_with(CALLBACK), "{back}");
    let (code, state) = (
        param(&back, "code").unwrap(),
        param(&back, "state").unwrap(),
    );
    let issued = manager
        .exchange_code_for_token_with_issuer(&code, &state, param(&back, "iss").as_deref())
        .await
        .unwrap();
    use oauth2::TokenResponse as _;
    let first_refresh = issued.refresh_token().unwrap().secret().clone();
    let first_access = issued.access_token().secret().clone();
    assert!(first_access.starts_with("aiops_at_"));

    let auth = AuthClient::new(reqwest_013::Client::new(), manager);
    let manager = Arc::clone(&auth.auth_manager);
    let transport = StreamableHttpClientTransport::with_client(
        auth,
        StreamableHttpClientTransportConfig::with_uri(app.url("/mcp")),
    );
    let mcp = ().serve(transport).await.expect("MCP handshake with the OAuth token");
    let (projects, _) = ok(&mcp, "list_projects", json!({})).await;
    assert_eq!(projects["items"][0]["name"], "shop", "{projects}");
    // An access token for /mcp is not an API token.
    let api = reqwest::Client::new()
        .get(app.url("/api/v1/projects"))
        .bearer_auth(&first_access)
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);

    // Refresh rotates: a new pair, the old access token still valid until it expires, the
    // old refresh token spent.
    let refreshed = manager.lock().await.refresh_token().await.unwrap();
    assert_ne!(refreshed.refresh_token().unwrap().secret(), &first_refresh);
    let (projects, _) = ok(&mcp, "list_projects", json!({})).await;
    assert_eq!(projects["items"][0]["name"], "shop");
    let client_id = manager.lock().await.get_credentials().await.unwrap().0;
    let (status, replay) = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first_refresh),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{replay}"
    );
    let new_access = refreshed.access_token().secret().clone();
    let (status, challenge) = mcp_status(&app, None, &new_access).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a replayed refresh token revokes the grant"
    );
    assert!(challenge.contains("invalid_token"), "{challenge}");
    mcp.cancel().await.ok();

    // A second grant, ended from "my account".
    let (code, verifier) = code_for(&app, &session, &client_id, &[]).await;
    let (status, tokens) = exchange(&app, &client_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(mcp_status(&app, None, access).await.0, StatusCode::OK);
    let (_, account) = page(&app, &session, "/account").await;
    let grant = account
        .split("data-grant=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the grant on the account page")
        .to_string();
    assert!(account.contains("Claude (test)"), "{account}");
    let csrf = csrf_of(&account);
    let (status, _) = post_form(
        &app,
        &session,
        &format!("/account/apps/{grant}/revoke"),
        &[("csrf", &csrf)],
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        mcp_status(&app, None, access).await.0,
        StatusCode::UNAUTHORIZED
    );

    // Revocation by the client (RFC 7009) of a third grant's refresh token ends its access token.
    let (code, verifier) = code_for(&app, &session, &client_id, &[]).await;
    let (_, tokens) = exchange(&app, &client_id, &code, &verifier).await;
    let response = reqwest::Client::new()
        .post(app.url("/oauth/revoke"))
        .form(&[
            ("token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        mcp_status(&app, None, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );

    let audit = app.get_json("/api/v1/audit?limit=200").await;
    let by_ana: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["principal_name"] == "ana")
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        by_ana.contains(&"dashboard oauth consent allowed"),
        "{by_ana:?}"
    );
    assert!(
        by_ana.contains(&"mcp tools/call list_projects"),
        "{by_ana:?}"
    );
}

/// Each refusal answers as RFC 6749, 7591, 8707 and 9700 say.
pub async fn every_oauth_refusal_answers_as_the_specs_say(db: Db) {
    let (app, ana, vic) = app_with_people(db, |_| {}).await;
    let (status, registered) = register(&app, CALLBACK).await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert!(
        registered.get("client_secret").is_none(),
        "a public client gets no secret"
    );
    let client_id = registered["client_id"].as_str().unwrap().to_string();

    // Registration: a redirect URI off the allowed hosts, or plain http off loopback.
    for bad in [
        "https://evil.example/cb",
        "http://claude.ai/cb",
        "https://claude.ai/cb#frag",
        "javascript:alert(1)",
    ] {
        let (status, body) = register(&app, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_redirect_uri")),
            "{bad}: {body}"
        );
    }
    // Malformed bodies: registration wants JSON, the token endpoint a form.
    let response = reqwest::Client::new()
        .post(app.url("/oauth/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    let response = reqwest::Client::new()
        .post(app.url("/oauth/token"))
        .json(&json!({"grant_type": "authorization_code"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request", "{body}");
    let (status, _) = register(&app, "https://claude.ai/api/mcp/auth_callback").await;
    assert_eq!(status, StatusCode::CREATED);

    // Authorization: an unregistered redirect URI is shown an error and never redirected to.
    let (_, challenge) = pkce();
    let wrong =
        authorize_url(&app, &client_id, &challenge, &[]).replace("127.0.0.1%3A9", "127.0.0.1%3A10");
    let (status, html) = page(&app, &ana, wrong.strip_prefix(&app.url("")).unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{html}");
    let unknown = authorize_url(&app, "aiops-client-nope", &challenge, &[]);
    assert_eq!(
        page(&app, &ana, unknown.strip_prefix(&app.url("")).unwrap())
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // Without PKCE, or for another resource, the client hears of it at its redirect URI.
    let no_pkce = authorize_url(&app, &client_id, "", &[]);
    let response = client()
        .get(&no_pkce)
        .header("cookie", format!("{}={ana}", aiops::sessions::COOKIE))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_request"),
        "{location}"
    );
    assert_eq!(param(&location, "state").as_deref(), Some("st-1"));
    let other = authorize_url(
        &app,
        &client_id,
        &challenge,
        &[("resource", "https://other.example/mcp")],
    );
    let response = client()
        .get(&other)
        .header("cookie", format!("{}={ana}", aiops::sessions::COOKIE))
        .send()
        .await
        .unwrap();
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        param(&location, "error").as_deref(),
        Some("invalid_target"),
        "{location}"
    );
    // Signed out, the request waits behind the sign-in page.
    let response = client()
        .get(authorize_url(&app, &client_id, &challenge, &[]))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap();
    assert!(
        location.starts_with("/sign-in?next=%2Foauth%2Fauthorize"),
        "{location}"
    );
    // Denied: access_denied, and no code.
    let denied = consent(
        &app,
        &ana,
        &authorize_url(&app, &client_id, &challenge, &[]),
        "deny",
    )
    .await;
    assert_eq!(param(&denied, "error").as_deref(), Some("access_denied"));
    assert!(param(&denied, "code").is_none());

    // The token endpoint: a wrong verifier, then the same code again.
    let (code, verifier) = code_for(&app, &ana, &client_id, &[]).await;
    let (status, body) = exchange(&app, &client_id, &code, &pkce().0).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(
        exchange(&app, &client_id, &code, &verifier).await.1["error"],
        "invalid_grant",
        "a code is tried once"
    );
    // A reused code revokes what its first exchange gave.
    let (code, verifier) = code_for(&app, &ana, &client_id, &[]).await;
    let (status, tokens) = exchange(&app, &client_id, &code, &verifier).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap().to_string();
    assert_eq!(mcp_status(&app, None, &access).await.0, StatusCode::OK);
    let (status, body) = exchange(&app, &client_id, &code, &verifier).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(
        mcp_status(&app, None, &access).await.0,
        StatusCode::UNAUTHORIZED
    );
    // Another client cannot spend the code; an unknown client is invalid_client (401).
    let (code, verifier) = code_for(&app, &ana, &client_id, &[]).await;
    let (_, second) = register(&app, CALLBACK).await;
    let (status, body) = exchange(
        &app,
        second["client_id"].as_str().unwrap(),
        &code,
        &verifier,
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(
        exchange(&app, "aiops-client-nope", &code, &verifier)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = token_request(
        &app,
        &[("grant_type", "password"), ("client_id", &client_id)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unsupported_grant_type"))
    );

    // A token for another resource: the same token presented under another name of the
    // service (its resource URL differs) is refused.
    let (code, verifier) = code_for(&app, &ana, &client_id, &[]).await;
    let (_, tokens) = exchange(&app, &client_id, &code, &verifier).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let port = app.url("").rsplit(':').next().unwrap().to_string();
    let (status, challenge) = mcp_status(&app, Some(&format!("localhost:{port}")), &access).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an access token is bound to its resource"
    );
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(mcp_status(&app, None, &access).await.0, StatusCode::OK);

    // A viewer's grant cannot decide, even with the approve scope; an approver who granted
    // only `read` cannot either.
    for (session, scope) in [(&vic, "read write approve"), (&ana, "read")] {
        let (code, verifier) = code_for(&app, session, &client_id, &[("scope", scope)]).await;
        let (_, tokens) = exchange(&app, &client_id, &code, &verifier).await;
        assert_eq!(tokens["scope"], scope, "{tokens}");
        let config = StreamableHttpClientTransportConfig::with_uri(app.url("/mcp"))
            .auth_header(tokens["access_token"].as_str().unwrap());
        let mcp = ().serve(StreamableHttpClientTransport::from_config(config)).await.unwrap();
        let refused = call(
            &mcp,
            "decide_approval",
            json!({"approval": 1, "decision": "approve"}),
        )
        .await;
        assert_eq!(refused.is_error, Some(true));
        let code = refused
            .structured_content
            .as_ref()
            .map(|s| s["error"]["code"].clone());
        assert_eq!(code, Some(json!("forbidden")), "{}", text_of(&refused));
        mcp.cancel().await.ok();
    }
}

/// An access token stops at its expiry; its refresh token still works.
pub async fn an_expired_access_token_is_refused(db: Db) {
    let (app, ana, _) = app_with_people(db, |c| c.mcp.access_token_secs = 1).await;
    let (_, registered) = register(&app, CALLBACK).await;
    let client_id = registered["client_id"].as_str().unwrap().to_string();
    let (code, verifier) = code_for(&app, &ana, &client_id, &[]).await;
    let (_, tokens) = exchange(&app, &client_id, &code, &verifier).await;
    assert_eq!(tokens["expires_in"], 1);
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let challenge = wait_for(
        "the access token to expire",
        std::time::Duration::from_secs(20),
        || async {
            let (status, challenge) = mcp_status(&app, None, &access).await;
            (status == StatusCode::UNAUTHORIZED).then_some(challenge)
        },
    )
    .await;
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let (status, fresh) = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    let (status, body) = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", fresh["refresh_token"].as_str().unwrap()),
            ("client_id", &client_id),
            ("scope", "read write approve admin"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope")),
        "a refresh never widens"
    );
}
