//! `/billing`: the tenant's plan, subscription status, this period's participant-minutes against the
//! plan's limits, the plans to choose from, and invoices (owners only). Upgrading posts to Checkout and
//! managing to the Customer Portal; both are `convene-api` form endpoints. Coming back from Checkout only
//! says the payment is being confirmed: the plan changes when Stripe's webhook arrives.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use crate::{
    forms::{FormState, take_flash},
    layout::{WorkspaceNav, page_or_problem},
    model::{BillingPage, InvoiceListing, PlanSummary},
};

/// The billing page of the viewer's active tenant.
#[server]
pub async fn get_billing() -> Result<Result<BillingPage, crate::model::PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.billing(session).await)
}

fn day(timestamp: &str) -> String {
    timestamp.chars().take(10).collect()
}

fn grouped(number: u64) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn yes_no(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

fn status_words(status: &str) -> &str {
    match status {
        "active" => "active",
        "trialing" => "in its trial",
        "past_due" => "past due: a payment failed",
        "unpaid" => "unpaid",
        "incomplete" => "waiting for its first payment",
        "canceled" => "cancelled",
        other => other,
    }
}

/// `/billing`.
#[component]
pub fn BillingPageView() -> impl IntoView {
    let page = Resource::new(|| (), |_| get_billing());
    let form = FormState::for_form(take_flash(), "billing");
    let returned = use_query_map().read_untracked().get("checkout");
    view! {
        <Title text="Billing · Convene" />
        <WorkspaceNav />
        <section class="panel">
            <h1>"Billing"</h1>
            {form.banner()}
            {returned.map(|returned| match returned.as_str() {
                "success" => view! {
                    <p class="banner ok">
                        "Thank you. Stripe is confirming the payment; your plan changes here as soon as it has, \
                         usually within a minute."
                    </p>
                }
                .into_any(),
                _ => view! { <p class="banner warn">"Checkout was cancelled; nothing was charged."</p> }.into_any(),
            })}
            <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move { page_or_problem(page.await, |page| view! { <Billing page /> }) })}
            </Suspense>
        </section>
    }
}

#[component]
fn Billing(page: BillingPage) -> impl IntoView {
    let plan = page.plan.clone();
    let limits = &plan;
    let used = page.used_minutes.saturating_add(page.in_progress_minutes);
    let included = limits.included_minutes;
    let percent = used.saturating_mul(100).checked_div(included).map_or(100, |percent| percent.min(100));
    let over = used.saturating_sub(included);
    let status = match (&page.status, page.cancel_at_period_end) {
        (Some(status), true) => format!("Subscription {}, ending on {}.", status_words(status), day(&page.period_end)),
        (Some(status), false) => format!("Subscription {}.", status_words(status)),
        (None, _) => "No subscription.".to_owned(),
    };
    let overdue = page.overdue.clone().map(|overdue| {
        let text = if overdue.refusing {
            format!(
                "A payment has been failing since {}. The grace period ended on {}: new meetings cannot start \
                 (meetings going on continue). Update the payment method to go on.",
                day(&overdue.since),
                day(&overdue.grace_ends)
            )
        } else {
            format!(
                "A payment has been failing since {}. Meetings keep working until {}; update the payment method \
                 before then.",
                day(&overdue.since),
                day(&overdue.grace_ends)
            )
        };
        view! { <p class=if overdue.refusing { "banner error" } else { "banner warn" }>{text}</p> }
    });
    let usage_note = if over > 0 && limits.overage_billed {
        format!("{} beyond the included minutes, billed at the plan's overage price.", grouped(over))
    } else if used >= included && !limits.overage_billed {
        "The included minutes are used up: new meetings start again next period, or after an upgrade.".to_owned()
    } else {
        format!("{} left this period.", grouped(included - used))
    };
    let manage = page.can_manage.then(|| {
        view! {
            <form method="post" action="/billing/portal">
                <button type="submit" class="secondary">"Manage subscription, payment method and invoices"</button>
            </form>
        }
    });
    view! {
        {overdue}
        <div class="card">
            <h2>{format!("{} plan", plan.name)}</h2>
            <p>{status}</p>
            <p>{format!("Current period: {} to {}.", day(&page.period_start), day(&page.period_end))}</p>
            {manage}
        </div>
        <h2>"Usage this period"</h2>
        <p>
            <strong>{format!("{} of {} participant-minutes", grouped(used), grouped(included))}</strong>
            {(page.in_progress_minutes > 0)
                .then(|| format!(" ({} in meetings going on now)", grouped(page.in_progress_minutes)))}
        </p>
        <progress class="usage" max="100" value=percent.to_string() aria-label="Participant-minutes used">
            {format!("{percent}%")}
        </progress>
        <p class="muted">{usage_note}</p>
        <table>
            <caption class="visually-hidden">"What the plan allows"</caption>
            <tbody>
                <tr><th scope="row">"Participants per meeting"</th><td>{limits.participants_per_meeting}</td></tr>
                <tr><th scope="row">"Meetings at once"</th><td>{limits.concurrent_meetings}</td></tr>
                <tr><th scope="row">"Recording"</th><td>{yes_no(limits.recording)}</td></tr>
                <tr><th scope="row">"Dial-in"</th><td>{yes_no(limits.dial_in)}</td></tr>
            </tbody>
        </table>
        <Plans plans=page.plans.clone() current=plan.id.clone() subscribed=page.subscribed enabled=page.billing_enabled />
        <Invoices invoices=page.invoices />
    }
}

