//! Scheduled meetings: the list (upcoming and past), the scheduling form, a meeting's page (link, invitees,
//! start, edit, cancel) and the participant link's page. Forms post to `convene-api`.

use convene_domain::MaxResolution;
use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::{
    forms::FormState,
    forms::take_flash,
    layout::{CopyText, SignInFirst, ViewerResource, WorkspaceNav, page_or_problem},
    model::{
        HeldMeeting, JoinDetails, JoinState, MeetingDetails, MeetingDraft, MeetingListing, MeetingSummary, PageError,
        PhoneJoin,
    },
    set_status,
};

/// The meetings of the viewer's active tenant.
#[server]
pub async fn get_meetings() -> Result<Result<MeetingListing, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.meetings(session).await)
}

/// One meeting of the viewer's active tenant.
#[server]
pub async fn get_meeting(id: String) -> Result<Result<MeetingDetails, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.meeting(session, id).await)
}

/// What a participant link shows.
#[server]
pub async fn get_join_details(
    code: String,
    invite: Option<String>,
) -> Result<Result<JoinDetails, PageError>, ServerFnError> {
    let (backend, session) = crate::backend::backend_and_session().await?;
    Ok(backend.join_details(session, code, invite).await)
}

/// The time zones a meeting may be scheduled in.
#[server]
pub async fn get_time_zones() -> Result<Vec<String>, ServerFnError> {
    let (backend, _) = crate::backend::backend_and_session().await?;
    Ok(backend.time_zones())
}

/// `/meetings`.
#[component]
pub fn MeetingsPage() -> impl IntoView {
    let meetings = Resource::new(|| (), |()| get_meetings());
    let form = FormState::for_form(take_flash(), "meeting");
    view! {
        <Title text="Meetings · Convene" />
        <WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    page_or_problem(meetings.await, |listing: MeetingListing| view! {
                        <section class="panel">
                            {form.banner()}
                            <div class="heading-row">
                                <h1>"Meetings"</h1>
                                <a class="button" href="/meetings/new">"Schedule a meeting"</a>
                            </div>
                            <h2>"Upcoming"</h2>
                            <MeetingList meetings=listing.upcoming empty="Nothing scheduled." />
                            <h2>"Past and cancelled"</h2>
                            <MeetingList meetings=listing.past empty="None yet." />
                            <h2>"Held"</h2>
                            <HeldList meetings=listing.held />
                        </section>
                    })
                }
            })}
        </Suspense>
    }
}

/// The dashboard's next meetings, for those who schedule them (nothing for other roles).
#[component]
pub fn UpcomingMeetings() -> impl IntoView {
    const SHOWN: usize = 5;
    let meetings = Resource::new(|| (), |()| get_meetings());
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                let Ok(Ok(listing)) = meetings.await else { return None };
                let upcoming = listing.upcoming.into_iter().take(SHOWN).collect::<Vec<_>>();
                Some(view! {
                    <section class="panel">
                        <div class="heading-row">
                            <h2>"Upcoming meetings"</h2>
                            <a class="button" href="/meetings/new">"Schedule a meeting"</a>
                        </div>
                        <MeetingList meetings=upcoming empty="Nothing scheduled." />
                        <p><a href="/meetings">"All meetings"</a></p>
                    </section>
                })
            })}
        </Suspense>
    }
}

/// What took place: when, how long, and who was there.
#[component]
fn HeldList(meetings: Vec<HeldMeeting>) -> impl IntoView {
    if meetings.is_empty() {
        return view! { <p class="muted">"No meeting has taken place yet."</p> }.into_any();
    }
    view! {
        <ul class="meetings held">
            {meetings.into_iter().map(|meeting| view! {
                <li>
                    <strong>{meeting.name}</strong>
                    {meeting.ongoing.then(|| view! { <span class="tag">"Going on now"</span> })}
                    <span class="muted">{format!("{} · {}", meeting.started, meeting.length)}</span>
                    <span class="people-line">{meeting.people.join(", ")}</span>
                </li>
            }).collect_view()}
        </ul>
    }
    .into_any()
}

