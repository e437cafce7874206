//! What the control plane's handlers share, in one place (crates.io's `AppState`): the database and every
//! context's service, built once by `roles` and handed to each handler as `web::Data<AppState>`.

use convene_media::rooms::Rooms;
use sea_orm::DatabaseConnection;

use crate::{
    billing::Billing,
    http::{
        csrf::OwnOrigins,
        routes::{auth::CookiePolicy, signal::PasswordGuesses, v1::MeetUrl},
    },
    meetings::{admission::Admission, dial_in::DialInService, recordings::RecordingService, scheduled::MeetingService},
    nodes::proxy::MediaNodes,
    people::{accounts::Accounts, team::TeamService},
    platform::envelope::Envelope,
    webhooks::endpoints::WebhookService,
};

/// The control plane's state. Cheap to clone: every part is a handle.
#[derive(Debug, Clone)]
pub struct AppState {
    /// For the contexts whose rules are free functions over a connection (rooms, tokens, keys, sessions).
    pub db: DatabaseConnection,
    /// Accounts and sign-in sessions.
    pub accounts: Accounts,
    /// Members and invitations.
    pub team: TeamService,
    /// Scheduled meetings and participant links.
    pub meetings: MeetingService,
    /// Plans, usage, limits and Stripe.
    pub billing: Billing,
    /// Lets people into rooms.
    pub admission: Admission,
    /// Starts, stops and deletes recordings.
    pub recordings: RecordingService,
    /// Phone dial-in: numbers and PINs.
    pub dial_in: DialInService,
    /// Opens the sealed private signing keys.
    pub envelope: Envelope,
    /// The meet host's URL, for join links.
    pub meet_url: MeetUrl,
    /// Cookie flags.
    pub cookies: CookiePolicy,
    /// Origins allowed to post with cookies.
    pub origins: OwnOrigins,
    /// Wrong room passwords, counted across the signalling connections.
    pub password_guesses: PasswordGuesses,
    /// The rooms this process hosts behind the signalling WebSocket (in `up`, which runs the media node).
    pub rooms: Option<Rooms>,
    /// The media nodes that host the rooms, for a control plane without rooms of its own (`api`).
    pub nodes: Option<MediaNodes>,
    /// Webhook endpoints and their deliveries.
    pub webhooks: WebhookService,
}
