//! The account pages on the main host: sign up, sign in, confirm an email address, and the dashboard shell
//! with the tenant switcher. Forms post to `/auth/*` handlers in `convene-api` (see [`crate::forms`]).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    forms::{FormState, take_flash},
    layout::{SignInFirst, ViewerResource},
    model::Viewer,
};

/// The sign-up page.
#[component]
pub fn SignupPage() -> impl IntoView {
    let form = FormState::for_form(take_flash(), "signup");
    if form.succeeded() {
        return view! {
            <Title text="Check your inbox · Convene" />
            <section class="panel narrow">
                <h1>"Check your inbox"</h1>
                {form.banner()}
                <p class="muted">
                    "No mail after a few minutes? Look in your spam folder, or "
                    <a href="/signup">"sign up again"</a>
                    ". Already confirmed? "
                    <a href="/login">"Sign in"</a>
                </p>
            </section>
        }
        .into_any();
    }
    view! {
        <Title text="Create your organisation · Convene" />
        <section class="panel narrow">
            <h1>"Create your organisation"</h1>
            <p class="muted">"You become its owner. Invite your team once you are in."</p>
            {form.banner()}
            <form method="post" action="/auth/signup" novalidate>
                {form.field("organisation", "Organisation name", "text", "organization")}
                {form.field("name", "Your name", "text", "name")}
                {form.field("email", "Work email", "email", "email")}
                {form.field("password", "Password (at least 8 characters)", "password", "new-password")}
                <button type="submit">"Create organisation"</button>
            </form>
            <p class="muted">"Already have an account? " <a href="/login">"Sign in"</a></p>
        </section>
    }
    .into_any()
}

/// The sign-in page.
#[component]
pub fn LoginPage() -> impl IntoView {
    let form = FormState::for_form(take_flash(), "login");
    // Where to go once signed in (a meeting link sends people here first); the server checks it is ours.
    let next = use_query_map().read_untracked().get("next").unwrap_or_default();
    view! {
        <Title text="Sign in · Convene" />
        <section class="panel narrow">
            <h1>"Sign in"</h1>
            {form.banner()}
            <form method="post" action="/auth/login" novalidate>
                <input type="hidden" name="next" value=next />
                {form.field("email", "Email", "email", "username")}
                {form.field("password", "Password", "password", "current-password")}
                <button type="submit">"Sign in"</button>
            </form>
            <p class="muted">
                <a href="/forgot-password">"Forgot your password?"</a>
                " · New to Convene? "
                <a href="/signup">"Create an organisation"</a>
            </p>
        </section>
    }
}

/// `/forgot-password`.
#[component]
pub fn ForgotPasswordPage() -> impl IntoView {
    let form = FormState::for_form(take_flash(), "forgot");
    view! {
        <Title text="Reset your password · Convene" />
        <section class="panel narrow">
            <h1>"Reset your password"</h1>
            <p class="muted">"Enter your account's address and we will mail you a link to choose a new password."</p>
            {form.banner()}
            <form method="post" action="/auth/forgot-password" novalidate>
                {form.field("email", "Email", "email", "username")}
                <button type="submit">"Send the link"</button>
            </form>
        </section>
    }
}

/// `/reset-password?token=…`: the link from the reset mail.
#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let query = use_query_map();
    let form = FormState::for_form(take_flash(), "reset");
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Choose a new password · Convene" />
        <section class="panel narrow">
            <h1>"Choose a new password"</h1>
            <p class="muted">"Every device signed in to your account will be signed out."</p>
            {form.banner()}
            <form method="post" action="/auth/reset-password" novalidate>
                <input type="hidden" name="token" value=token />
                {form.field("password", "New password (at least 8 characters)", "password", "new-password")}
                <button type="submit">"Set the new password"</button>
            </form>
        </section>
    }
}