/// Meetings as a list of links to their pages.
#[component]
pub fn MeetingList(meetings: Vec<MeetingSummary>, empty: &'static str) -> impl IntoView {
    if meetings.is_empty() {
        return view! { <p class="muted">{empty}</p> }.into_any();
    }
    view! {
        <ul class="meetings">
            {meetings
                .into_iter()
                .map(|meeting| {
                    let invited = match meeting.invitees {
                        0 => "no one invited".to_owned(),
                        1 => "1 invited".to_owned(),
                        count => format!("{count} invited"),
                    };
                    view! {
                        <li>
                            <a href=format!("/meetings/{}", meeting.id)>{meeting.title}</a>
                            {meeting.cancelled.then(|| view! { <span class="tag">"Cancelled"</span> })}
                            <span class="muted">
                                {meeting.when} {meeting.recurrence.map(|text| format!(" · {text}"))} " · " {invited}
                            </span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
    .into_any()
}

/// `/meetings/new`.
#[component]
pub fn NewMeetingPage() -> impl IntoView {
    let form = FormState::for_form(take_flash(), "meeting");
    let viewer = expect_context::<ViewerResource>();
    view! {
        <Title text="Schedule a meeting · Convene" />
        <WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    let draft =
                        MeetingDraft { time_zone: "UTC".to_owned(), weekly_occurrences: 1, ..MeetingDraft::default() };
                    match viewer.await {
                        Ok(Some(_)) => view! {
                            <section class="panel">
                                <h1>"Schedule a meeting"</h1>
                                {form.banner()}
                                <MeetingForm action="/meetings".to_owned() draft form=form.clone() new=true />
                            </section>
                        }.into_any(),
                        Ok(None) => view! { <SignInFirst /> }.into_any(),
                        Err(error) => view! { <p class="banner error">{error.to_string()}</p> }.into_any(),
                    }
                }
            })}
        </Suspense>
    }
}

/// The scheduling form, filled from `draft` (or from what was typed before a refusal).
#[component]
fn MeetingForm(action: String, draft: MeetingDraft, form: FormState, new: bool) -> impl IntoView {
    let text = |name: &'static str, draft_value: String| form.kept(name).unwrap_or(draft_value);
    let ticked = |name: &'static str, draft_value: bool| form.kept(name).map_or(draft_value, |value| value == "on");
    let error = |name: &'static str| {
        form.error(name).map(|error| view! { <span class="field-error" id=format!("{name}-error")>{error}</span> })
    };
    let invalid = |name: &'static str| form.error(name).map(|_| "true");
    let ends = NodeRef::<leptos::html::Input>::new();
    let zone = NodeRef::<leptos::html::Input>::new();
    // A new meeting is in the browser's own zone rather than UTC, once the page is live: unless the form
    // came back with what was typed, or the visitor changed the zone before then.
    if new && form.kept("time_zone").is_none() {
        let default_zone = draft.time_zone.clone();
        Effect::new(move |_| {
            if let Some(input) = zone.get()
                && input.value() == default_zone
                && let Some(name) = browser_time_zone()
            {
                input.set_value(&name);
            }
        });
    }
    // An end left empty, or before the start, follows the start by an hour.
    let follow_start = move |event: leptos::ev::Event| {
        let start = event_target_value(&event);
        if let Some(input) = ends.get_untracked()
            && (input.value().is_empty() || input.value() <= start)
            && let Some(end) = an_hour_after(&start)
        {
            input.set_value(&end);
        }
    };
    let room = &draft.settings;
    let resolution = text("max_resolution", room.max_resolution.to_string());
    let checkbox = move |name: &'static str, label: &'static str, on: bool| {
        view! {
            <label class="check">
                <input type="checkbox" name=name checked=on />
                <span>{label}</span>
            </label>
        }
    };
    let settings = view! {
            <fieldset>
                <legend>"Settings"</legend>
                {checkbox("lobby", "Lobby: people wait until a moderator admits them", ticked("lobby", room.lobby))}
                {checkbox("guests_allowed", "Guests may join with just a name", ticked("guests_allowed", room.guests_allowed))}
                {checkbox("recording_allowed", "Moderators may record and stream live", ticked("recording_allowed", room.recording_allowed))}
                {checkbox("auto_record", "Record automatically when the meeting starts", ticked("auto_record", room.auto_record))}
                {checkbox("end_to_end_encryption", "End-to-end encryption", ticked("end_to_end_encryption", room.end_to_end_encryption))}
                {checkbox("high_fidelity_audio", "High-fidelity audio (music, stereo)", ticked("high_fidelity_audio", room.high_fidelity_audio))}
                {checkbox("fixed_display_names", "Participants keep the names on their invitations", ticked("fixed_display_names", room.fixed_display_names))}
                <div class="row">
                    <label class="field">
                        <span>"Room password" <small class="muted">" (optional)"</small></span>
                        <input type="password" name="password" value=room.password.clone().unwrap_or_default() autocomplete="new-password"
                            aria-invalid=invalid("password") />
                        {error("password")}
                    </label>
                    <label class="field">
                        <span>"Most participants" <small class="muted">" (optional, 2–100)"</small></span>
                        <input type="number" min="2" max="100" name="max_participants"
                            value=text("max_participants", room.max_participants.map(|max| max.to_string()).unwrap_or_default())
                            aria-invalid=invalid("max_participants") />
                        {error("max_participants")}
                    </label>
                    <label class="field">
                        <span>"Video up to"</span>
                        <select name="max_resolution">
                            {MaxResolution::ALL
                                .into_iter()
                                .map(|value| {
                                    let selected = resolution == value.as_str();
                                    view! { <option value=value.as_str() selected=selected>{value.as_str()}</option> }
                                })
                                .collect::<Vec<_>>()}
                        </select>
                        {error("max_resolution")}
                    </label>
                </div>
            </fieldset>
    }
    .into_any();
    view! {
        <form method="post" action=action class="meeting-form" novalidate>
            <label class="field">
                <span>"Title"</span>
                <input name="title" value=text("title", draft.title.clone()) required=true aria-invalid=invalid("title") />
                {error("title")}
            </label>
            <label class="field">
                <span>"Room name" <small class="muted">" (letters, digits and dashes; leave empty for a generated one)"</small></span>
                <input name="room" value=text("room", draft.room.clone()) readonly=!new aria-invalid=invalid("room") />
                {error("room")}
            </label>
            {view! {
            <div class="row">
                <label class="field">
                    <span>"Starts"</span>
                    <input type="datetime-local" name="starts_at" value=text("starts_at", draft.starts_at.clone())
                        required=true aria-invalid=invalid("starts_at") on:change=follow_start />
                    {error("starts_at")}
                </label>
                <label class="field">
                    <span>"Ends"</span>
                    <input type="datetime-local" name="ends_at" value=text("ends_at", draft.ends_at.clone())
                        required=true aria-invalid=invalid("ends_at") node_ref=ends />
                    {error("ends_at")}
                </label>
                <label class="field">
                    <span>"Time zone"</span>
                    <input name="time_zone" value=text("time_zone", draft.time_zone.clone()) list="time-zones"
                        required=true aria-invalid=invalid("time_zone") node_ref=zone />
                    {error("time_zone")}
                </label>
                <label class="field">
                    <span>"Weekly, times"</span>
                    <input type="number" min="1" max="52" name="weekly_occurrences"
                        value=text("weekly_occurrences", draft.weekly_occurrences.to_string())
                        aria-invalid=invalid("weekly_occurrences") />
                    {error("weekly_occurrences")}
                </label>
            </div>
            }.into_any()}
            <label class="field">
                <span>"Invite" <small class="muted">" (email addresses, one per line)"</small></span>
                <textarea name="invitees" rows="4" aria-invalid=invalid("invitees")>{text("invitees", draft.invitees)}</textarea>
                <small class="muted">
                    "Each address gets its own link by mail, which lets that person in under their name, "
                    "with or without an account. Anyone else with the participant link signs in as a member, "
                    "or joins by name if guests are allowed."
                </small>
                {error("invitees")}
            </label>
            {settings}
            <button type="submit">{if new { "Schedule and invite" } else { "Save and tell everyone" }}</button>
        </form>
        <TimeZones />
    }
}

