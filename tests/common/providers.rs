//! Stand-in sign-in providers on loopback that speak the real protocols and record what they
//! received: an OpenID Connect provider (discovery document, JWKS with a real RSA key,
//! authorize, token endpoint checking client authentication and the PKCE verifier, ID tokens
//! signed RS256 with the nonce) and GitHub (OAuth App authorize and token endpoints, `/user`,
//! `/user/orgs`, `/user/teams` under `/api`).
//!
//! The "person" at the provider approves at once: the authorize endpoint redirects straight
//! back with a code and the state. Switches make the provider misbehave the ways a test needs:
//! an ID token with another nonce, or signed by a key the JWKS does not hold.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rsa::RsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "aiops-test-client";
pub const CLIENT_SECRET: &str = "stand-in-client-secret-7f3a";

/// The provider's key (in its JWKS) and another one (never published), made once per run.
static KEYS: LazyLock<(RsaPrivateKey, RsaPrivateKey)> = LazyLock::new(|| {
    let mut rng = rand_core_06::OsRng;
    (
        RsaPrivateKey::new(&mut rng, 2048).expect("an RSA key"),
        RsaPrivateKey::new(&mut rng, 2048).expect("another RSA key"),
    )
});

/// Who signs in at the provider.
#[derive(Debug, Clone, Default)]
pub struct Person {
    /// GitHub login, or the OpenID Connect `sub`.
    pub id: String,
    /// GitHub's numeric user id.
    pub github_id: i64,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub preferred_username: Option<String>,
    /// OpenID Connect `groups` claim.
    pub groups: Vec<String>,
    /// GitHub organisations and teams (`org/slug`).
    pub orgs: Vec<String>,
    pub teams: Vec<String>,
}

/// A request to the authorize endpoint (its query).
#[derive(Debug, Clone)]
pub struct Authorization {
    pub query: HashMap<String, String>,
}

/// A request to the token endpoint: its form, how the client authenticated, and whether the
/// PKCE verifier matched the challenge of the code's authorization.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub form: HashMap<String, String>,
    pub basic_auth: Option<(String, String)>,
    pub verifier_matched: bool,
}

/// A code the authorize endpoint gave out, waiting for the token endpoint.
#[derive(Debug, Clone)]
struct Grant {
    challenge: String,
    redirect_uri: String,
    nonce: Option<String>,
    person: Person,
}

#[derive(Default)]
struct Inner {
    person: Person,
    codes: HashMap<String, Grant>,
    access_tokens: HashMap<String, Person>,
    authorizations: Vec<Authorization>,
    token_requests: Vec<TokenRequest>,
    api_calls: Vec<String>,
    wrong_nonce: bool,
    foreign_key: bool,
}

/// A running stand-in provider.
#[derive(Clone)]
pub struct ProviderStandIn {
    /// Base URL, e.g. `http://127.0.0.1:4711`: the OpenID issuer, or GitHub's web URL (the
    /// API is under `/api`).
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl ProviderStandIn {
    /// An OpenID Connect provider whose issuer is `base`.
    pub async fn oidc(person: Person) -> ProviderStandIn {
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(oidc_token));
        Self::serve(app, person).await
    }

    /// A GitHub stand-in: `/login/oauth/*` and the API under `/api`.
    pub async fn github(person: Person) -> ProviderStandIn {
        let app = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(github_token))
            .route("/api/user", get(github_user))
            .route("/api/user/orgs", get(github_orgs))
            .route("/api/user/teams", get(github_teams));
        Self::serve(app, person).await
    }

    async fn serve(app: Router<Shared>, person: Person) -> ProviderStandIn {
        LazyLock::force(&KEYS);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner {
            person,
            ..Inner::default()
        }));
        let shared = Shared {
            base: base.clone(),
            inner: inner.clone(),
        };
        tokio::spawn(async move { axum::serve(listener, app.with_state(shared)).await.unwrap() });
        ProviderStandIn { base, inner }
    }

    /// Who the next authorization signs in.
    pub fn set_person(&self, person: Person) {
        self.inner.lock().unwrap().person = person;
    }

    /// Issue ID tokens with a nonce other than the one asked for.
    pub fn send_wrong_nonce(&self, on: bool) {
        self.inner.lock().unwrap().wrong_nonce = on;
    }

    /// Sign ID tokens with a key the JWKS does not hold (same key id).
    pub fn sign_with_foreign_key(&self, on: bool) {
        self.inner.lock().unwrap().foreign_key = on;
    }

    pub fn authorizations(&self) -> Vec<Authorization> {
        self.inner.lock().unwrap().authorizations.clone()
    }

    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.inner.lock().unwrap().token_requests.clone()
    }

    /// The API paths called (with their query), in order.
    pub fn api_calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().api_calls.clone()
    }
}

#[derive(Clone)]
struct Shared {
    base: String,
    inner: Arc<Mutex<Inner>>,
}

fn random() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    hex::encode(bytes)
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, axum::Json(json!({ "error": error }))).into_response()
}

async fn discovery(State(shared): State<Shared>) -> Response {
    let base = &shared.base;
    axum::Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
    }))
    .into_response()
}

async fn jwks() -> Response {
    let public = KEYS.0.to_public_key();
    axum::Json(json!({ "keys": [{
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": "k1",
        "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
        "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
    }]}))
    .into_response()
}

