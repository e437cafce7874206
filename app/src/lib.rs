//! The Leptos site. Two surfaces share one stylesheet and one wasm bundle:
//!
//! - the **site** on the main host (`CONVENE_PUBLIC_URL`): marketing now, accounts and dashboard later;
//! - the **meet** host (`CONVENE_MEET_URL`), where invitation links `/<room>?jwt=<token>` land.
//!
//! The server picks the surface from the `Host` header and renders it; the document records the surface in
//! `<html data-surface>` so the browser hydrates the same component tree.
//!
//! Components hold no business rules: those live in `convene-api` and reach the site through server functions.

use leptos::prelude::*;

pub mod account;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod billing;
pub mod forms;
pub mod layout;
// The main site's browser bundle leaves the meeting out (the meet host's has it, with `meet`).
#[cfg(any(feature = "meet", not(target_family = "wasm")))]
pub mod meet;
#[cfg(any(feature = "meet", not(target_family = "wasm")))]
pub mod meeting;
pub mod meetings;
pub mod model;
pub mod recordings;
pub mod site;
pub mod webhooks;
pub mod workspace;

/// Where the site's static files are served from (the stylesheet and icon are embedded in the binary).
pub const ASSETS_PATH: &str = "/assets";

/// Which host a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// The main host: landing page, later accounts and dashboard.
    Site,
    /// The meet host: invitation links and the meeting itself.
    Meet,
}

impl Surface {
    /// The value of `<html data-surface>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Site => "site",
            Surface::Meet => "meet",
        }
    }

    /// The browser bundle that hydrates its pages (`pkg/<name>.js`, `pkg/<name>_bg.wasm`, as `cargo xtask`
    /// builds them): one per host, so the meeting page never downloads the site's pages and the site never
    /// the meeting client.
    pub fn bundle(self) -> &'static str {
        match self {
            Surface::Site => "convene",
            Surface::Meet => "convene_meet",
        }
    }
}

/// The HTML document around a surface, rendered on the server only.
#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions, surface: Surface) -> impl IntoView {
    let mut options = options;
    options.output_name = surface.bundle().into();
    view! {
        <!DOCTYPE html>
        <html lang="en" data-surface=surface.as_str()>
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="stylesheet" href=format!("{ASSETS_PATH}/convene.css") />
                <link rel="icon" type="image/svg+xml" href=format!("{ASSETS_PATH}/favicon.svg") />
                <HydrationScripts options />
                <leptos_meta::MetaTags />
            </head>
            <body>{surface_view(surface)}</body>
        </html>
    }
}

/// The component tree of a surface, as the server renders it (each bundle hydrates its own surface's).
#[cfg(feature = "ssr")]
pub fn surface_view(surface: Surface) -> AnyView {
    match surface {
        Surface::Site => view! { <site::SiteApp /> }.into_any(),
        Surface::Meet => view! { <meet::MeetApp /> }.into_any(),
    }
}

/// Marks the document once hydration has run, so styles and tests can tell a live page from a static one.
fn mark_hydrated() {
    Effect::new(|_| {
        if let Some(root) = document().document_element() {
            // Setting an attribute on the root element cannot fail in a live document.
            let _ = root.set_attribute("data-hydrated", "true");
        }
    });
}

/// A message from the server, as a sentence.
fn capitalised(text: &str) -> String {
    let text = text.trim_end();
    let mut chars = text.chars();
    let first: String = chars.next().map(|first| first.to_uppercase().collect()).unwrap_or_default();
    // Messages come from many places, some already ending a sentence: one stop, never two.
    let stop = if text.is_empty() || text.ends_with(['.', '!', '?']) { "" } else { "." };
    format!("{first}{}{stop}", chars.as_str())
}

/// Sets the HTTP status of a server-rendered page (a no-op in the browser).
fn set_status(code: u16) {
    #[cfg(feature = "ssr")]
    if let (Some(response), Ok(status)) =
        (use_context::<leptos_actix::ResponseOptions>(), actix_web::http::StatusCode::from_u16(code))
    {
        response.set_status(status);
    }
    #[cfg(not(feature = "ssr"))]
    let _ = code;
}

/// The page for a path no route knows.
#[component]
fn NotFound() -> impl IntoView {
    set_status(404);
    view! {
        <leptos_meta::Title text="Page not found · Convene" />
        <section class="notice">
            <h1>"Page not found"</h1>
            <p>"There is nothing at this address. Check the link, or start again from the "<a href="/">"home page"</a>"."</p>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::capitalised;

    #[test]
    fn messages_become_one_sentence_with_one_stop() {
        assert_eq!(capitalised("this link has none in it"), "This link has none in it.");
        assert_eq!(capitalised("the meeting is over."), "The meeting is over.");
        assert_eq!(capitalised("try again? "), "Try again?");
        assert_eq!(capitalised(""), "");
    }
}