/// The names the time zone field suggests.
#[component]
fn TimeZones() -> impl IntoView {
    let zones = Resource::new(|| (), |()| get_time_zones());
    view! {
        <Suspense>
            {move || Suspend::new(async move {
                let zones = zones.await.unwrap_or_default();
                view! {
                    <datalist id="time-zones">
                        {zones.into_iter().map(|zone| view! { <option value=zone /> }).collect_view()}
                    </datalist>
                }
            })}
        </Suspense>
    }
}

/// `/meetings/:id`.
#[component]
pub fn MeetingPage() -> impl IntoView {
    let params = use_params_map();
    let meeting = Resource::new(move || params.read().get("id").unwrap_or_default(), get_meeting);
    let form = FormState::for_form(take_flash(), "meeting");
    view! {
        <WorkspaceNav />
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move { page_or_problem(meeting.await, |details| view! { <Meeting details form /> }) }
            })}
        </Suspense>
    }
}

#[component]
fn Meeting(details: MeetingDetails, form: FormState) -> impl IntoView {
    let id = details.summary.id.clone();
    let open = !details.summary.cancelled && !details.ended;
    let status = if details.summary.cancelled {
        Some("This meeting was cancelled.")
    } else if details.ended {
        Some("This meeting is over.")
    } else {
        None
    };
    let invitees = if details.invitees.is_empty() {
        view! { <p class="muted">"No one is invited by mail; share the link."</p> }.into_any()
    } else {
        view! { <ul>{details.invitees.into_iter().map(|email| view! { <li>{email}</li> }).collect_view()}</ul> }
            .into_any()
    };
    view! {
        <Title text=format!("{} · Convene", details.summary.title) />
        <section class="panel">
            {form.banner()}
            <h1>{details.summary.title.clone()}</h1>
            {status.map(|status| view! { <p class="banner warn">{status}</p> })}
            <p>
                <strong>{details.summary.when.clone()}</strong>
                {details.summary.recurrence.clone().map(|text| format!(" · {text}"))}
            </p>
            <p class="muted">
                "Room " <code>{details.summary.room.clone()}</code> " · scheduled by " {details.organizer.clone()}
            </p>
            {open.then(|| view! {
                <form method="post" action=format!("/meetings/{id}/start")>
                    <button type="submit">"Start the meeting"</button>
                </form>
                <h2>"Participant link"</h2>
                <p class="copy-row"><CopyText id="join-link" text=details.join_link.clone() /></p>
            })}
            {details.phone.clone().filter(|_| open).map(|phone| view! { <PhoneJoinDetails phone /> })}
            {(details.occurrences.len() > 1).then(|| view! {
                <h2>"Occurrences"</h2>
                <ul>{details.occurrences.iter().map(|when| view! { <li>{when.clone()}</li> }).collect_view()}</ul>
            })}
            <h2>"Invited"</h2>
            {invitees}
            <h2>"Settings"</h2>
            <ul class="settings">{details.settings.into_iter().map(|setting| view! { <li>{setting}</li> }).collect_view()}</ul>
        </section>
        {open.then(|| view! {
            <section class="panel">
                <h2>"Change the meeting"</h2>
                <MeetingForm action=format!("/meetings/{id}") draft=details.draft.clone() form=form.clone() new=false />
            </section>
            <section class="panel">
                <h2>"Cancel the meeting"</h2>
                <p class="muted">"Everyone invited gets a cancellation; the link stops working."</p>
                <form method="post" action=format!("/meetings/{id}/cancel")>
                    <button type="submit" class="danger">"Cancel the meeting"</button>
                </form>
            </section>
        })}
    }
}

