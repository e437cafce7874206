//! What the site's signed-in pages share: the person behind the request (loaded once per page), the
//! organisation's tabs, a page's data or the reason it cannot be shown, and text to copy. Pages depend on
//! this module and not on each other.

use convene_domain::Role;
use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_location};

use crate::{
    model::{PageError, Viewer},
    set_status,
};

/// The person behind the request, or `None` when signed out.
#[server]
pub async fn get_viewer() -> Result<Option<Viewer>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    backend.viewer(session).await.map_err(ServerFnError::new)
}

/// The signed-in state, loaded once per page and shared by the header and the pages.
pub type ViewerResource = Resource<Result<Option<Viewer>, ServerFnError>>;

/// Renders a page's data, or what to do when it cannot be shown.
pub(crate) fn page_or_problem<T, V: IntoView + 'static>(
    result: Result<Result<T, PageError>, ServerFnError>,
    page: impl FnOnce(T) -> V,
) -> AnyView {
    match result {
        Ok(Ok(data)) => page(data).into_any(),
        Ok(Err(PageError::SignedOut)) => view! { <SignInFirst /> }.into_any(),
        Ok(Err(PageError::Forbidden)) => {
            set_status(403);
            view! { <p class="banner error">"Your role in this organisation does not allow this page."</p> }.into_any()
        }
        Ok(Err(PageError::NotFound)) => {
            set_status(404);
            view! { <p class="banner error">"There is nothing here: it may have been removed."</p> }.into_any()
        }
        Ok(Err(PageError::Unavailable)) | Err(_) => {
            set_status(503);
            view! { <p class="banner error">"This page cannot be shown right now. Please try again."</p> }.into_any()
        }
    }
}

/// Sends a signed-out visitor to sign in, and back to this page afterwards: on the server a 302 before any
/// of the page is sent (the member pages render whole before answering).
#[component]
pub fn SignInFirst() -> impl IntoView {
    let location = use_location();
    let here = format!("{}{}", location.pathname.get_untracked(), location.search.get_untracked());
    view! { <Redirect path=format!("/login?next={}", query_value(&here)) /> }
}

/// `text` as a query value: everything but unreserved characters percent-encoded.
fn query_value(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(byte).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The tabs of the signed-in area; each appears only to roles that may use it.
#[component]
pub fn WorkspaceNav() -> impl IntoView {
    let viewer = expect_context::<ViewerResource>();
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                let role = viewer.await.ok().flatten().and_then(|viewer| viewer.tenant).map(|tenant| tenant.role);
                role.map(|role| {
                    let admin = matches!(role, Role::Owner | Role::Admin);
                    view! {
                        <nav class="tabs" aria-label="Organisation">
                            <a href="/dashboard">"Dashboard"</a>
                            {(role != Role::Participant).then(|| view! { <a href="/meetings">"Meetings"</a> })}
                            {(role != Role::Participant).then(|| view! { <a href="/recordings">"Recordings"</a> })}
                            <a href="/team">"Team"</a>
                            {admin.then(|| view! { <a href="/keys">"API keys"</a> })}
                            {admin.then(|| view! { <a href="/webhooks">"Webhooks"</a> })}
                            {(role == Role::Owner).then(|| view! { <a href="/audit">"Audit log"</a> })}
                            {(role == Role::Owner).then(|| view! { <a href="/billing">"Billing"</a> })}
                        </nav>
                    }
                })
            })}
        </Suspense>
    }
}

/// The date part of an RFC 3339 timestamp.
pub(crate) fn day(timestamp: &str) -> String {
    timestamp.chars().take(10).collect()
}

/// Text to copy (a key, a link), with a copy button once the page is live.
#[component]
pub(crate) fn CopyText(id: &'static str, text: String) -> impl IntoView {
    let copied = RwSignal::new(false);
    let to_copy = text.clone();
    let copy = move |_| {
        if let Some(window) = web_sys::window() {
            // The promise needs no handling: a refused copy leaves the text on screen to copy by hand.
            let _ = window.navigator().clipboard().write_text(&to_copy);
            copied.set(true);
        }
    };
    view! {
        <code id=id>{text}</code>
        <button type="button" class="secondary needs-js" on:click=copy>
            {move || if copied.get() { "Copied" } else { "Copy" }}
        </button>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_page_address_travels_whole_as_a_query_value() {
        assert_eq!(super::query_value("/meetings/new?x=1&y=a b"), "%2Fmeetings%2Fnew%3Fx%3D1%26y%3Da%20b");
        assert_eq!(super::query_value("/team"), "%2Fteam");
    }
}
