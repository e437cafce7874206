//! The account forms' endpoints (`/auth/*`) and the session cookie. Each handler parses the form, calls
//! [`Accounts`], and answers with a redirect (Post/Redirect/Get); refusals travel back to the form as a
//! flash cookie.

use actix_web::{
    FromRequest, HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
    dev::Payload,
    error::InternalError,
    http::header,
    post, web,
};
use convene_app::{
    backend::SESSION_COOKIE,
    forms::{FLASH_COOKIE, Flash},
};
use convene_domain::TenantId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{
    entities::session,
    http::AppState,
    people::accounts::{
        Accounts, Client, LinkError, LoginError, PasswordChangeError, ResendError, ResetError, SESSION_LIFETIME,
        Signup, SignupError,
    },
    people::password,
};

/// Cookie policy, from the public URL: `Secure` whenever the site is served over HTTPS.
#[derive(Debug, Clone, Copy)]
pub struct CookiePolicy {
    /// Whether cookies carry `Secure`.
    pub secure: bool,
}

/// Registers the `/auth/*` endpoints.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signup)
        .service(login)
        .service(logout)
        .service(verify)
        .service(resend)
        .service(switch_tenant)
        .service(forgot_password)
        .service(reset_password)
        .service(change_password)
        .service(change_email)
        .service(sign_out_everywhere);
}

/// The live session behind the request's cookie.
pub(crate) async fn current_session(accounts: &Accounts, request: &HttpRequest) -> Option<session::Model> {
    let cookie = request.cookie(SESSION_COOKIE)?;
    match accounts.session(cookie.value()).await {
        Ok(session) => session,
        Err(error) => {
            tracing::error!(%error, "cannot look up a session");
            None
        }
    }
}

/// The live session of a form post; requests without one are sent to sign in.
pub struct SignedInSession(pub session::Model);

impl FromRequest for SignedInSession {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let request = request.clone();
        Box::pin(async move {
            let state = request
                .app_data::<web::Data<AppState>>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("application state missing"))?;
            match current_session(&state.accounts, &request).await {
                Some(session) => Ok(SignedInSession(session)),
                None => Err(redirect_error("/login")),
            }
        })
    }
}

/// An extractor's way of answering with a redirect.
pub(crate) fn redirect_error(location: &str) -> actix_web::Error {
    InternalError::from_response("", see_other(location).finish()).into()
}

pub(crate) fn client(request: &HttpRequest) -> Client {
    Client {
        ip: request.peer_addr().map(|addr| addr.ip().to_string()),
        user_agent: request.headers().get(header::USER_AGENT).and_then(|agent| agent.to_str().ok()).map(str::to_owned),
    }
}

pub(crate) fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::SeeOther();
    response.insert_header((header::LOCATION, location));
    response
}

/// Back to the form at `location`, carrying `flash`.
pub(crate) fn back_with(location: &str, flash: &Flash, policy: CookiePolicy) -> HttpResponse {
    let cookie = Cookie::build(FLASH_COOKIE, flash.encode())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(policy.secure)
        .max_age(CookieDuration::seconds(60))
        .finish();
    see_other(location).cookie(cookie).finish()
}

pub(crate) fn session_cookie(token: &SecretString, policy: CookiePolicy) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, token.expose_secret().to_owned())
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(policy.secure)
        .max_age(CookieDuration::seconds(SESSION_LIFETIME.num_seconds()))
        .finish()
}