/// How to join by phone: each number as a one-tap link that dials the PIN too, and the PIN to type.
#[component]
fn PhoneJoinDetails(phone: PhoneJoin) -> impl IntoView {
    view! {
        <h2>"Join by phone"</h2>
        <ul class="dial-in">
            {phone.numbers.into_iter().map(|line| view! {
                <li><a href=line.tel_url>{line.number}</a> " " <span class="muted">{line.place}</span></li>
            }).collect_view()}
        </ul>
        <p>"Then enter the PIN " <strong class="pin">{phone.pin}</strong> " followed by #."</p>
    }
}

/// `/join/:code`: a participant link.
#[component]
pub fn JoinPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let code = move || params.read().get("code").unwrap_or_default();
    let invite = move || query.read().get("invite").filter(|invite| !invite.is_empty());
    let details = Resource::new(move || (code(), invite()), |(code, invite)| get_join_details(code, invite));
    let form = FormState::for_form(take_flash(), "join");
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading…"</p> }>
            {move || Suspend::new({
                let form = form.clone();
                async move {
                    match details.await {
                        Ok(Ok(details)) => view! { <Join details form code=code() invite=invite() /> }.into_any(),
                        Ok(Err(PageError::NotFound)) => {
                            set_status(404);
                            view! {
                                <Title text="Link not found · Convene" />
                                <section class="panel narrow">
                                    <h1>"This link does not lead to a meeting"</h1>
                                    <p>"Check that you copied the whole link, or ask the organiser for a new one."</p>
                                </section>
                            }.into_any()
                        }
                        _ => {
                            set_status(503);
                            view! { <p class="banner error">"This page cannot be shown right now. Please try again."</p> }.into_any()
                        }
                    }
                }
            })}
        </Suspense>
    }
}

