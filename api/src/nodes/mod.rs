//! Many media nodes behind one control plane.
//!
//! A `convene media` node runs rooms and nothing else: no database. It heartbeats its load to the control
//! plane and delivers its room events there from its durable outbox (`client`). The control plane keeps
//! the nodes and places each room on one of them (`registry`); a joiner's signalling socket reaches the meet
//! host, which admits them against the records as in one process and then passes the socket on to the
//! room's node (`proxy`), so every participant of a meeting is on the same node and a client that loses its
//! node lands on another by simply connecting again. The API's commands to a running meeting (record,
//! stream, call a phone) go to its node (`commands`); a node records into the recordings' bucket, where the
//! control plane's composer finds the tracks (`recordings`). A phone caller let in at a node whose meeting
//! runs on another is passed there, gateway to gateway, with a ticket (`relay_ticket`). What crosses between
//! them is in `wire`.

pub mod client;
pub mod commands;
pub mod proxy;
pub mod recordings;
pub mod registry;
pub mod relay_ticket;
pub mod wire;
