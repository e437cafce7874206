//! `/webhooks` and `/webhooks/:id` (owners and admins): the organisation's webhook endpoints, a form to add
//! one, and each endpoint's page with its settings, its signing secret (shown once), a test event, and its
//! delivery log with "send again". Forms post to `convene-api` under `/webhook-endpoints`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;

use crate::{
    forms::{FormState, take_flash},
    layout::{CopyText, WorkspaceNav, day, page_or_problem},
    model::{PageError, WebhookAttempt, WebhookDetails, WebhookEndpoint, WebhookEventKind, WebhookListing},
};

/// The webhook endpoints of the viewer's active tenant.
#[server]
pub async fn get_webhooks() -> Result<Result<WebhookListing, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.webhooks(session).await)
}

/// One webhook endpoint with its delivery log.
#[server]
pub async fn get_webhook(id: String) -> Result<Result<WebhookDetails, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.webhook(session, id).await)
}

/// `/webhooks`.
#[component]
pub fn WebhooksPage() -> impl IntoView {
    let listing = Resource::new(|| (), |()| get_webhooks());
    let form = FormState::for_form(take_flash(), "webhooks");
    view! {
        <Title text="Webhooks · Convene" />
        <WorkspaceNav />
        <section class="panel">
            <h1>"Webhooks"</h1>
            <p class="muted">
                "Convene posts the events you choose to your endpoints as they happen, signed as the "
                <a href="https://www.standardwebhooks.com/">"Standard Webhooks"</a>
                " specification describes, and tries again for a day when your endpoint does not answer."
            </p>
            {form.banner()}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new({
                    let form = form.clone();
                    async move {
                        page_or_problem(listing.await, |listing: WebhookListing| {
                            let full = listing.endpoints.len() as u64 >= listing.most;
                            view! {
                                <EndpointList endpoints=listing.endpoints />
                                <h2>"Add an endpoint"</h2>
                                {if full {
                                    view! { <p class="muted">{format!("An organisation has at most {} endpoints; remove one first.", listing.most)}</p> }.into_any()
                                } else {
                                    view! { <EndpointForm action="/webhook-endpoints".to_owned() form=form.clone() kinds=listing.kinds endpoint=None /> }.into_any()
                                }}
                            }
                        })
                    }
                })}
            </Suspense>
        </section>
    }
}

/// What an endpoint is doing, in a word or three.
fn endpoint_state(endpoint: &WebhookEndpoint) -> String {
    match (&endpoint.failing_since, endpoint.disabled) {
        (_, true) => "paused".to_owned(),
        (Some(since), false) => format!("failing since {}", day(since)),
        (None, false) => "active".to_owned(),
    }
}

#[component]
fn EndpointList(endpoints: Vec<WebhookEndpoint>) -> impl IntoView {
    if endpoints.is_empty() {
        return view! { <p class="muted">"No endpoints yet."</p> }.into_any();
    }
    let items = endpoints
        .into_iter()
        .map(|endpoint| {
            let state = endpoint_state(&endpoint);
            let state_attribute = state.clone();
            let href = format!("/webhooks/{}", endpoint.id);
            let events = match endpoint.events.len() {
                1 => endpoint.events[0].clone(),
                count => format!("{count} events"),
            };
            view! {
                <li class="webhook" data-state=state_attribute>
                    <div class="heading-row">
                        <a href=href class="webhook-url">{endpoint.url}</a>
                        <span class="tag">{state}</span>
                    </div>
                    <span class="muted">{[endpoint.description, events].into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join(" · ")}</span>
                </li>
            }
        })
        .collect_view();
    view! { <ul class="webhooks">{items}</ul> }.into_any()
}

/// The form that adds an endpoint (`endpoint` absent) or changes one.
#[component]
fn EndpointForm(
    action: String,
    form: FormState,
    kinds: Vec<WebhookEventKind>,
    endpoint: Option<WebhookEndpoint>,
) -> impl IntoView {
    let editing = endpoint.is_some();
    let url = form.kept("url").or_else(|| endpoint.as_ref().map(|endpoint| endpoint.url.clone())).unwrap_or_default();
    let description = form
        .kept("description")
        .or_else(|| endpoint.as_ref().map(|endpoint| endpoint.description.clone()))
        .unwrap_or_default();
    let wanted: Vec<String> = match (form.kept("events"), &endpoint) {
        (Some(kept), _) => kept.split_whitespace().map(str::to_owned).collect(),
        (None, Some(endpoint)) => endpoint.events.clone(),
        (None, None) => Vec::new(),
    };
    let paused = endpoint.as_ref().is_some_and(|endpoint| endpoint.disabled);
    let error = |name: &'static str| {
        form.error(name).map(|error| view! { <span class="field-error" id=format!("{name}-error")>{error}</span> })
    };
    let invalid = |name: &'static str| form.error(name).map(|_| "true");
    let described = |name: &'static str| form.error(name).map(|_| format!("{name}-error"));
    let checks = kinds
        .into_iter()
        .map(|kind| {
            let on = wanted.contains(&kind.name);
            view! {
                <label class="check">
                    <input type="checkbox" name="events" value=kind.name.clone() checked=on />
                    <span><code>{kind.name}</code> " " <small class="muted">{kind.when}</small></span>
                </label>
            }
        })
        .collect_view();
    view! {
        <form method="post" action=action class="webhook-form" novalidate>
            <label class="field">
                <span>"Endpoint URL"</span>
                <input name="url" type="url" value=url placeholder="https://example.com/convene/webhooks" autocomplete="off"
                    required=true aria-invalid=invalid("url") aria-describedby=described("url") />
                {error("url")}
            </label>
            <label class="field">
                <span>"Description " <small class="muted">"(optional)"</small></span>
                <input name="description" type="text" value=description autocomplete="off"
                    aria-invalid=invalid("description") aria-describedby=described("description") />
                {error("description")}
            </label>
            <fieldset aria-describedby=described("events")>
                <legend>"Events to send"</legend>
                <div class="event-choices">{checks}</div>
                {error("events")}
            </fieldset>
            {editing.then(|| view! {
                <label class="check">
                    <input type="checkbox" name="paused" checked=paused />
                    <span>"Paused: nothing is sent; events wait until it is active again"</span>
                </label>
            })}
            <button type="submit">{if editing { "Save" } else { "Add endpoint" }}</button>
        </form>
    }
}

