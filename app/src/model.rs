//! What pages show, as plain serialisable data: built by `convene-api` on the server, read by components on
//! both sides of hydration.

use convene_domain::{Role, RoomSettings};
use serde::{Deserialize, Serialize};

/// The person signed in on this request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Viewer {
    /// Their display name.
    pub name: String,
    /// Their login address.
    pub email: String,
    /// Whether they confirmed it; unverified accounts cannot schedule meetings.
    pub email_verified: bool,
    /// The tenant they are working in, if they belong to any.
    pub tenant: Option<Membership>,
    /// Every tenant they belong to, for the switcher.
    pub memberships: Vec<Membership>,
}

/// A person's place in one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The tenant's id.
    pub tenant_id: String,
    /// The tenant's name.
    pub tenant_name: String,
    /// Their role there.
    pub role: Role,
}

/// A member as the team page lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Their user id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Email.
    pub email: String,
    /// Role in this tenant.
    pub role: Role,
    /// Whether this is the person viewing the page.
    pub is_viewer: bool,
    /// Whether an owner disabled them.
    pub disabled: bool,
}

/// An invitation not yet accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInvitation {
    /// Its id.
    pub id: String,
    /// Who was invited.
    pub email: String,
    /// With which role.
    pub role: Role,
    /// When it stops working (RFC 3339).
    pub expires_at: String,
}

/// The team page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    /// The viewer's role, which decides what they may change.
    pub viewer_role: Role,
    /// Everyone in the tenant.
    pub members: Vec<Member>,
    /// Invitations waiting for an answer.
    pub invitations: Vec<PendingInvitation>,
}

/// An API key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyListing {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// When it was last used, if ever.
    pub last_used_at: Option<String>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (RFC 3339).
    pub at: String,
    /// Who, if known.
    pub actor: Option<String>,
    /// What happened (stable name).
    pub event: String,
    /// Details.
    pub detail: String,
    /// From which address.
    pub ip: Option<String>,
}

/// What the invitation page shows about a link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationDetails {
    /// The inviting organisation.
    pub tenant_name: String,
    /// The invited address.
    pub email: String,
    /// The role offered.
    pub role: Role,
    /// Whether an account with this address exists (then the person signs in instead of choosing a password).
    pub has_account: bool,
}

/// Why a page could not be shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PageError {
    /// Not signed in.
    SignedOut,
    /// Signed in, but the role does not allow this page.
    Forbidden,
    /// Nothing of that id in the viewer's organisation.
    NotFound,
    /// A server-side failure, already logged.
    Unavailable,
}

/// The holder of a verified invitation link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitee {
    /// Their name in the token.
    pub name: String,
    /// Whether the token makes them a moderator.
    pub moderator: bool,
    /// The room keeps the token's name (no name field before joining).
    pub fixed_name: bool,
    /// What the meeting is called: its scheduled title, or the room's name.
    pub title: String,
    /// The scheduled meeting's participant link, to share from inside the meeting.
    pub invite_link: Option<String>,
    /// Where "back" leads after the meeting: the dashboard, for members of the organisation.
    pub home: Option<String>,
    /// The meeting is being recorded now (said before joining, so nobody walks into a recording unaware).
    pub recording: bool,
    /// The meeting is streamed live now (said before joining, likewise).
    pub live_streaming: bool,
    /// How to join by phone, shared with the link from inside the meeting.
    pub phone: Option<PhoneJoin>,
}

/// Why an invitation link was refused: a stable code (the page's `data-problem`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRefusal {
    /// `unreadable_token`, `expired`, `not_yet_valid`, `other_room`, `unknown_issuer` or `invalid_token`.
    pub code: String,
    /// What is wrong, for the invitee.
    pub message: String,
}

/// A meeting in a list: what it is and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingSummary {
    /// Its id (for its page).
    pub id: String,
    /// Its title.
    pub title: String,
    /// The room it takes place in.
    pub room: String,
    /// The (next) occurrence in the meeting's time zone, for people.
    pub when: String,
    /// "Weekly, 4 times", when it repeats.
    pub recurrence: Option<String>,
    /// How many addresses are invited.
    pub invitees: usize,
    /// Called off.
    pub cancelled: bool,
}

/// The meetings page: what is coming and what is over (or cancelled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingListing {
    /// Not yet over, soonest first.
    pub upcoming: Vec<MeetingSummary>,
    /// Over or cancelled, latest first.
    pub past: Vec<MeetingSummary>,
    /// What took place in the organisation's rooms, latest first.
    pub held: Vec<HeldMeeting>,
}

