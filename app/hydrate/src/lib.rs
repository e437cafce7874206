//! The browser entry point. The server renders either surface; this reads which one from `<html
//! data-surface>` and hydrates the same component tree.

use convene_app::{Surface, surface_view};
use leptos::prelude::document;
use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the loader script that `HydrationScripts` puts in every page.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    let surface = document().document_element().and_then(|root| root.get_attribute("data-surface"));
    let surface = Surface::from_attribute(surface.as_deref());
    leptos::mount::hydrate_body(move || surface_view(surface));
}