#[component]
fn Plans(plans: Vec<PlanSummary>, current: String, subscribed: bool, enabled: bool) -> impl IntoView {
    let note = if !enabled {
        Some("This server takes no payments: every organisation is on the free plan.")
    } else if subscribed {
        Some("To change plans, use “Manage subscription” above.")
    } else {
        None
    };
    let cards = plans
        .into_iter()
        .map(|plan| {
            let is_current = plan.id == current;
            let minutes = if plan.overage_billed {
                format!(
                    "{} participant-minutes included, then {}",
                    grouped(plan.included_minutes),
                    plan.overage_label.clone().unwrap_or_else(|| "billed per minute".to_owned())
                )
            } else {
                format!("{} participant-minutes a period", grouped(plan.included_minutes))
            };
            let action = (plan.purchasable && !is_current && !subscribed).then(|| {
                view! {
                    <form method="post" action="/billing/checkout">
                        <input type="hidden" name="plan" value=plan.id.clone() />
                        <button type="submit">{format!("Upgrade to {}", plan.name)}</button>
                    </form>
                }
            });
            view! {
                <div class="card">
                    <h3>
                        {plan.name.clone()}
                        {is_current.then(|| view! { " " <span class="badge">"current"</span> })}
                    </h3>
                    <p>{plan.price_label.clone().unwrap_or_else(|| "Free".to_owned())}</p>
                    <p>{format!(
                        "Up to {} people per meeting and {} at once; {}.",
                        plan.participants_per_meeting,
                        if plan.concurrent_meetings == 1 {
                            "1 meeting".to_owned()
                        } else {
                            format!("{} meetings", plan.concurrent_meetings)
                        },
                        minutes
                    )}</p>
                    <p>{format!("Recording: {}. Dial-in: {}.", yes_no(plan.recording), yes_no(plan.dial_in))}</p>
                    {action}
                </div>
            }
        })
        .collect_view();
    view! {
        <h2>"Plans"</h2>
        {note.map(|note| view! { <p class="muted">{note}</p> })}
        <div class="features">{cards}</div>
    }
}

#[component]
fn Invoices(invoices: Vec<InvoiceListing>) -> impl IntoView {
    if invoices.is_empty() {
        return view! { <h2>"Invoices"</h2> <p class="muted">"No invoices yet."</p> }.into_any();
    }
    let rows = invoices
        .into_iter()
        .map(|invoice| {
            let link = invoice.url.map(|url| view! { <a href=url>"View"</a> });
            view! {
                <tr>
                    <td>{invoice.number.unwrap_or_else(|| "draft".to_owned())}</td>
                    <td>{day(&invoice.created_at)}</td>
                    <td>{invoice.amount}</td>
                    <td>{invoice.status}</td>
                    <td>{link}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <h2>"Invoices"</h2>
        <table>
            <thead><tr><th>"Number"</th><th>"Date"</th><th>"Amount"</th><th>"Status"</th><th></th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}