/// The authorize endpoint: checks the client and the PKCE method, records the request, and
/// redirects back at once with a fresh code and the state.
async fn authorize(
    State(shared): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut inner = shared.inner.lock().unwrap();
    inner.authorizations.push(Authorization {
        query: query.clone(),
    });
    let field = |name: &str| query.get(name).cloned().unwrap_or_default();
    if field("client_id") != CLIENT_ID
        || field("response_type") != "code"
        || field("code_challenge_method") != "S256"
        || field("code_challenge").is_empty()
        || field("state").is_empty()
    {
        return (StatusCode::BAD_REQUEST, "invalid authorization request").into_response();
    }
    let code = random();
    let grant = Grant {
        challenge: field("code_challenge"),
        redirect_uri: field("redirect_uri"),
        nonce: query.get("nonce").cloned(),
        person: inner.person.clone(),
    };
    inner.codes.insert(code.clone(), grant);
    let mut back = url::Url::parse(&field("redirect_uri")).expect("a redirect_uri");
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &field("state"));
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

/// HTTP Basic credentials of a request (form-urlencoded halves, as RFC 6749 2.3.1 says).
fn basic_auth(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let decoded = STANDARD.decode(value.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let unescape = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    Some((unescape(id), unescape(secret)))
}

/// Takes the code's grant once, recording the request; None when the code, redirect URI or
/// verifier is wrong.
fn redeem(
    shared: &Shared,
    form: &HashMap<String, String>,
    basic: Option<(String, String)>,
) -> Option<Grant> {
    let mut inner = shared.inner.lock().unwrap();
    let code = form.get("code").cloned().unwrap_or_default();
    let grant = inner.codes.remove(&code);
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let verifier_matched = grant.as_ref().is_some_and(|g| g.challenge == computed);
    inner.token_requests.push(TokenRequest {
        form: form.clone(),
        basic_auth: basic,
        verifier_matched,
    });
    let grant = grant?;
    let same_redirect = form.get("redirect_uri") == Some(&grant.redirect_uri);
    (verifier_matched
        && same_redirect
        && form.get("grant_type").map(String::as_str) == Some("authorization_code"))
    .then_some(grant)
}

async fn oidc_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let basic = basic_auth(&headers);
    let client_ok = basic
        .as_ref()
        .is_some_and(|(id, secret)| id == CLIENT_ID && secret == CLIENT_SECRET);
    let grant = redeem(&shared, &form, basic);
    if !client_ok {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let Some(grant) = grant else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let (wrong_nonce, foreign_key) = {
        let inner = shared.inner.lock().unwrap();
        (inner.wrong_nonce, inner.foreign_key)
    };
    let now = chrono::Utc::now().timestamp();
    let person = &grant.person;
    let nonce = if wrong_nonce {
        Some("not-the-nonce-asked-for".to_string())
    } else {
        grant.nonce.clone()
    };
    let mut claims = json!({
        "iss": shared.base,
        "aud": CLIENT_ID,
        "sub": person.id,
        "iat": now,
        "exp": now + 300,
        "nonce": nonce,
        "email": person.email,
        "email_verified": person.email_verified,
        "name": person.name,
        "groups": person.groups,
    });
    if let Some(username) = &person.preferred_username {
        claims["preferred_username"] = json!(username);
    }
    let key = if foreign_key { &KEYS.1 } else { &KEYS.0 };
    axum::Json(json!({
        "access_token": random(),
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": sign_rs256(key, &claims),
    }))
    .into_response()
}

/// A compact JWS of `claims`, RS256 with key id `k1`.
fn sign_rs256(key: &RsaPrivateKey, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "k1" });
    let encode = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let input = format!("{}.{}", encode(&header), encode(claims));
    let signer = SigningKey::<Sha256>::new(key.clone());
    let signature = signer.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// GitHub's token endpoint: the client id and secret in the form; errors answered, as GitHub
/// does, with 200 and an `error` field.
async fn github_token(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let client_ok = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let grant = redeem(&shared, &form, basic_auth(&headers));
    if !client_ok {
        return oauth_error(StatusCode::OK, "incorrect_client_credentials");
    }
    let Some(grant) = grant else {
        return oauth_error(StatusCode::OK, "bad_verification_code");
    };
    let token = format!("gho_{}", random());
    shared
        .inner
        .lock()
        .unwrap()
        .access_tokens
        .insert(token.clone(), grant.person);
    axum::Json(
        json!({ "access_token": token, "token_type": "bearer", "scope": "read:user,read:org" }),
    )
    .into_response()
}

/// The person an API call's bearer token was issued to, recording the call.
fn api_person(shared: &Shared, headers: &HeaderMap, path: &str) -> Option<Person> {
    let mut inner = shared.inner.lock().unwrap();
    inner.api_calls.push(path.to_string());
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?;
    inner.access_tokens.get(token).cloned()
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({ "message": "Bad credentials" })),
    )
        .into_response()
}

async fn github_user(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(person) = api_person(&shared, &headers, "/user") else {
        return unauthorized();
    };
    axum::Json(json!({
        "login": person.id,
        "id": person.github_id,
        "name": person.name,
        "email": person.email,
    }))
    .into_response()
}

async fn github_orgs(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(person) = api_person(&shared, &headers, "/user/orgs") else {
        return unauthorized();
    };
    let orgs: Vec<Value> = person.orgs.iter().map(|o| json!({ "login": o })).collect();
    axum::Json(json!(orgs)).into_response()
}

async fn github_teams(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(person) = api_person(&shared, &headers, "/user/teams") else {
        return unauthorized();
    };
    let teams: Vec<Value> = person
        .teams
        .iter()
        .filter_map(|t| t.split_once('/'))
        .map(|(org, slug)| json!({ "slug": slug, "organization": { "login": org } }))
        .collect();
    axum::Json(json!(teams)).into_response()
}