/// A failure the person cannot fix: logged with its cause, shown as a generic banner. Password hashing
/// refused for load is not a fault: it answers 503 with `Retry-After`, and the page it shows returns to the
/// form, whose banner says to try again.
pub(crate) fn unexpected(
    location: &str,
    form: &str,
    error: &(dyn std::error::Error + 'static),
    policy: CookiePolicy,
) -> HttpResponse {
    if password::is_busy(error) {
        return busy(location, form, policy);
    }
    tracing::error!(%error, form, "form handling failed");
    back_with(location, &Flash::failure(form, "Something went wrong on our side. Please try again."), policy)
}

fn busy(location: &str, form: &str, policy: CookiePolicy) -> HttpResponse {
    tracing::warn!(form, "password hashing queue full; asked the client to retry");
    let message = capitalise(&password::Busy.to_string());
    let mut response = back_with(location, &Flash::failure(form, message.clone()), policy);
    *response.status_mut() = actix_web::http::StatusCode::SERVICE_UNAVAILABLE;
    let retry = password::BUSY_RETRY_AFTER_SECS;
    let headers = response.headers_mut();
    headers.remove(header::LOCATION);
    headers.insert(header::RETRY_AFTER, retry.into());
    let refresh = format!("{retry}; url={location}");
    if let Ok(refresh) = header::HeaderValue::from_str(&refresh) {
        headers.insert(header::REFRESH, refresh);
    }
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/plain; charset=utf-8"));
    response.set_body(actix_web::body::BoxBody::new(message))
}

#[derive(Deserialize)]
struct SignupForm {
    organisation: String,
    name: String,
    email: String,
    password: String,
}

#[post("/auth/signup")]
async fn signup(request: HttpRequest, form: web::Form<SignupForm>, state: web::Data<AppState>) -> HttpResponse {
    let form = form.into_inner();
    let kept = |message: String| {
        Flash::failure("signup", message)
            .keep("organisation", &form.organisation)
            .keep("name", &form.name)
            .keep("email", &form.email)
    };
    let form_email = form.email.clone();
    let flash = kept("Please correct the marked fields.".to_owned());
    let limited = kept(capitalise(&SignupError::RateLimited.to_string()));
    let signup = Signup {
        organisation: form.organisation,
        name: form.name,
        email: form.email,
        password: SecretString::from(form.password),
    };
    let refused = match state.accounts.signup(signup, &client(&request)).await {
        // The same answer whether or not the address has an account already.
        Ok(()) => {
            let sent = format!(
                "We sent a link to {address}. Follow it to confirm your address and sign in; it works for 24 hours.",
                address = form_email.trim()
            );
            return back_with("/signup", &Flash::success("signup", sent), state.cookies);
        }
        Err(SignupError::Invalid(problems)) => {
            problems.iter().fold(flash, |flash, problem| flash.field(problem.field, capitalise(&problem.message)))
        }
        Err(SignupError::RateLimited) => limited,
        Err(error) => return unexpected("/signup", "signup", &error, state.cookies),
    };
    back_with("/signup", &refused, state.cookies)
}

pub(crate) fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    let capitalised: String = chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default();
    capitalised + "."
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    /// A path on this site to continue to.
    #[serde(default)]
    next: String,
}

/// `next` when it is a path on this site; anything else is ignored, so the sign-in form cannot send people
/// elsewhere. The value is resolved as a browser would resolve it (`/\host` and `//host` name another
/// host) and its origin compared with ours; whitespace and control characters are refused outright, since
/// browsers strip tabs and newlines from URLs (`/\t/evil.example` becomes `//evil.example`).
fn local_path(next: &str) -> Option<String> {
    if !next.starts_with('/') || next.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // Any origin of our own serves: only whether the resolved URL stays on it matters.
    let site = url::Url::parse("http://site.invalid/").ok()?;
    let resolved = site.join(next).ok()?;
    if resolved.origin() != site.origin() {
        return None;
    }
    let mut path = resolved.path().to_owned();
    if let Some(query) = resolved.query() {
        path.push('?');
        path.push_str(query);
    }
    Some(path)
}

#[post("/auth/login")]
async fn login(request: HttpRequest, form: web::Form<LoginForm>, state: web::Data<AppState>) -> HttpResponse {
    let LoginForm { email, password, next } = form.into_inner();
    let next = local_path(&next);
    let retry = next.as_deref().map_or_else(
        || "/login".to_owned(),
        |next| format!("/login?next={}", url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()),
    );
    match state.accounts.login(&email, SecretString::from(password), &client(&request)).await {
        Ok(session) => see_other(next.as_deref().unwrap_or("/dashboard"))
            .cookie(session_cookie(&session.token, state.cookies))
            .finish(),
        Err(error @ (LoginError::BadCredentials | LoginError::RateLimited | LoginError::Disabled)) => back_with(
            &retry,
            &Flash::failure("login", capitalise(&error.to_string())).keep("email", &email),
            state.cookies,
        ),
        Err(error) => unexpected(&retry, "login", &error, state.cookies),
    }
}

#[post("/auth/logout")]
async fn logout(request: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Some(cookie) = request.cookie(SESSION_COOKIE)
        && let Err(error) = state.accounts.logout(cookie.value(), &client(&request)).await
    {
        return unexpected("/dashboard", "dashboard", &error, state.cookies);
    }
    let mut expired = session_cookie(&SecretString::from(String::new()), state.cookies);
    expired.make_removal();
    see_other("/").cookie(expired).finish()
}

#[derive(Deserialize)]
struct VerifyForm {
    token: String,
}