#[component]
fn Join(details: JoinDetails, form: FormState, code: String, invite: Option<String>) -> impl IntoView {
    let closed = match details.state {
        JoinState::Open => None,
        JoinState::Ended => Some("This meeting is over; the link no longer opens it."),
        JoinState::Cancelled => Some("This meeting was cancelled."),
    };
    // Codes of existing meetings are URL-safe, so the path needs no escaping as a query value.
    let next = format!("/login?next=/join/{code}");
    let ways = closed.is_none().then(|| {
        // A personal link lets its invitee straight in; signed in, the account's own way comes first.
        let personal = match (&details.invited_as, invite) {
            (Some(name), Some(invite)) if details.signed_in_as.is_none() => Some(view! {
                <form method="post" action=format!("/join/{code}/invitee")>
                    <input type="hidden" name="invite" value=invite />
                    <button type="submit">{format!("Join as {name}")}</button>
                </form>
                <p class="muted">"This link is yours from the invitation mail: no account needed."</p>
            }),
            _ => None,
        };
        let stale = details.stale_link.then(|| {
            view! {
                <p class="banner warn">
                    "This personal link no longer opens the meeting: the invitation was withdrawn, or a newer mail "
                    "replaced it. Use the link in the latest mail, or sign in."
                </p>
            }
        });
        let sign_in_class = if personal.is_some() { "button secondary" } else { "button" };
        let signed_in = match details.signed_in_as.clone() {
            Some(name) => view! {
                <form method="post" action=format!("/join/{code}")>
                    <button type="submit">{format!("Join as {name}")}</button>
                </form>
            }
            .into_any(),
            None => {
                view! { {stale} {personal} <p><a class=sign_in_class href=next>"Sign in to join"</a></p> }.into_any()
            }
        };
        let guest =
            (details.guests_allowed && details.signed_in_as.is_none() && details.invited_as.is_none()).then(|| {
                view! {
                    <form method="post" action=format!("/join/{code}/guest") class="guest">
                        <label class="field">
                            <span>"Or join as a guest with your name"</span>
                            <input name="name" autocomplete="name" required=true maxlength="80" />
                        </label>
                        <button type="submit" class="secondary">"Join as a guest"</button>
                    </form>
                }
            });
        view! { {signed_in} {guest} }
    });
    view! {
        <Title text=format!("{} · Convene", details.title) />
        <section class="panel narrow">
            {form.banner()}
            <p class="muted">{details.organisation}" invites you to"</p>
            <h1>{details.title}</h1>
            <p><strong>{details.when}</strong></p>
            {closed.map(|closed| view! { <p class="banner warn">{closed}</p> })}
            {ways}
        </section>
    }
}

/// The browser's IANA time zone, as `Intl` reports it.
fn browser_time_zone() -> Option<String> {
    let format = js_sys::Intl::DateTimeFormat::new(&js_sys::Array::new(), &js_sys::Object::new());
    js_sys::Reflect::get(&format.resolved_options(), &"timeZone".into()).ok()?.as_string()
}

/// A `datetime-local` value one hour after `start` (wall-clock arithmetic: the zone is the form's own).
fn an_hour_after(start: &str) -> Option<String> {
    let millis = js_sys::Date::parse(&format!("{start}:00Z"));
    if millis.is_nan() {
        return None;
    }
    let end: String = js_sys::Date::new(&(millis + 3_600_000.0).into()).to_iso_string().into();
    end.get(..16).map(str::to_owned)
}
