//! The screens around the meeting: waiting, the password prompt, the lobby, and out of the meeting.

use super::*;

/// A moment of waiting.
#[component]
pub(super) fn Waiting(headline: &'static str) -> impl IntoView {
    view! {
        <div class="notice">
            <h1>{headline}</h1>
            <p class="muted">"This takes a few seconds."</p>
        </div>
    }
}

/// The room asks for a password.
#[component]
pub(super) fn PasswordPrompt(wrong: bool) -> impl IntoView {
    let client = client();
    let password = RwSignal::new(String::new());
    let submit = move |event: SubmitEvent| {
        event.prevent_default();
        client.choices.update(|choices| choices.password = Some(password.get_untracked()));
        client.join();
    };
    view! {
        <form class="notice" on:submit=submit>
            <h1>"This meeting has a password"</h1>
            {wrong.then(|| view! { <p class="banner error">"That password is not right. Try again."</p> })}
            <label>
                "Password"
                <input type="password" name="password" required autofocus
                    on:input=move |event| password.set(event_target_value(&event)) />
            </label>
            <button class="button" type="submit">"Join"</button>
        </form>
    }
}

/// Waiting to be let in.
#[component]
pub(super) fn Lobby() -> impl IntoView {
    let client = client();
    view! {
        <div class="notice">
            <h1>"Waiting to be let in"</h1>
            <p>"The meeting has a lobby. A moderator has been told you are here and will let you in."</p>
            <button class="button secondary" on:click=move |_| client.leave()>"Leave"</button>
        </div>
    }
}

/// Out of the meeting, and why.
#[component]
pub(super) fn Over(ending: Ending, home: Option<String>) -> impl IntoView {
    let client = client();
    let headline = match ending.reason {
        None => "You left the meeting",
        Some(Refusal::Kicked) => "A moderator removed you from the meeting",
        Some(Refusal::Ended) => "The meeting is over",
        Some(Refusal::Rejected) => "A moderator did not let you in",
        Some(Refusal::InvalidToken) => "This invitation cannot be used",
        Some(Refusal::Locked) => "This meeting is locked",
        Some(Refusal::Full) | Some(Refusal::PlanLimit) => "This meeting is full",
        Some(_) => "You are not in the meeting",
    };
    let rejoin = matches!(ending.reason, None | Some(Refusal::Unavailable | Refusal::Locked | Refusal::Full));
    view! {
        <div class="notice" data-ending=ending.reason.map_or("left", Refusal::code)>
            <h1>{headline}</h1>
            <p>{ending.message}</p>
            <div class="over-actions">
                {rejoin.then(|| view! { <button class="button" name="rejoin" on:click=move |_| client.join()>"Join again"</button> })}
                {home.map(|home| view! { <a class="button secondary" href=home>"Back to your dashboard"</a> })}
            </div>
        </div>
    }
}
