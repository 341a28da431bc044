//! Who a provider's account is here: the matching user, or a new one when the provider's
//! `create_users` allows; the roles an OpenID Connect provider's claims give; and the
//! session, for an active user only.

use std::collections::BTreeMap;

use crate::config::{ClaimRole, GithubSignIn, OidcSignIn};
use crate::error::Error;
use crate::model::{GlobalRole, PrincipalKind, ProjectRole, UserStatus};
use crate::sessions::{self, Client, SignedIn};
use crate::store::sign_in_flows as flows;
use crate::store::users::NewUser;

use super::github::GithubAccount;
use super::oidc::OidcAccount;
use super::{Deps, Provider, Refusal};

type Outcome<T> = std::result::Result<T, Refusal>;

fn internal(error: impl Into<Error>) -> Refusal {
    Refusal::internal(&error.into())
}

/// The user GitHub account `account` is: the one linked to its numeric id, else the one whose
/// `github_login` it is (ignoring case; linked to the id from then on, so a login GitHub gives
/// to someone else later matches nobody), else a new member with that login when
/// `create_users` is on.
pub(super) async fn github_user(
    deps: Deps<'_>,
    config: &GithubSignIn,
    account: &GithubAccount,
) -> Outcome<i64> {
    let issuer = config.web_url.trim_end_matches('/');
    let subject = account.id.to_string();
    let store = deps.store;
    if let Some(id) = store
        .principal_by_external_identity(issuer, &subject)
        .await
        .map_err(internal)?
    {
        return Ok(id);
    }
    if let Some(id) = store
        .user_by_github_login(&account.login)
        .await
        .map_err(internal)?
    {
        if store
            .external_subject_of(issuer, id)
            .await
            .map_err(internal)?
            .is_some()
        {
            return Err(Refusal::new(
                "github_account_changed",
                format!(
                    "The GitHub login {} now belongs to another GitHub account than the one this aiops user signed in with; an admin must check and link it again.",
                    account.login
                ),
            ));
        }
        let mut tx = store.begin().await.map_err(internal)?;
        crate::store::sign_in_flows::link_external_identity(&mut tx, issuer, &subject, id)
            .await
            .map_err(internal)?;
        tx.commit().await.map_err(internal)?;
        return Ok(id);
    }
    if !config.create_users {
        return Err(no_account(
            &format!("GitHub user {}", account.login),
            &format!("aiops user add <login> --github-login {}", account.login),
        ));
    }
    let login = account.login.to_ascii_lowercase();
    let new = NewUser {
        kind: PrincipalKind::User,
        login: &login,
        display_name: account.name.as_deref().unwrap_or(&login),
        email: None,
        github_login: Some(&account.login),
        global_role: GlobalRole::Member,
        password_hash: None,
    };
    create(deps, &new, Some((issuer, &subject))).await
}

/// The user linked to the OpenID Connect account (issuer + subject), else the one user whose
/// email is the account's verified email (linked from then on), else a new member when
/// `create_users` is on. The claims' roles are given at every sign-in.
pub(super) async fn oidc_user(
    deps: Deps<'_>,
    config: &OidcSignIn,
    account: &OidcAccount,
) -> Outcome<i64> {
    let linked = deps
        .store
        .principal_by_external_identity(&account.issuer, &account.subject)
        .await
        .map_err(internal)?;
    let id = match linked {
        Some(id) => id,
        None => match verified_email_owner(deps, account).await? {
            Some(id) => {
                let mut tx = deps.store.begin().await.map_err(internal)?;
                crate::store::sign_in_flows::link_external_identity(
                    &mut tx,
                    &account.issuer,
                    &account.subject,
                    id,
                )
                .await
                .map_err(internal)?;
                tx.commit().await.map_err(internal)?;
                id
            }
            None if config.create_users => create_oidc_user(deps, config, account).await?,
            None => {
                let who = account.email.as_deref().unwrap_or(&account.subject);
                return Err(no_account(
                    &format!("{} account {who}", config.name),
                    "aiops user add <login> --email <their verified email>",
                ));
            }
        },
    };
    let user = deps.store.user_by_id(id).await.map_err(internal)?;
    if user.status == UserStatus::Active {
        give_claim_roles(deps, id, &config.roles, &account.claims)
            .await
            .map_err(internal)?;
    }
    Ok(id)
}

async fn verified_email_owner(deps: Deps<'_>, account: &OidcAccount) -> Outcome<Option<i64>> {
    match account.email.as_deref() {
        Some(email) if account.email_verified => deps
            .store
            .user_by_email(email)
            .await
            .map_err(|e| Refusal::internal(&e)),
        _ => Ok(None),
    }
}

async fn create_oidc_user(
    deps: Deps<'_>,
    config: &OidcSignIn,
    account: &OidcAccount,
) -> Outcome<i64> {
    let wanted = account
        .username
        .as_deref()
        .or_else(|| account.email.as_deref().and_then(|e| e.split('@').next()))
        .unwrap_or(&account.subject);
    let login = slug_of(wanted);
    let email = account.email.as_deref().filter(|_| account.email_verified);
    let new = NewUser {
        kind: PrincipalKind::User,
        login: &login,
        display_name: account.name.as_deref().unwrap_or(&login),
        email,
        github_login: None,
        global_role: GlobalRole::Member,
        password_hash: None,
    };
    let link = (account.issuer.as_str(), account.subject.as_str());
    let id = create(deps, &new, Some(link)).await?;
    tracing::info!(login = %login, provider = %config.name, "created a user at first sign-in");
    Ok(id)
}

