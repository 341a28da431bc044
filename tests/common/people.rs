//! Users for the page tests: a member of a project, signed in as the browser would be.

use aiops::model::ProjectRole;
use aiops::users::{self, UserSpec};

use super::TestApp;

/// A sign-in session of user `login`: the session cookie's value.
pub async fn session_of(app: &TestApp, login: &str) -> String {
    let user = app.store.user(login).await.unwrap();
    let client = aiops::sessions::Client {
        addr: "127.0.0.1",
        user_agent: None,
    };
    aiops::sessions::start(
        &app.store,
        &app.config,
        user.id,
        aiops::model::SessionMethod::Password,
        client,
    )
    .await
    .unwrap()
    .secret
}

/// A user with `role` in `project`, signed in: their session cookie's value.
pub async fn member(app: &TestApp, login: &str, project: &str, role: ProjectRole) -> String {
    let spec = UserSpec {
        login: login.into(),
        ..UserSpec::default()
    };
    users::add(&app.store, &spec).await.unwrap();
    users::grant(&app.store, login, Some(project), role)
        .await
        .unwrap();
    session_of(app, login).await
}
