//! The main host: what a visitor sees first.

use leptos::prelude::*;
use leptos_meta::{Meta, Title, provide_meta_context};
use leptos_router::{
    SsrMode,
    components::{Route, Router, Routes},
    path,
};

use crate::{
    NotFound,
    account::{
        AccountMenu, AccountPage, DashboardPage, ForgotPasswordPage, LoginPage, ResetPasswordPage, SignupPage,
        VerifyPage,
    },
    billing::BillingPageView,
    layout::{ViewerResource, get_viewer},
    mark_hydrated,
    meetings::{JoinPage, MeetingPage, MeetingsPage, NewMeetingPage},
    recordings::RecordingsPage,
    webhooks::{WebhookPage, WebhooksPage},
    workspace::{AcceptInvitationPage, AuditPage, KeysPage, TeamPage},
};

/// The main host's component tree.
#[component]
pub fn SiteApp() -> impl IntoView {
    provide_meta_context();
    mark_hydrated();
    let viewer: ViewerResource = Resource::new(|| (), |_| get_viewer());
    provide_context(viewer);
    view! {
        <header class="bar">
            <a class="brand" href="/">
                "Convene"
            </a>
            <AccountMenu />
        </header>
        <Router>
            <main>
                // Pages wait for their data on the server (`Async`), so they arrive whole and work without
                // JavaScript.
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=Landing ssr=SsrMode::Async />
                    <Route path=path!("/signup") view=SignupPage ssr=SsrMode::Async />
                    <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=path!("/verify") view=VerifyPage ssr=SsrMode::Async />
                    <Route path=path!("/dashboard") view=DashboardPage ssr=SsrMode::Async />
                    <Route path=path!("/account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=path!("/forgot-password") view=ForgotPasswordPage ssr=SsrMode::Async />
                    <Route path=path!("/reset-password") view=ResetPasswordPage ssr=SsrMode::Async />
                    <Route path=path!("/meetings") view=MeetingsPage ssr=SsrMode::Async />
                    <Route path=path!("/meetings/new") view=NewMeetingPage ssr=SsrMode::Async />
                    <Route path=path!("/meetings/:id") view=MeetingPage ssr=SsrMode::Async />
                    <Route path=path!("/recordings") view=RecordingsPage ssr=SsrMode::Async />
                    <Route path=path!("/join/:code") view=JoinPage ssr=SsrMode::Async />
                    <Route path=path!("/team") view=TeamPage ssr=SsrMode::Async />
                    <Route path=path!("/keys") view=KeysPage ssr=SsrMode::Async />
                    <Route path=path!("/webhooks") view=WebhooksPage ssr=SsrMode::Async />
                    <Route path=path!("/webhooks/:id") view=WebhookPage ssr=SsrMode::Async />
                    <Route path=path!("/audit") view=AuditPage ssr=SsrMode::Async />
                    <Route path=path!("/billing") view=BillingPageView ssr=SsrMode::Async />
                    <Route path=path!("/invitations/accept") view=AcceptInvitationPage ssr=SsrMode::Async />
                    // Every other path renders the "not found" page with a 404, rather than an empty body.
                    <Route path=path!("/*any") view=NotFound ssr=SsrMode::Async />
                </Routes>
            </main>
        </Router>
        <footer class="foot">"Convene · video meetings you can run yourself"</footer>
    }
}

/// What a feature card says.
struct Feature {
    title: &'static str,
    text: &'static str,
}

const FEATURES: [Feature; 6] = [
    Feature {
        title: "Meet in the browser",
        text: "Invitees click a link and join at 720p or 1080p. No download, no account needed when you allow guests.",
    },
    Feature {
        title: "Built for ten at once",
        text: "Every sender publishes three layers; each viewer gets the speaker in full and everyone else small, \
               sized to their own bandwidth.",
    },
    Feature {
        title: "Moderation that holds",
        text: "Lobby, room password, mute, remove, end for all. Roles come from signed tokens, never from who \
               arrived first.",
    },
    Feature {
        title: "Coming: dial in by phone",
        text: "Not available yet. Callers will dial your number and type the meeting PIN to join.",
    },
    Feature {
        title: "Recording on the media node",
        text: "Moderators record from the meeting (or your app through the API), everyone sees it is on, and \
               one MP4 is ready to play or download shortly after. No browser per recording.",
    },
    Feature {
        title: "An API for developers",
        text: "Create rooms and mint Jitsi-compatible meeting tokens from your own backend, then embed the \
               meeting in your product.",
    },
];

/// The landing page.
#[component]
fn Landing() -> impl IntoView {
    view! {
        <Title text="Convene · video meetings for your company" />
        <Meta
            name="description"
            content="Convene is a multi-tenant video-meeting platform: meetings in the browser, moderation and an API."
        />
        <section class="hero">
            <h1>"Video meetings your company runs, at a fraction of the hardware."</h1>
            <p class="lede">
                "Convene is a meeting platform in one program: the website, the signalling and the media \
                 bridge, with recording built in. A phone gateway is on the way."
            </p>
        </section>
        <section class="features" aria-label="Features">
            {FEATURES
                .iter()
                .map(|feature| {
                    view! {
                        <article class="card">
                            <h2>{feature.title}</h2>
                            <p>{feature.text}</p>
                        </article>
                    }
                })
                .collect_view()}
        </section>
        <section class="run">
            <h2>"Run it yourself"</h2>
            <p>"One machine, nothing else to install. From a checkout of the repository:"</p>
            <pre>
                <code>"cargo xtask up"</code>
            </pre>
            <p>"The site, the API and a media node start together, with their data in " <code>"./data"</code> "."</p>
        </section>
    }
}
