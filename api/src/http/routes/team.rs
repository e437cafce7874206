//! Form endpoints for the team page, invitation acceptance and API keys. Ids in paths are looked up in the
//! actor's tenant only; anything else answers 404, exactly like an id that does not exist.

use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, post, web};

use convene_app::forms::Flash;
use convene_domain::Role;
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;

use crate::{
    http::AppState,
    http::routes::auth::{
        CookiePolicy, SignedInSession, back_with, capitalise, client, current_session, redirect_error, see_other,
        session_cookie, unexpected,
    },
    people::Actor,
    people::api_keys::{self, ApiKeyError},
    people::team::{TeamError, TeamService},
    platform::audit::{self, AuditEvent},
};

/// Registers the endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(invite)
        .service(revoke_invitation)
        .service(change_role)
        .service(remove_member)
        .service(disable_member)
        .service(enable_member)
        .service(accept_invitation)
        .service(create_key)
        .service(revoke_key);
}

/// The signed-in member acting in their active tenant. Requests without a session are sent to sign in; a
/// person without a tenant goes to the dashboard, which says so.
pub struct SignedIn(pub Actor);

impl FromRequest for SignedIn {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let session = SignedInSession::from_request(request, payload);
        let state = request.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let SignedInSession(session) = session.await?;
            let state = state.ok_or_else(|| actix_web::error::ErrorInternalServerError("application state missing"))?;
            match state.accounts.actor(&session).await {
                Ok(Some(actor)) => Ok(SignedIn(actor)),
                Ok(None) => Err(redirect_error("/dashboard")),
                Err(error) => {
                    tracing::error!(%error, "cannot resolve the signed-in member");
                    Err(actix_web::error::ErrorInternalServerError("cannot load your account right now"))
                }
            }
        })
    }
}

/// Records an event by the actor in their tenant's audit log.
pub(crate) async fn record(
    db: &sea_orm::DatabaseConnection,
    actor: Actor,
    event: AuditEvent,
    detail: &str,
    request: &HttpRequest,
) -> Result<(), sea_orm::DbErr> {
    audit::record(db, actor.tenant, Some(actor.user_id), event, detail, client(request).ip.as_deref()).await
}

pub(crate) fn not_found() -> HttpResponse {
    HttpResponse::NotFound().content_type("text/plain; charset=utf-8").body("Not found.")
}

pub(crate) fn forbidden() -> HttpResponse {
    HttpResponse::Forbidden().content_type("text/plain; charset=utf-8").body("Your role does not allow this.")
}

/// Maps a team refusal to the response the person sees on the team page.
fn team_outcome(result: Result<(), TeamError>, success: &str, policy: CookiePolicy) -> HttpResponse {
    match result {
        Ok(()) => back_with("/team", &Flash::success("team", success), policy),
        Err(TeamError::NotFound) => not_found(),
        Err(TeamError::Forbidden) => forbidden(),
        Err(
            error @ (TeamError::LastOwner | TeamError::AlreadyMember(_) | TeamError::Email(_) | TeamError::RateLimited),
        ) => back_with("/team", &Flash::failure("team", capitalise(&error.to_string())), policy),
        Err(error) => unexpected("/team", "team", &error, policy),
    }
}

fn parse_role(text: &str) -> Option<Role> {
    Role::parse(text).ok()
}

#[derive(Deserialize)]
struct InviteForm {
    email: String,
    role: String,
}

#[post("/team/invite")]
async fn invite(
    SignedIn(actor): SignedIn,
    request: HttpRequest,
    form: web::Form<InviteForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Some(role) = parse_role(&form.role) else {
        return back_with("/team", &Flash::failure("team", "Choose a role.").keep("email", &form.email), state.cookies);
    };
    let ip = client(&request).ip;
    let result = state.team.invite(actor, &form.email, role, ip.as_deref()).await;
    let success = format!("Invitation sent to {}.", form.email.trim());
    if let Err(TeamError::Email(message)) = &result {
        let flash = Flash::failure("team", "Please correct the address.")
            .field("email", capitalise(message))
            .keep("email", &form.email);
        return back_with("/team", &flash, state.cookies);
    }
    team_outcome(result, &success, state.cookies)
}

#[post("/team/invitations/{id}/revoke")]
async fn revoke_invitation(
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Ok(id) = Uuid::parse_str(&id) else { return not_found() };
    team_outcome(state.team.revoke_invitation(actor, id).await, "Invitation withdrawn.", state.cookies)
}

#[derive(Deserialize)]
struct RoleForm {
    role: String,
}

#[post("/team/members/{id}/role")]
async fn change_role(
    SignedIn(actor): SignedIn,
    id: web::Path<String>,
    form: web::Form<RoleForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let Ok(member) = Uuid::parse_str(&id) else { return not_found() };
    let Some(role) = parse_role(&form.role) else {
        return back_with("/team", &Flash::failure("team", "Choose a role."), state.cookies);
    };
    team_outcome(state.team.change_role(actor, member, role).await, "Role changed.", state.cookies)
}

