//! `/recordings`: the organisation's recorded meetings, newest first, each with its state; ready ones play
//! in the page and download through signed links; owners and admins delete them. Deleting posts to
//! `convene-api`.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::{
    forms::{FormState, take_flash},
    layout::{WorkspaceNav, page_or_problem},
    model::{PageError, RecordingItem, RecordingListing},
};

/// The recordings of the viewer's active tenant.
#[server]
pub async fn get_recordings() -> Result<Result<RecordingListing, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.recordings(session).await)
}

/// `/recordings`.
#[component]
pub fn RecordingsPage() -> impl IntoView {
    let recordings = Resource::new(|| (), |()| get_recordings());
    let form = FormState::for_form(take_flash(), "recording");
    view! {
        <Title text="Recordings · Convene" />
        <WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    page_or_problem(recordings.await, |listing: RecordingListing| view! {
                        <section class="panel">
                            {form.banner()}
                            <h1>"Recordings"</h1>
                            <p class="muted">
                                "Moderators record from the meeting's toolbar (or your app through the API). A recording is ready a few minutes after it stops."
                                {listing.retention_days.map(|days| format!(
                                    " Your plan keeps recordings for {days} days after the meeting; then they are deleted."
                                ))}
                            </p>
                            <RecordingList recordings=listing.recordings can_delete=listing.can_delete />
                        </section>
                    })
                }
            })}
        </Suspense>
    }
}

#[component]
fn RecordingList(recordings: Vec<RecordingItem>, can_delete: bool) -> impl IntoView {
    if recordings.is_empty() {
        return view! { <p class="muted">"No meeting has been recorded yet."</p> }.into_any();
    }
    view! {
        <ul class="recordings">
            {recordings.into_iter().map(|recording| view! { <Recording recording can_delete /> }).collect_view()}
        </ul>
    }
    .into_any()
}

#[component]
fn Recording(recording: RecordingItem, can_delete: bool) -> impl IntoView {
    let RecordingItem { id, room, started, length, people, size, state, state_label, note, video_url, audio_url } =
        recording;
    let facts = [Some(started), length, size].into_iter().flatten().collect::<Vec<_>>().join(" · ");
    let delete_action = format!("/recordings/{id}/delete");
    view! {
        <li class="recorded-meeting" data-recording=id data-state=state>
            <div class="heading-row">
                <strong>{room}</strong>
                <span class="tag">{state_label}</span>
            </div>
            <span class="muted">{facts}</span>
            {(!people.is_empty()).then(|| view! { <span class="people-line">{people.join(", ")}</span> })}
            {note.map(|note| view! { <p class="note">{note}</p> })}
            {video_url.map(|video| view! {
                <video controls preload="none" src=video.clone()></video>
                <p class="actions">
                    <a class="button secondary" href=video download="recording.mp4">"Download video"</a>
                    {audio_url.map(|audio| view! {
                        <a class="button secondary" href=audio download="audio.m4a">"Download audio"</a>
                    })}
                </p>
            })}
            {can_delete.then(|| view! {
                <form method="post" action=delete_action>
                    <button type="submit" class="danger">"Delete"</button>
                </form>
            })}
        </li>
    }
}
