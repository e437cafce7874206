//! The HTTP surface: the server every role serves through, the same-origin guard, paging, and the handlers
//! in `routes`, which parse input, call a service and map its result.

pub mod csrf;
pub mod routes;
pub mod server;
mod state;

pub use state::AppState;