#[post("/team/members/{id}/remove")]
async fn remove_member(SignedIn(actor): SignedIn, id: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    let Ok(member) = Uuid::parse_str(&id) else { return not_found() };
    team_outcome(state.team.remove(actor, member).await, "Member removed.", state.cookies)
}

#[post("/team/members/{id}/disable")]
async fn disable_member(signed_in: SignedIn, id: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    set_disabled(signed_in.0, &id, &state.team, state.cookies, true).await
}

#[post("/team/members/{id}/enable")]
async fn enable_member(signed_in: SignedIn, id: web::Path<String>, state: web::Data<AppState>) -> HttpResponse {
    set_disabled(signed_in.0, &id, &state.team, state.cookies, false).await
}

async fn set_disabled(
    actor: Actor,
    id: &str,
    team: &TeamService,
    policy: CookiePolicy,
    disabled: bool,
) -> HttpResponse {
    let Ok(member) = Uuid::parse_str(id) else { return not_found() };
    let success = if disabled { "Member disabled." } else { "Member enabled again." };
    team_outcome(team.set_disabled(actor, member, disabled).await, success, policy)
}

#[derive(Deserialize)]
struct AcceptForm {
    token: String,
    name: Option<String>,
    password: Option<String>,
}

#[post("/invitations/accept")]
async fn accept_invitation(
    request: HttpRequest,
    form: web::Form<AcceptForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let form = form.into_inner();
    let back = format!(
        "/invitations/accept?token={}",
        url::form_urlencoded::byte_serialize(form.token.as_bytes()).collect::<String>()
    );
    let signed_in = current_session(&state.accounts, &request).await.map(|session| session.user_id);
    let new_account = match (form.name.clone(), form.password) {
        (Some(name), Some(password)) => Some((name, SecretString::from(password))),
        _ => None,
    };
    let flash = Flash::failure("accept", "Please correct the marked fields.")
        .keep("name", form.name.as_deref().unwrap_or_default());
    match state.team.accept(&form.token, signed_in, new_account).await {
        Ok((user_id, tenant)) => match state.accounts.start_session(user_id, Some(tenant), &client(&request)).await {
            Ok(session) => see_other("/dashboard").cookie(session_cookie(&session.token, state.cookies)).finish(),
            Err(error) => unexpected(&back, "accept", error.as_ref(), state.cookies),
        },
        Err(TeamError::Name) => back_with(&back, &flash.field("name", "Enter your name."), state.cookies),
        Err(TeamError::WeakPassword(error)) => {
            back_with(&back, &flash.field("password", capitalise(&error.to_string())), state.cookies)
        }
        Err(error @ (TeamError::Link(_) | TeamError::SignInFirst(_))) => {
            back_with(&back, &Flash::failure("accept", capitalise(&error.to_string())), state.cookies)
        }
        Err(error) => unexpected(&back, "accept", &error, state.cookies),
    }
}

#[derive(Deserialize)]
struct KeyForm {
    name: String,
}

#[post("/keys")]
async fn create_key(
    SignedIn(actor): SignedIn,
    request: HttpRequest,
    form: web::Form<KeyForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !actor.is_admin() {
        return forbidden();
    }
    match api_keys::create(&state.db, actor.tenant, &form.name).await {
        Ok(key) => {
            if let Err(error) = record(&state.db, actor, AuditEvent::ApiKeyCreated, form.name.trim(), &request).await {
                return unexpected("/keys", "keys", &error, state.cookies);
            }
            // The secret travels once, in the short-lived HttpOnly flash, and is never stored in clear.
            let flash = Flash::success("keys", "Key created. Copy it now: it will not be shown again.")
                .keep("new_key", &key.api_key);
            back_with("/keys", &flash, state.cookies)
        }
        Err(ApiKeyError::Name) => back_with(
            "/keys",
            &Flash::failure("keys", "Please name the key.").field("name", "Key names are 1 to 100 characters."),
            state.cookies,
        ),
        Err(error) => unexpected("/keys", "keys", &error, state.cookies),
    }
}

#[post("/keys/{id}/revoke")]
async fn revoke_key(
    SignedIn(actor): SignedIn,
    request: HttpRequest,
    id: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    if !actor.is_admin() {
        return forbidden();
    }
    let Ok(id) = Uuid::parse_str(&id) else { return not_found() };
    match api_keys::revoke(&state.db, actor.tenant, id).await {
        Ok(Some(key)) => {
            if let Err(error) = record(&state.db, actor, AuditEvent::ApiKeyRevoked, &key.name, &request).await {
                return unexpected("/keys", "keys", &error, state.cookies);
            }
            back_with("/keys", &Flash::success("keys", format!("Key “{}” revoked.", key.name)), state.cookies)
        }
        Ok(None) => not_found(),
        Err(error) => unexpected("/keys", "keys", &error, state.cookies),
    }
}
