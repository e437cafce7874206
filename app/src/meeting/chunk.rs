//! The call's own chunk of the meet host's bundle. `cargo xtask` splits everything only these functions
//! reach (signalling and the node's messages, the media engine, the keys, the in-call screens) out of the
//! page's module with wasm-split, so the pre-join screen loads without it; the page fetches the chunk while
//! the person gets ready, and a join waits for it if it is not there yet. Natively they are plain calls.
//!
//! wasm-split's generated loader and exports are `unsafe`: this module is the one place the workspace
//! allows it (the tidy test checks), and it writes none by hand.
#![allow(unsafe_code)]

use leptos::{prelude::*, wasm_split::wasm_split};

use super::{
    Client,
    view::{Invitation, MeetingRoom},
};

/// The chunk could not be fetched (offline, or the server was updated since the page loaded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the meeting's code could not be loaded")]
pub struct ChunkUnavailable;

impl From<leptos::wasm_split::SplitLoaderError> for ChunkUnavailable {
    fn from(_: leptos::wasm_split::SplitLoaderError) -> Self {
        Self
    }
}

/// Opens the session (`Client::join` has already set the page to "joining"); `fetch_call` loads the chunk
/// alone.
#[wasm_split(call, fallible, wasm_split_path = leptos::wasm_split, preload(fetch_call))]
pub fn open_session(client: Client) -> Result<(), ChunkUnavailable> {
    client.open_session();
    Ok(())
}

/// The meeting screen.
#[wasm_split(call, fallible, wasm_split_path = leptos::wasm_split)]
pub fn meeting_room(title: String, invitation: Option<Invitation>) -> Result<AnyView, ChunkUnavailable> {
    Ok(view! { <MeetingRoom title invitation /> }.into_any())
}