/// A meeting that took place (a room's session): when, how long, who was there and for how long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldMeeting {
    /// The scheduled meeting's title, or the room's name.
    pub name: String,
    /// When it started, for people (UTC).
    pub started: String,
    /// How long it lasted (so far, while it goes on).
    pub length: String,
    /// It is going on now.
    pub ongoing: bool,
    /// Each person once, in the order they came, with how long they stayed.
    pub people: Vec<String>,
}

/// The recordings page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingListing {
    /// Newest first.
    pub recordings: Vec<RecordingItem>,
    /// The viewer may delete them (owners and admins).
    pub can_delete: bool,
    /// Days the plan keeps a finished recording before deleting it (`None`: until someone deletes it).
    pub retention_days: Option<u32>,
}

/// A recording as the page lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingItem {
    /// Its id.
    pub id: String,
    /// The room recorded.
    pub room: String,
    /// When recording started, for people (UTC).
    pub started: String,
    /// How long, once composed.
    pub length: Option<String>,
    /// Who was recorded, once composed.
    pub people: Vec<String>,
    /// The file's size, once composed.
    pub size: Option<String>,
    /// `recording`, `processing`, `ready` or `failed`.
    pub state: String,
    /// The state in words.
    pub state_label: String,
    /// Why it failed, or that it was cut short.
    pub note: Option<String>,
    /// The video to play and download (signed, expiring), once ready.
    pub video_url: Option<String>,
    /// The sound alone, once ready.
    pub audio_url: Option<String>,
}

/// A meeting's editable values, as the form shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingDraft {
    /// Title.
    pub title: String,
    /// Room name (empty: generated).
    pub room: String,
    /// Local start, `YYYY-MM-DDTHH:MM`.
    pub starts_at: String,
    /// Local end, `YYYY-MM-DDTHH:MM`.
    pub ends_at: String,
    /// IANA time zone.
    pub time_zone: String,
    /// 1 for a single meeting.
    pub weekly_occurrences: u32,
    /// One address per line.
    pub invitees: String,
    /// The room's settings.
    pub settings: RoomSettings,
}

/// A meeting's page for its moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeetingDetails {
    /// The summary.
    pub summary: MeetingSummary,
    /// Every occurrence still to come (or all of them, once over), for people.
    pub occurrences: Vec<String>,
    /// Who scheduled it.
    pub organizer: String,
    /// The participant link to share.
    pub join_link: String,
    /// Invited addresses.
    pub invitees: Vec<String>,
    /// The settings that are on, for people ("Lobby", "End-to-end encryption", …).
    pub settings: Vec<String>,
    /// The last occurrence is over.
    pub ended: bool,
    /// The values for the edit form.
    pub draft: MeetingDraft,
    /// How to join by phone, when the plan has dial-in and the organisation has numbers.
    pub phone: Option<PhoneJoin>,
}

/// How to join a room by phone, for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneJoin {
    /// The PIN in groups of three (`123 456 789`).
    pub pin: String,
    /// The numbers, toll-free first.
    pub numbers: Vec<PhoneLine>,
}

/// One number to dial.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneLine {
    /// The number, like `+18005550199`.
    pub number: String,
    /// Where it is local, like `US, toll-free`.
    pub place: String,
    /// A `tel:` link that dials the number and the PIN in one tap.
    pub tel_url: String,
}

impl PhoneJoin {
    /// The lines an invitation copied from the call carries.
    pub fn as_text(&self) -> String {
        let numbers: Vec<String> =
            self.numbers.iter().map(|line| format!("{} ({})", line.number, line.place)).collect();
        format!("Join by phone: {}, PIN {} followed by #", numbers.join(" or "), self.pin)
    }
}

/// Whether a participant link still opens its meeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JoinState {
    /// It does.
    Open,
    /// The last occurrence is over.
    Ended,
    /// The meeting was called off.
    Cancelled,
}

/// What a participant link shows before joining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinDetails {
    /// Meeting title.
    pub title: String,
    /// The organisation holding it.
    pub organisation: String,
    /// The (next) occurrence, for people.
    pub when: String,
    /// People without an account may join with a name.
    pub guests_allowed: bool,
    /// Open, over or cancelled.
    pub state: JoinState,
    /// The signed-in person's name, if any.
    pub signed_in_as: Option<String>,
    /// The page came from an invitee's personal link: the name it joins under.
    pub invited_as: Option<String>,
    /// The page came from a personal link that no longer works (withdrawn, or replaced by a newer mail).
    pub stale_link: bool,
}

