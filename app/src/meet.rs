//! The meet host: where invitation links land. A link's token is verified on the server with the tenant's
//! public keys; the page says who the invitation is for, or exactly why it cannot be used, and a valid one
//! opens the meeting client (`crate::meeting`).

use convene_domain::RoomName;
use leptos::prelude::*;
use leptos_meta::{Meta, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{Route, Router, Routes},
    hooks::{use_params_map, use_query_map},
    path,
};

use crate::{
    NotFound, mark_hydrated,
    meeting::MeetingClient,
    model::{Invitee, LinkRefusal},
    set_status,
};

/// Verifies the token of a meeting link.
#[server]
pub async fn check_room_link(room: String, token: String) -> Result<Result<Invitee, LinkRefusal>, ServerFnError> {
    let (backend, _) = crate::backend::backend_and_session().await?;
    Ok(backend.room_link(room, token).await)
}

/// The meet host's component tree.
#[component]
pub fn MeetApp() -> impl IntoView {
    provide_meta_context();
    mark_hydrated();
    view! {
        // Invitation links carry credentials: keep them out of search engines and Referer headers.
        <Meta name="robots" content="noindex" />
        <Meta name="referrer" content="no-referrer" />
        <header class="bar">
            <span class="brand">"Convene"</span>
            <span class="bar-note">"Meetings"</span>
        </header>
        <Router>
            <main>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=MeetHome />
                    <Route path=path!("/:room") view=RoomLink ssr=SsrMode::Async />
                    // Every other path renders the "not found" page with a 404, rather than an empty body.
                    <Route path=path!("/*any") view=NotFound />
                </Routes>
            </main>
        </Router>
    }
}

/// The meet host's root, reached by people who typed the host name alone.
#[component]
fn MeetHome() -> impl IntoView {
    view! {
        <Title text="Join a meeting · Convene" />
        <section class="notice">
            <h1>"Join a meeting"</h1>
            <p>
                "Meetings open from the link in your invitation. It looks like "
                <code>"meet.example.com/room-name?jwt=…"</code> "."
            </p>
            <p>"Open the invitation email or calendar entry and follow its link from there."</p>
        </section>
    }
}

/// `/<room>?jwt=<token>`: a meeting link.
#[component]
fn RoomLink() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let room_text = params.read_untracked().get("room").unwrap_or_default();
    let Ok(room) = RoomName::parse(&room_text) else { return view! { <NotARoom /> }.into_any() };
    let token =
        query.read_untracked().get("jwt").map(|token| token.trim().to_owned()).filter(|token| !token.is_empty());
    let Some(token) = token else {
        let refusal = LinkRefusal {
            code: "missing_token".to_owned(),
            message: "Meetings on Convene open from a personal invitation link, and this link has none in it"
                .to_owned(),
        };
        return view! { <Refused room refusal /> }.into_any();
    };
    let checked = Resource::new(
        {
            let token = token.clone();
            move || (room_text.clone(), token.clone())
        },
        |(room, token)| check_room_link(room, token),
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Checking your invitation…"</p> }>
            {move || Suspend::new({
                let room = room.clone();
                let token = token.clone();
                async move {
                    match checked.await {
                        Ok(Ok(invitee)) => view! { <MeetingClient room token invitee /> }.into_any(),
                        Ok(Err(refusal)) => view! { <Refused room refusal /> }.into_any(),
                        Err(_) => view! { <p class="banner error">"Your invitation cannot be checked right now."</p> }.into_any(),
                    }
                }
            })}
        </Suspense>
    }
    .into_any()
}

/// A path that cannot be a room name.
#[component]
fn NotARoom() -> impl IntoView {
    set_status(404);
    view! {
        <Title text="No such meeting · Convene" />
        <section class="notice">
            <h1>"This is not a meeting address"</h1>
            <p>
                "Meeting addresses use lowercase letters, digits and hyphens, such as "
                <code>"weekly-sync"</code> ". Check that the whole link was copied from your invitation."
            </p>
        </section>
    }
}

/// Explains why a link does not open the meeting.
#[component]
fn Refused(room: RoomName, refusal: LinkRefusal) -> impl IntoView {
    let (headline, advice) = match refusal.code.as_str() {
        "missing_token" => (
            "This link needs an invitation",
            "Use the full link from your invitation email or calendar entry. If you organise this meeting, \
             start it from your dashboard.",
        ),
        "unreadable_token" => (
            "This invitation link is damaged",
            "Links are sometimes cut off when copied or wrapped across lines in an email. Open the link straight \
             from the invitation, or ask the organiser to send it again.",
        ),
        "expired" => ("This invitation link has expired", "Ask the organiser for a new invitation link."),
        "not_yet_valid" => ("This invitation is not valid yet", "Open the link again closer to the meeting."),
        "other_room" => (
            "This invitation is for another meeting",
            "Use the link exactly as it arrived, or ask the organiser for an invitation to this meeting.",
        ),
        "unknown_issuer" => ("This invitation could not be verified", "Ask the organiser for a new invitation link."),
        "removed" => ("You cannot rejoin this meeting", "A moderator removed you. Ask them if you should be here."),
        "ended" => ("This meeting is not on", "Ask the organiser for a new invitation if it should be."),
        "unavailable" => ("This meeting cannot be opened right now", "Try again in a minute."),
        _ => ("This invitation cannot be used", "Ask the organiser for a new invitation link."),
    };
    view! {
        <Title text=format!("{headline} · Convene") />
        <section class="notice" data-problem=refusal.code>
            <p class="eyebrow">"Meeting " <code>{room.to_string()}</code></p>
            <h1>{headline}</h1>
            <p>{crate::capitalised(&refusal.message)}</p>
            <p>{advice}</p>
        </section>
    }
}