/// `/webhooks/:id`.
#[component]
pub fn WebhookPage() -> impl IntoView {
    let params = use_params_map();
    let details = Resource::new(move || params.read().get("id").unwrap_or_default(), get_webhook);
    let flash = take_flash();
    let new_secret = flash
        .as_ref()
        .filter(|flash| flash.form == "webhook")
        .and_then(|flash| flash.values.get("new_secret").cloned());
    let form = FormState::for_form(flash, "webhook");
    view! {
        <Title text="Webhook endpoint · Convene" />
        <WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let (form, new_secret) = (form.clone(), new_secret.clone());
                async move {
                    page_or_problem(details.await, |details: WebhookDetails| view! {
                        <Endpoint details form new_secret />
                    })
                }
            })}
        </Suspense>
    }
}

#[component]
fn Endpoint(details: WebhookDetails, form: FormState, new_secret: Option<String>) -> impl IntoView {
    let WebhookDetails { endpoint, kinds, attempts } = details;
    let id = endpoint.id.clone();
    let state = endpoint_state(&endpoint);
    view! {
        <section class="panel">
            <p><a href="/webhooks">"← Webhooks"</a></p>
            <div class="heading-row">
                <h1 class="webhook-url">{endpoint.url.clone()}</h1>
                <span class="tag">{state}</span>
            </div>
            {form.banner()}
            {new_secret.map(|secret| view! {
                <p class="new-key">
                    <CopyText id="new-secret" text=secret />
                </p>
            })}
            <p class="muted">
                "Check each delivery's " <code>"webhook-signature"</code> " with this endpoint's signing secret ("
                <code>"whsec_…"</code> "), shown only when it is made."
            </p>
            <div class="actions">
                <form method="post" action=format!("/webhook-endpoints/{id}/test")>
                    <button type="submit" class="secondary">"Send test event"</button>
                </form>
                <form method="post" action=format!("/webhook-endpoints/{id}/secret")>
                    <button type="submit" class="secondary">"New signing secret"</button>
                </form>
                <form method="post" action=format!("/webhook-endpoints/{id}/delete")>
                    <button type="submit" class="secondary danger">"Remove endpoint"</button>
                </form>
            </div>
            <h2>"Recent deliveries"</h2>
            <DeliveryLog endpoint=id.clone() attempts />
            <h2>"Settings"</h2>
            <EndpointForm action=format!("/webhook-endpoints/{id}") form kinds endpoint=Some(endpoint) />
        </section>
    }
}

#[component]
fn DeliveryLog(endpoint: String, attempts: Vec<WebhookAttempt>) -> impl IntoView {
    if attempts.is_empty() {
        return view! { <p class="muted">"Nothing has been sent yet. Send a test event to try the endpoint."</p> }
            .into_any();
    }
    let action = format!("/webhook-endpoints/{endpoint}/resend");
    let rows = attempts
        .into_iter()
        .map(|attempt| {
            let status = attempt.status.map_or_else(|| "no answer".to_owned(), |status| status.to_string());
            let status = format!("{status} · {} ms", attempt.latency_ms);
            let delivery = match attempt.state.as_str() {
                "pending" => "retrying",
                "failed" => "given up",
                _ => "delivered",
            };
            let state_attribute = attempt.state.clone();
            let answer_title = attempt.response.clone();
            let event_title = format!("webhook-id {}", attempt.message_id);
            view! {
                <tr data-state=state_attribute>
                    <td class="when">{attempt.at.chars().take(19).collect::<String>().replace('T', " ")}</td>
                    <td><code title=event_title>{attempt.event}</code></td>
                    <td class="status">{status}</td>
                    <td class="answer" title=answer_title>{attempt.response}</td>
                    <td>{delivery}</td>
                    <td class="actions">
                        <form method="post" action=action.clone()>
                            <input type="hidden" name="delivery" value=attempt.delivery_id />
                            <button type="submit" class="secondary">"Send again"</button>
                        </form>
                    </td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="table-scroll">
            <table class="deliveries">
                <thead><tr><th>"When (UTC)"</th><th>"Event"</th><th>"Status · time"</th><th>"Answer"</th><th>"Delivery"</th><th></th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
    .into_any()
}