/// A plan as the billing page shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Its id (what the upgrade form posts).
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its price, as configured for display (`$15 a month`); none for free plans.
    pub price_label: Option<String>,
    /// Its price per participant-minute beyond the included ones, if it has one.
    pub overage_label: Option<String>,
    /// Whether Checkout sells it (billing on and a Stripe price).
    pub purchasable: bool,
    /// People in one meeting.
    pub participants_per_meeting: u32,
    /// Meetings at once.
    pub concurrent_meetings: u32,
    /// Participant-minutes included each period.
    pub included_minutes: u64,
    /// Whether minutes beyond the included ones are billed (else they are a cap).
    pub overage_billed: bool,
    /// Meetings may be recorded.
    pub recording: bool,
    /// Meetings take phone callers.
    pub dial_in: bool,
}

/// An invoice as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceListing {
    /// Stripe's invoice number, once finalised.
    pub number: Option<String>,
    /// When it was made (RFC 3339).
    pub created_at: String,
    /// The amount, formatted with its currency (`USD 15.00`).
    pub amount: String,
    /// `paid`, `open`, …
    pub status: String,
    /// Stripe's page for it (to pay or download).
    pub url: Option<String>,
}

/// A payment that is failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overdue {
    /// Since when (RFC 3339).
    pub since: String,
    /// When new meetings stop starting (RFC 3339).
    pub grace_ends: String,
    /// Whether that time has come.
    pub refusing: bool,
}

/// The billing page of the viewer's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingPage {
    /// Whether this server takes payments (Stripe configured).
    pub billing_enabled: bool,
    /// The plan the tenant is on.
    pub plan: PlanSummary,
    /// Stripe's word for the subscription (`active`, `past_due`, …), if the tenant has one.
    pub status: Option<String>,
    /// The subscription ends with the current period.
    pub cancel_at_period_end: bool,
    /// The current billing period (RFC 3339).
    pub period_start: String,
    /// Its end.
    pub period_end: String,
    /// Participant-minutes of stays that ended in the period.
    pub used_minutes: u64,
    /// Participant-minutes so far of people in meetings now.
    pub in_progress_minutes: u64,
    /// A failing payment, if any.
    pub overdue: Option<Overdue>,
    /// Whether the Customer Portal is open to the tenant (it has a Stripe customer).
    pub can_manage: bool,
    /// Whether the tenant has a live subscription (then plan changes go through the portal).
    pub subscribed: bool,
    /// Every plan, for comparison and upgrades.
    pub plans: Vec<PlanSummary>,
    /// Invoices, newest first.
    pub invoices: Vec<InvoiceListing>,
}

/// A webhook endpoint as the site shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// Words for people.
    pub description: String,
    /// The events it wants, by name.
    pub events: Vec<String>,
    /// Paused.
    pub disabled: bool,
    /// Since when deliveries to it ran out of tries (RFC 3339), until one succeeds again.
    pub failing_since: Option<String>,
}

/// An event an endpoint may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEventKind {
    /// Its name (`meeting.started`).
    pub name: String,
    /// When it is sent, in words.
    pub when: String,
}

/// The webhooks page: the organisation's endpoints and the events they may ask for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookListing {
    /// Oldest first.
    pub endpoints: Vec<WebhookEndpoint>,
    /// Every event an endpoint may ask for.
    pub kinds: Vec<WebhookEventKind>,
    /// How many endpoints an organisation may have.
    pub most: u64,
}

/// One try at delivering an event, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookAttempt {
    /// The delivery (sent again by this id).
    pub delivery_id: String,
    /// The event's `webhook-id`.
    pub message_id: String,
    /// The event's name.
    pub event: String,
    /// When (RFC 3339).
    pub at: String,
    /// The receiver's HTTP status; absent when it could not be reached.
    pub status: Option<i32>,
    /// How long it took, in milliseconds.
    pub latency_ms: i32,
    /// The start of the answer, or why the receiver could not be reached.
    pub response: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
}

/// One endpoint's page: its settings and its latest deliveries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDetails {
    /// The endpoint.
    pub endpoint: WebhookEndpoint,
    /// Every event it may ask for.
    pub kinds: Vec<WebhookEventKind>,
    /// Its latest tries, newest first.
    pub attempts: Vec<WebhookAttempt>,
}