/// Confirms an address. A sign-up's link came to the owner's own mailbox, so it also signs them in when the
/// browser has no session (the step after signing up).
#[post("/auth/verify")]
async fn verify(request: HttpRequest, form: web::Form<VerifyForm>, state: web::Data<AppState>) -> HttpResponse {
    match state.accounts.verify_email(&form.token).await {
        Ok(signs_in) => {
            let confirmed = "Your email address is confirmed.";
            let mut response = back_with("/dashboard", &Flash::success("dashboard", confirmed), state.cookies);
            let Some(user_id) = signs_in else { return response };
            if current_session(&state.accounts, &request).await.is_some() {
                return response;
            }
            match state.accounts.sign_in(user_id, &client(&request)).await {
                Ok(session) => {
                    if let Err(error) = response.add_cookie(&session_cookie(&session.token, state.cookies)) {
                        return unexpected("/login", "login", &error, state.cookies);
                    }
                    response
                }
                Err(LoginError::Disabled) => back_with(
                    "/login",
                    &Flash::success("login", format!("{confirmed} Sign in to continue.")),
                    state.cookies,
                ),
                Err(error) => unexpected("/login", "login", &error, state.cookies),
            }
        }
        Err(LinkError::Database(error)) => {
            unexpected("/dashboard", "dashboard", anyhow::anyhow!(error).as_ref(), state.cookies)
        }
        Err(error) => {
            let location = format!(
                "/verify?token={}",
                url::form_urlencoded::byte_serialize(form.token.as_bytes()).collect::<String>()
            );
            back_with(&location, &Flash::failure("verify", capitalise(&error.to_string())), state.cookies)
        }
    }
}

#[post("/auth/resend-verification")]
async fn resend(SignedInSession(session): SignedInSession, state: web::Data<AppState>) -> HttpResponse {
    let flash = match state.accounts.resend_verification(session.user_id).await {
        Ok(()) => Flash::success("dashboard", "We sent a new confirmation link. Check your inbox."),
        Err(error @ (ResendError::RateLimited | ResendError::AlreadyVerified)) => {
            Flash::failure("dashboard", capitalise(&error.to_string()))
        }
        Err(error) => return unexpected("/dashboard", "dashboard", &error, state.cookies),
    };
    back_with("/dashboard", &flash, state.cookies)
}

#[derive(Deserialize)]
struct SwitchForm {
    tenant_id: String,
}

#[post("/auth/switch-tenant")]
async fn switch_tenant(
    SignedInSession(session): SignedInSession,
    form: web::Form<SwitchForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let switched = match TenantId::parse(&form.tenant_id) {
        Ok(tenant) => state.accounts.switch_tenant(session, tenant).await,
        Err(_) => Ok(false),
    };
    match switched {
        Ok(true) => see_other("/dashboard").finish(),
        Ok(false) => back_with(
            "/dashboard",
            &Flash::failure("dashboard", "You do not belong to that organisation."),
            state.cookies,
        ),
        Err(error) => unexpected("/dashboard", "dashboard", &error, state.cookies),
    }
}

#[derive(Deserialize)]
struct ForgotForm {
    email: String,
}

#[post("/auth/forgot-password")]
async fn forgot_password(
    request: HttpRequest,
    form: web::Form<ForgotForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let flash = match state.accounts.request_password_reset(&form.email, &client(&request)).await {
        // The same answer whether or not the address has an account.
        Ok(()) => Flash::success(
            "forgot",
            "If an account uses this address, a reset link is on its way. It expires in one hour.",
        ),
        Err(error @ ResetError::RateLimited) => Flash::failure("forgot", capitalise(&error.to_string())),
        Err(ResetError::Internal(error)) => {
            return unexpected("/forgot-password", "forgot", error.as_ref(), state.cookies);
        }
    };
    back_with("/forgot-password", &flash, state.cookies)
}

#[derive(Deserialize)]
struct ResetForm {
    token: String,
    password: String,
}

#[post("/auth/reset-password")]
async fn reset_password(form: web::Form<ResetForm>, state: web::Data<AppState>) -> HttpResponse {
    let ResetForm { token, password } = form.into_inner();
    let back =
        format!("/reset-password?token={}", url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>());
    match state.accounts.reset_password(&token, SecretString::from(password)).await {
        Ok(()) => {
            back_with("/login", &Flash::success("login", "Your password is changed. Sign in with it."), state.cookies)
        }
        Err(PasswordChangeError::Weak(error)) => back_with(
            &back,
            &Flash::failure("reset", "Please choose another password.")
                .field("password", capitalise(&error.to_string())),
            state.cookies,
        ),
        Err(PasswordChangeError::Link(error)) if !matches!(error, LinkError::Database(_)) => {
            back_with(&back, &Flash::failure("reset", capitalise(&error.to_string())), state.cookies)
        }
        Err(error) => unexpected(&back, "reset", &error, state.cookies),
    }
}

