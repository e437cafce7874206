//! sea-orm entities, one module per table, matching `convene-migrations`. Only the repository modules
//! (`tenants`, later `accounts`, `meetings`…) use them; handlers never query tables directly.

pub mod api_key;
pub mod audit_event;
pub mod billing_account;
pub mod billing_invoice;
pub mod dead_letter;
pub mod dial_in_number;
pub mod email_token;
pub mod invitation;
pub mod mail_outbox;
pub mod media_node;
pub mod meeting;
pub mod meeting_invitee;
pub mod membership;
pub mod node_event_cursor;
pub mod rate_limit_window;
pub mod recording;
pub mod room;
pub mod room_closure;
pub mod room_placement;
pub mod room_removal;
pub mod room_session;
pub mod session;
pub mod session_participant;
pub mod signing_key;
pub mod stripe_event;
pub mod tenant;
pub mod usage_period;
pub mod usage_report;
pub mod user;
pub mod webhook_attempt;
pub mod webhook_delivery;
pub mod webhook_endpoint;
pub mod webhook_message;
