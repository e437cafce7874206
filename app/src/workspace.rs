//! The signed-in pages of a tenant: team (members, invitations, roles), API keys, audit log, and accepting
//! an invitation. Each page loads its data through one server function; forms post to `convene-api`.

use convene_domain::Role;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    forms::FormState,
    forms::take_flash,
    layout::{CopyText, WorkspaceNav, day, page_or_problem},
    model::{ApiKeyListing, AuditEntry, InvitationDetails, PageError, Team},
};

/// The team of the viewer's active tenant.
#[server]
pub async fn get_team() -> Result<Result<Team, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.team(session).await)
}

/// The API keys of the viewer's active tenant.
#[server]
pub async fn get_api_keys() -> Result<Result<Vec<ApiKeyListing>, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.api_keys(session).await)
}

/// The audit log of the viewer's active tenant.
#[server]
pub async fn get_audit_log() -> Result<Result<Vec<AuditEntry>, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.audit_log(session).await)
}

/// What an invitation link offers.
#[server]
pub async fn get_invitation(token: String) -> Result<Result<InvitationDetails, String>, ServerFnError> {
    let (backend, _) = crate::backend::backend_and_session().await?;
    Ok(backend.invitation(token).await)
}

const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Moderator, Role::Participant];

fn role_options(selected: Role, allowed: impl Fn(Role) -> bool) -> impl IntoView {
    ROLES
        .into_iter()
        .filter(move |role| allowed(*role))
        .map(move |role| view! { <option value=role.as_str() selected=role == selected>{role.as_str()}</option> })
        .collect_view()
}

