//! The browser entry point: hydrates the server-rendered pages of one host. It is built twice, once per
//! host (`--features meet` for the meet host), so each bundle holds only its own host's component tree.

use wasm_bindgen::prelude::wasm_bindgen;

/// Called by the loader script that `HydrationScripts` puts in every page.
#[wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    #[cfg(feature = "meet")]
    leptos::mount::hydrate_body(convene_app::meet::MeetApp);
    #[cfg(not(feature = "meet"))]
    leptos::mount::hydrate_body(convene_app::site::SiteApp);
}