/// `/account`: the person's own settings.
#[component]
pub fn AccountPage() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    let form = FormState::for_form(take_flash(), "account");
    view! {
        <Title text="Your account · Convene" />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! {
                            <section class="panel narrow">
                                <h1>"Your account"</h1>
                                {form.banner()}
                                <p>"Signed in as " <strong>{viewer.email}</strong> "."</p>
                                <h2>"Change password"</h2>
                                <form method="post" action="/account/password" novalidate>
                                    {form.field("current_password", "Current password", "password", "current-password")}
                                    {form.field("new_password", "New password", "password", "new-password")}
                                    <button type="submit">"Change password"</button>
                                </form>
                                <h2>"Change email address"</h2>
                                <form method="post" action="/account/email" novalidate>
                                    {form.field("email", "New email address", "email", "email")}
                                    <label class="field">
                                        <span>"Current password"</span>
                                        <input name="current_password" type="password" autocomplete="current-password" required=true />
                                    </label>
                                    <button type="submit">"Send a confirmation link"</button>
                                </form>
                                <h2>"Sessions"</h2>
                                <form method="post" action="/account/sign-out-everywhere">
                                    <button type="submit" class="secondary">"Sign out on every device"</button>
                                </form>
                            </section>
                        }.into_any(),
                        Ok(None) => view! { <SignInFirst /> }.into_any(),
                        Err(error) => view! { <p class="banner error">{error.to_string()}</p> }.into_any(),
                    }
                }
            })}
        </Suspense>
    }
}

/// `/verify?token=…`: the link from the verification mail. Following it shows a button rather than acting
/// at once, because mail scanners open links and would otherwise use them up.
#[component]
pub fn VerifyPage() -> impl IntoView {
    let query = use_query_map();
    let form = FormState::for_form(take_flash(), "verify");
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Confirm your email address · Convene" />
        <section class="panel narrow">
            <h1>"Confirm your email address"</h1>
            {form.banner()}
            <form method="post" action="/auth/verify">
                <input type="hidden" name="token" value=token />
                <button type="submit">"Confirm my email address"</button>
            </form>
        </section>
    }
}

/// The signed-in home: who you are, which organisation you work in, and the switcher between them.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    let form = FormState::for_form(take_flash(), "dashboard");
    view! {
        <Title text="Dashboard · Convene" />
        <crate::layout::WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! { <Dashboard viewer form /> }.into_any(),
                        Ok(None) => view! { <SignInFirst /> }.into_any(),
                        Err(error) => view! { <p class="banner error">{error.to_string()}</p> }.into_any(),
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Dashboard(viewer: Viewer, form: FormState) -> impl IntoView {
    let tenant = viewer.tenant.clone();
    let switcher = (viewer.memberships.len() > 1).then(|| {
        let active = tenant.as_ref().map(|tenant| tenant.tenant_id.clone()).unwrap_or_default();
        view! {
            <form class="inline" method="post" action="/auth/switch-tenant">
                <label class="field inline">
                    <span>"Organisation"</span>
                    <select name="tenant_id">
                        {viewer
                            .memberships
                            .iter()
                            .map(|membership| {
                                let selected = membership.tenant_id == active;
                                view! {
                                    <option value=membership.tenant_id.clone() selected=selected>
                                        {membership.tenant_name.clone()}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </label>
                <button type="submit" class="secondary">"Switch"</button>
            </form>
        }
    });
    let verification = (!viewer.email_verified).then(|| {
        view! {
            <div class="banner warn" role="status">
                <p>
                    "Confirm your email address to schedule meetings. We sent a link to "
                    <strong>{viewer.email.clone()}</strong> "."
                </p>
                <form method="post" action="/auth/resend-verification">
                    <button type="submit" class="secondary">"Send the link again"</button>
                </form>
            </div>
        }
    });
    view! {
        <section class="panel">
            {form.banner()}
            <h1>{format!("Hello, {}", viewer.name)}</h1>
            {match tenant {
                Some(tenant) => view! {
                    <p>
                        "You are working in " <strong>{tenant.tenant_name}</strong> " as "
                        <span class="role">{tenant.role.as_str()}</span> "."
                    </p>
                }.into_any(),
                None => view! { <p>"You do not belong to any organisation yet."</p> }.into_any(),
            }}
            {verification}
            {switcher}
        </section>
        <crate::meetings::UpcomingMeetings />
    }
}

/// The sign-in state in the site header.
#[component]
pub fn AccountMenu() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    view! {
        <nav class="account" aria-label="Account">
            <Suspense>
                {move || Suspend::new(async move {
                    match viewer.await {
                        Ok(Some(viewer)) => view! {
                            <a href="/dashboard">"Dashboard"</a>
                            <a href="/account">{viewer.name}</a>
                            <form method="post" action="/auth/logout">
                                <button type="submit" class="link">"Sign out"</button>
                            </form>
                        }.into_any(),
                        _ => view! {
                            <a href="/login">"Sign in"</a>
                            <a class="button" href="/signup">"Create an organisation"</a>
                        }.into_any(),
                    }
                })}
            </Suspense>
        </nav>
    }
}