/// Inserts the user (and links the OpenID Connect account) in one transaction; a taken login
/// is refused, naming it.
async fn create(deps: Deps<'_>, new: &NewUser<'_>, link: Option<(&str, &str)>) -> Outcome<i64> {
    if !crate::model::is_slug(new.login) {
        return Err(Refusal::new(
            "login_invalid",
            format!(
                "{:?} cannot be an aiops login; ask an admin to add you.",
                new.login
            ),
        ));
    }
    let mut tx = deps.store.begin().await.map_err(internal)?;
    let id = match crate::store::users::insert(&mut tx, new).await {
        Ok(id) => id,
        Err(Error::Conflict(_)) => {
            return Err(Refusal::new(
                "login_taken",
                format!(
                    "An aiops user named {} already exists and is not linked to this account; an admin can link it.",
                    new.login
                ),
            ));
        }
        Err(e) => return Err(internal(e)),
    };
    if let Some((issuer, subject)) = link {
        crate::store::sign_in_flows::link_external_identity(&mut tx, issuer, subject, id)
            .await
            .map_err(internal)?;
    }
    tx.commit().await.map_err(internal)?;
    Ok(id)
}

/// Gives user `id` the roles the rules grant for `claims` and takes back what an earlier
/// claim gave and these claims no longer give. A role an admin granted is never lowered or
/// taken (a claim may raise it, and then owns it); an admin made otherwise stays one.
async fn give_claim_roles(
    deps: Deps<'_>,
    id: i64,
    rules: &[ClaimRole],
    claims: &serde_json::Value,
) -> crate::error::Result<()> {
    let (admin, wanted) = claimed_roles(deps, rules, claims).await?;
    let mut tx = deps.store.begin().await?;
    let held = flows::memberships_by_origin(&mut tx, id).await?;
    for (&project_id, &role) in &wanted {
        let current = held.iter().find(|(p, ..)| *p == project_id);
        let replace = match current {
            None => true,
            Some((_, held, true)) => *held != role,
            Some((_, held, false)) => *held < role,
        };
        if replace {
            crate::store::users::grant_as(&mut tx, id, project_id, role, true).await?;
        }
    }
    for (project_id, _, from_claim) in &held {
        if *from_claim && !wanted.contains_key(project_id) {
            flows::revoke_claim_membership(&mut tx, id, *project_id).await?;
        }
    }
    flows::set_claim_admin(&mut tx, id, admin).await?;
    Ok(tx.commit().await?)
}

/// What the rules give for `claims`: the global admin role, and the highest role per project
/// (None: every project). A rule naming a project that does not exist gives nothing.
async fn claimed_roles(
    deps: Deps<'_>,
    rules: &[ClaimRole],
    claims: &serde_json::Value,
) -> crate::error::Result<(bool, BTreeMap<Option<i64>, ProjectRole>)> {
    let mut admin = false;
    let mut wanted = BTreeMap::new();
    for rule in rules
        .iter()
        .filter(|r| claim_holds(claims, &r.claim, &r.value))
    {
        admin |= rule.admin;
        let Some(role) = rule.role else { continue };
        let project_id = match &rule.project {
            Some(name) => match deps.store.project(name).await {
                Ok(project) => Some(project.id),
                Err(Error::NotFound(_)) => {
                    tracing::warn!(project = %name, "[auth.oidc] roles names a project that does not exist");
                    continue;
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let best = wanted.entry(project_id).or_insert(role);
        *best = (*best).max(role);
    }
    Ok((admin, wanted))
}

/// Whether claim `name` is `value`, or a list holding it.
fn claim_holds(claims: &serde_json::Value, name: &str, value: &str) -> bool {
    match claims.get(name) {
        Some(serde_json::Value::String(s)) => s == value,
        Some(serde_json::Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(value)),
        _ => false,
    }
}

/// A login made of `text`: lower-case letters, digits and '-', at most 63 characters.
fn slug_of(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    mapped.trim_matches('-').chars().take(63).collect()
}

fn no_account(who: &str, how: &str) -> Refusal {
    Refusal::new(
        "no_account",
        format!(
            "{who} has no aiops account here, and this service does not create accounts at first sign-in. Ask an admin to add you (`{how}`)."
        ),
    )
}

/// A session for user `id`, when it is an active person.
pub(super) async fn start_session(
    deps: Deps<'_>,
    provider: Provider,
    id: i64,
    client: Client<'_>,
) -> Outcome<SignedIn> {
    let user = deps.store.user_by_id(id).await.map_err(internal)?;
    if user.kind == PrincipalKind::Service {
        return Err(Refusal::new(
            "service_account",
            format!("{} is a service account, which never signs in.", user.login),
        ));
    }
    if user.status == UserStatus::Disabled {
        return Err(Refusal::new(
            "disabled",
            format!(
                "The aiops user {} is disabled; an admin can enable it (`aiops user enable {}`).",
                user.login, user.login
            ),
        ));
    }
    sessions::start(deps.store, deps.config, id, provider.method(), client)
        .await
        .map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_match_as_a_string_or_in_a_list() {
        let claims = serde_json::json!({ "groups": ["ops", "admins"], "dept": "ops" });
        assert!(claim_holds(&claims, "groups", "admins"));
        assert!(claim_holds(&claims, "dept", "ops"));
        assert!(!claim_holds(&claims, "groups", "admin"));
        assert!(!claim_holds(&claims, "missing", "ops"));
    }

    #[test]
    fn logins_are_made_of_names() {
        assert_eq!(slug_of("Ann.Lee_2"), "ann-lee-2");
        assert_eq!(slug_of("--x--"), "x");
        assert!(crate::model::is_slug(&slug_of("Kim Min-ji")));
    }
}