/// `/team`.
#[component]
pub fn TeamPage() -> impl IntoView {
    let team = Resource::new(|| (), |_| get_team());
    let form = FormState::for_form(take_flash(), "team");
    view! {
        <Title text="Team · Convene" />
        <WorkspaceNav />
        <section class="panel">
            <h1>"Team"</h1>
            {form.banner()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new({
                    let form = form.clone();
                    async move { page_or_problem(team.await, |team| view! { <TeamView team form /> }) }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn TeamView(team: Team, form: FormState) -> impl IntoView {
    let owner = team.viewer_role == Role::Owner;
    let admin = matches!(team.viewer_role, Role::Owner | Role::Admin);
    let members = team
        .members
        .into_iter()
        .map(|member| {
            let actions = (owner && !member.is_viewer).then(|| {
                let base = format!("/team/members/{}", member.user_id);
                let toggle = if member.disabled {
                    view! {
                        <form method="post" action=format!("{base}/enable")>
                            <button type="submit" class="secondary">"Enable"</button>
                        </form>
                    }
                    .into_any()
                } else {
                    view! {
                        <form class="inline" method="post" action=format!("{base}/role")>
                            <label class="field inline">
                                <span class="visually-hidden">{format!("Role of {}", member.name)}</span>
                                <select name="role">{role_options(member.role, |_| true)}</select>
                            </label>
                            <button type="submit" class="secondary">"Change role"</button>
                        </form>
                        <form method="post" action=format!("{base}/disable")>
                            <button type="submit" class="secondary">"Disable"</button>
                        </form>
                    }
                    .into_any()
                };
                view! {
                    {toggle}
                    <form method="post" action=format!("{base}/remove")>
                        <button type="submit" class="secondary danger">"Remove"</button>
                    </form>
                }
            });
            view! {
                <tr>
                    <td>{member.name}{member.is_viewer.then_some(" (you)")}</td>
                    <td>{member.email}</td>
                    <td>
                        <span class="role">{member.role.as_str()}</span>
                        {member.disabled.then(|| view! { " " <span class="badge">"disabled"</span> })}
                    </td>
                    <td class="actions">{actions}</td>
                </tr>
            }
        })
        .collect_view();
    let invitations = (!team.invitations.is_empty()).then(|| {
        let rows = team
            .invitations
            .into_iter()
            .map(|invitation| {
                let action = format!("/team/invitations/{}/revoke", invitation.id);
                view! {
                    <tr>
                        <td>{invitation.email}</td>
                        <td class="role">{invitation.role.as_str()}</td>
                        <td>{invitation.expires_at.chars().take(10).collect::<String>()}</td>
                        <td class="actions">
                            <form method="post" action=action>
                                <button type="submit" class="secondary">"Withdraw"</button>
                            </form>
                        </td>
                    </tr>
                }
            })
            .collect_view();
        view! {
            <h2>"Pending invitations"</h2>
            <table>
                <thead><tr><th>"Email"</th><th>"Role"</th><th>"Expires"</th><th></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        }
    });
    let invite = admin.then(|| {
        let viewer_role = team.viewer_role;
        view! {
            <h2>"Invite someone"</h2>
            <form method="post" action="/team/invite" class="invite" novalidate>
                {form.field("email", "Email", "email", "off")}
                <label class="field">
                    <span>"Role"</span>
                    <select name="role">
                        {role_options(Role::Participant, move |role| role != Role::Owner || viewer_role == Role::Owner)}
                    </select>
                </label>
                <button type="submit">"Send invitation"</button>
            </form>
        }
    });
    view! {
        <table>
            <thead><tr><th>"Name"</th><th>"Email"</th><th>"Role"</th><th></th></tr></thead>
            <tbody>{members}</tbody>
        </table>
        {invitations}
        {invite}
    }
}

/// `/keys`.
#[component]
pub fn KeysPage() -> impl IntoView {
    let keys = Resource::new(|| (), |_| get_api_keys());
    let flash = take_flash();
    let new_key =
        flash.as_ref().filter(|flash| flash.form == "keys").and_then(|flash| flash.values.get("new_key").cloned());
    let form = FormState::for_form(flash, "keys");
    view! {
        <Title text="API keys · Convene" />
        <WorkspaceNav />
        <section class="panel">
            <h1>"API keys"</h1>
            <p class="muted">
                "Keys let your backend call the " <code>"/v1"</code> " REST API with "
                <code>"Authorization: Bearer <key>"</code> "."
            </p>
            {form.banner()}
            {new_key.map(|key| view! { <NewKey key /> })}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move { page_or_problem(keys.await, |keys| view! { <KeyList keys /> }) })}
            </Suspense>
            <h2>"Create a key"</h2>
            <form method="post" action="/keys" class="invite" novalidate>
                {form.field("name", "Name (what uses it)", "text", "off")}
                <button type="submit">"Create key"</button>
            </form>
        </section>
    }
}

/// A key just created, with a copy button once the page is live.
#[component]
fn NewKey(key: String) -> impl IntoView {
    view! {
        <p class="new-key">
            <CopyText id="new-key" text=key />
        </p>
    }
}

#[component]
fn KeyList(keys: Vec<ApiKeyListing>) -> impl IntoView {
    if keys.is_empty() {
        return view! { <p class="muted">"No keys yet."</p> }.into_any();
    }
    let rows = keys
        .into_iter()
        .map(|key| {
            let action = format!("/keys/{}/revoke", key.id);
            let status = match (&key.revoked_at, &key.last_used_at) {
                (Some(at), _) => format!("revoked {}", day(at)),
                (None, Some(at)) => format!("last used {}", day(at)),
                (None, None) => "never used".to_owned(),
            };
            let live = key.revoked_at.is_none();
            view! {
                <tr>
                    <td>{key.name}</td>
                    <td><code>{format!("{}…", key.prefix)}</code></td>
                    <td>{day(&key.created_at)}</td>
                    <td>{status}</td>
                    <td class="actions">
                        {live.then(|| view! {
                            <form method="post" action=action>
                                <button type="submit" class="secondary danger">"Revoke"</button>
                            </form>
                        })}
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <table>
            <thead><tr><th>"Name"</th><th>"Key"</th><th>"Created"</th><th>"Status"</th><th></th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// `/audit`.
#[component]
pub fn AuditPage() -> impl IntoView {
    let log = Resource::new(|| (), |_| get_audit_log());
    view! {
        <Title text="Audit log · Convene" />
        <WorkspaceNav />
        <section class="panel">
            <h1>"Audit log"</h1>
            <p class="muted">"Security events in this organisation, newest first."</p>
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    page_or_problem(log.await, |entries| {
                        let rows = entries
                            .into_iter()
                            .map(|entry| view! {
                                <tr>
                                    <td class="when">{entry.at.chars().take(19).collect::<String>().replace('T', " ")}</td>
                                    <td><code>{entry.event}</code></td>
                                    <td>{entry.actor.unwrap_or_default()}</td>
                                    <td>{entry.detail}</td>
                                    <td>{entry.ip.unwrap_or_default()}</td>
                                </tr>
                            })
                            .collect_view();
                        view! {
                            <div class="table-scroll">
                                <table>
                                    <thead><tr><th>"When (UTC)"</th><th>"Event"</th><th>"Who"</th><th>"Details"</th><th>"From"</th></tr></thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            </div>
                        }
                    })
                })}
            </Suspense>
        </section>
    }
}

/// `/invitations/accept?token=…`.
#[component]
pub fn AcceptInvitationPage() -> impl IntoView {
    let query = use_query_map();
    let token = query.read_untracked().get("token").unwrap_or_default();
    let details = Resource::new(move || token.clone(), get_invitation);
    let form = FormState::for_form(take_flash(), "accept");
    let token = move || query.read().get("token").unwrap_or_default();
    view! {
        <Title text="Join your team · Convene" />
        <section class="panel narrow">
            {form.banner()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new({
                    let form = form.clone();
                    async move {
                        match details.await {
                            Ok(Ok(details)) => view! { <AcceptForm details form token=token() /> }.into_any(),
                            Ok(Err(problem)) => view! {
                                <h1>"This invitation cannot be used"</h1>
                                <p>{crate::capitalised(&problem)}</p>
                                <p class="muted">"Ask the person who invited you to send a new invitation."</p>
                            }.into_any(),
                            Err(_) => view! { <p class="banner error">"This page cannot be shown right now."</p> }.into_any(),
                        }
                    }
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn AcceptForm(details: InvitationDetails, form: FormState, token: String) -> impl IntoView {
    let heading = format!("Join {} on Convene", details.tenant_name);
    let offer = format!("You are invited as {} with the address {}.", details.role.as_str(), details.email);
    let body = if details.has_account {
        view! {
            <p>"You already have a Convene account. Sign in with it, then open this link again to accept."</p>
            <form method="post" action="/invitations/accept">
                <input type="hidden" name="token" value=token />
                <button type="submit">"Accept as the signed-in account"</button>
            </form>
            <p class="muted"><a href="/login">"Sign in"</a></p>
        }
        .into_any()
    } else {
        view! {
            <form method="post" action="/invitations/accept" novalidate>
                <input type="hidden" name="token" value=token />
                {form.field("name", "Your name", "text", "name")}
                {form.field("password", "Choose a password (at least 8 characters)", "password", "new-password")}
                <button type="submit">"Join"</button>
            </form>
        }
        .into_any()
    };
    view! {
        <h1>{heading}</h1>
        <p>{offer}</p>
        {body}
    }
}
