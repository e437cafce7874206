//! The meet host: where invitation links land. The meeting itself arrives with the browser client; until a
//! link carries a token this server can verify, the page explains what is wrong and what to do.

use convene_domain::RoomName;
use leptos::prelude::*;
use leptos_meta::{Meta, Title, provide_meta_context};
use leptos_router::{
    components::{Route, Router, Routes},
    hooks::{use_params_map, use_query_map},
    path,
};

use crate::{
    NotFound, mark_hydrated,
    meet_link::{LinkProblem, diagnose},
    set_status,
};

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
                    <Route path=path!("/:room") view=RoomLink />
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
    move || {
        let room_text = params.read().get("room").unwrap_or_default();
        match RoomName::parse(&room_text) {
            Ok(room) => {
                let problem = diagnose(&room, query.read().get("jwt").as_deref());
                view! { <LinkExplanation room problem /> }.into_any()
            }
            Err(_) => view! { <NotARoom /> }.into_any(),
        }
    }
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

/// Explains why a link to an existing-looking room does not open the meeting.
#[component]
fn LinkExplanation(room: RoomName, problem: LinkProblem) -> impl IntoView {
    let (headline, explanation, advice) = match &problem {
        LinkProblem::MissingToken => (
            "This link needs an invitation".to_owned(),
            "Meetings on Convene open from a personal invitation link, and this link has no invitation in it."
                .to_owned(),
            "Use the full link from your invitation email or calendar entry. If you organise this meeting, \
             start it from your dashboard."
                .to_owned(),
        ),
        LinkProblem::UnreadableToken => (
            "This invitation link is damaged".to_owned(),
            "The invitation part of the link could not be read. Links are sometimes cut off when copied or \
             wrapped across lines in an email."
                .to_owned(),
            "Open the link straight from the invitation, or ask the organiser to send it again.".to_owned(),
        ),
        LinkProblem::OtherRoom { token_room } => (
            "This invitation is for another meeting".to_owned(),
            format!("The invitation in this link is for the meeting “{token_room}”, not for “{room}”."),
            "Use the link exactly as it arrived, or ask the organiser for an invitation to this meeting.".to_owned(),
        ),
        LinkProblem::UnknownIssuer => (
            "This invitation could not be verified".to_owned(),
            "No organisation on this Convene server vouches for the invitation in this link, so the meeting \
             cannot open with it."
                .to_owned(),
            "Ask the organiser for a new invitation link.".to_owned(),
        ),
    };
    view! {
        <Title text=format!("{headline} · Convene") />
        <section class="notice" data-problem=problem_code(&problem)>
            <p class="eyebrow">"Meeting " <code>{room.to_string()}</code></p>
            <h1>{headline}</h1>
            <p>{explanation}</p>
            <p>{advice}</p>
        </section>
    }
}

/// A stable, machine-readable name for each problem (tests and support read it from `data-problem`).
fn problem_code(problem: &LinkProblem) -> &'static str {
    match problem {
        LinkProblem::MissingToken => "missing_token",
        LinkProblem::UnreadableToken => "unreadable_token",
        LinkProblem::OtherRoom { .. } => "other_room",
        LinkProblem::UnknownIssuer => "unknown_issuer",
    }
}