/// Maps a refused change on the account page.
fn account_outcome(
    result: Result<(), PasswordChangeError>,
    success: &str,
    field: &str,
    policy: CookiePolicy,
) -> HttpResponse {
    let refused = |field: &str, message: String| {
        back_with(
            "/account",
            &Flash::failure("account", "Please correct the marked field.").field(field, message),
            policy,
        )
    };
    match result {
        Ok(()) => back_with("/account", &Flash::success("account", success), policy),
        Err(PasswordChangeError::WrongPassword) => {
            refused("current_password", "The current password is not right.".to_owned())
        }
        Err(PasswordChangeError::Weak(error)) => refused(field, capitalise(&error.to_string())),
        Err(PasswordChangeError::Email(message)) => refused("email", capitalise(&message)),
        Err(error) => unexpected("/account", "account", &error, policy),
    }
}

#[derive(Deserialize)]
struct ChangePasswordForm {
    current_password: String,
    new_password: String,
}

#[post("/account/password")]
async fn change_password(
    SignedInSession(session): SignedInSession,
    request: HttpRequest,
    form: web::Form<ChangePasswordForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ChangePasswordForm { current_password, new_password } = form.into_inner();
    let result = state
        .accounts
        .change_password(
            &session,
            SecretString::from(current_password),
            SecretString::from(new_password),
            &client(&request),
        )
        .await;
    account_outcome(result, "Password changed. Your other sessions were signed out.", "new_password", state.cookies)
}

#[derive(Deserialize)]
struct ChangeEmailForm {
    email: String,
    current_password: String,
}

#[post("/account/email")]
async fn change_email(
    SignedInSession(session): SignedInSession,
    form: web::Form<ChangeEmailForm>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let ChangeEmailForm { email, current_password } = form.into_inner();
    let result = state.accounts.request_email_change(&session, &email, SecretString::from(current_password)).await;
    let success = format!("We sent a confirmation link to {}. Your address changes when you follow it.", email.trim());
    account_outcome(result, &success, "email", state.cookies)
}

#[post("/account/sign-out-everywhere")]
async fn sign_out_everywhere(
    SignedInSession(session): SignedInSession,
    request: HttpRequest,
    state: web::Data<AppState>,
) -> HttpResponse {
    if let Err(error) = state.accounts.sign_out_everywhere(&session, &client(&request)).await {
        return unexpected("/account", "account", &error, state.cookies);
    }
    let mut expired = session_cookie(&SecretString::from(String::new()), state.cookies);
    expired.make_removal();
    see_other("/login").cookie(expired).finish()
}

#[cfg(test)]
mod tests {
    use actix_web::http::{StatusCode, header};

    use super::{CookiePolicy, local_path, unexpected};
    use crate::{people::accounts::LoginError, people::password::Busy};

    #[test]
    fn a_full_hashing_queue_answers_503_with_retry_after_and_leads_back_to_the_form() {
        let policy = CookiePolicy { secure: false };
        let busy = LoginError::Internal(Busy.into());
        let response = unexpected("/login?next=%2Fmeetings", "login", &busy, policy);
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let header = |name| response.headers().get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
        assert_eq!(header(header::RETRY_AFTER), "2");
        assert_eq!(header(header::REFRESH), "2; url=/login?next=%2Fmeetings");
        assert!(response.cookies().any(|cookie| cookie.name() == convene_app::forms::FLASH_COOKIE), "banner set");

        let fault = LoginError::Internal(anyhow::anyhow!("the database is gone"));
        assert_eq!(unexpected("/login", "login", &fault, policy).status(), StatusCode::SEE_OTHER);
    }

    #[test]
    fn next_stays_on_this_site() {
        for hostile in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r//evil.example",
            "/ /evil.example",
            "/\u{0}x",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "",
            "/\u{a0}/evil.example",
        ] {
            assert_eq!(local_path(hostile), None, "{hostile:?} must be refused");
        }
        assert_eq!(local_path("/join/abc?x=1").as_deref(), Some("/join/abc?x=1"));
        assert_eq!(local_path("/meetings").as_deref(), Some("/meetings"));
        assert_eq!(local_path("/a/../b").as_deref(), Some("/b"), "resolved as a browser would");
    }
}
