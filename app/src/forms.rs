//! Forms that work without JavaScript: they post to the server, which answers with a redirect (Post/
//! Redirect/Get). When input is refused, the redirect carries a short-lived "flash" cookie with the errors
//! and the values typed (never passwords), and the page shows them next to the fields.

use std::collections::BTreeMap;

use data_encoding::BASE64URL_NOPAD;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

/// The flash cookie's name.
pub const FLASH_COOKIE: &str = "convene_flash";
/// Largest flash cookie accepted back; browsers keep 4 KiB per cookie.
const MAX_FLASH_LEN: usize = 3500;

/// The outcome of a form post, carried to the next page view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// Which form it belongs to (a page shows only its own).
    pub form: String,
    /// A message about the whole form (success or failure).
    pub message: Option<String>,
    /// Whether the message reports success.
    pub success: bool,
    /// Messages per field name.
    pub errors: BTreeMap<String, String>,
    /// Values to put back into the fields.
    pub values: BTreeMap<String, String>,
}

impl Flash {
    /// A failure of `form` with a message.
    pub fn failure(form: &str, message: impl Into<String>) -> Self {
        Self { form: form.to_owned(), message: Some(message.into()), ..Self::default() }
    }

    /// A success notice for `form`.
    pub fn success(form: &str, message: impl Into<String>) -> Self {
        Self { form: form.to_owned(), message: Some(message.into()), success: true, ..Self::default() }
    }

    /// Adds a field error.
    pub fn field(mut self, name: &str, error: impl Into<String>) -> Self {
        self.errors.insert(name.to_owned(), error.into());
        self
    }

    /// Keeps a typed value to show again.
    pub fn keep(mut self, name: &str, value: &str) -> Self {
        self.values.insert(name.to_owned(), value.chars().take(300).collect());
        self
    }

    /// The cookie value.
    pub fn encode(&self) -> String {
        BASE64URL_NOPAD.encode(serde_json::to_string(self).unwrap_or_default().as_bytes())
    }

    /// Reads a cookie value; anything malformed or oversized is ignored.
    pub fn decode(value: &str) -> Option<Self> {
        if value.len() > MAX_FLASH_LEN {
            return None;
        }
        let bytes = BASE64URL_NOPAD.decode(value.as_bytes()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A form's state as a page renders it.
#[derive(Debug, Clone, Default)]
pub struct FormState(Option<Flash>);

impl FormState {
    /// The state for `form` from a flash, if the flash is for it.
    pub fn for_form(flash: Option<Flash>, form: &str) -> Self {
        Self(flash.filter(|flash| flash.form == form))
    }

    fn value(&self, name: &str) -> String {
        self.kept(name).unwrap_or_default()
    }

    /// Whether the form was just submitted successfully.
    pub fn succeeded(&self) -> bool {
        self.0.as_ref().is_some_and(|flash| flash.success)
    }

    /// The value typed into `name` before a refusal, if the form was refused.
    pub fn kept(&self, name: &str) -> Option<String> {
        self.0.as_ref().and_then(|flash| flash.values.get(name).cloned())
    }

    /// The refusal of field `name`, if any.
    pub fn error(&self, name: &str) -> Option<String> {
        self.0.as_ref().and_then(|flash| flash.errors.get(name).cloned())
    }

    /// The banner above the form, if any.
    pub fn banner(&self) -> impl IntoView + use<> {
        self.0.as_ref().and_then(|flash| flash.message.clone().map(|message| (message, flash.success))).map(
            |(message, success)| {
                let class = if success { "banner ok" } else { "banner error" };
                view! {
                    <p class=class role="alert">
                        {message}
                    </p>
                }
            },
        )
    }

    /// A labelled input with its error, linked for screen readers.
    pub fn field(
        &self,
        name: &'static str,
        label: &'static str,
        kind: &'static str,
        autocomplete: &'static str,
    ) -> impl IntoView + use<> {
        let error = self.error(name);
        let error_id = format!("{name}-error");
        let described = error.as_ref().map(|_| error_id.clone());
        let value = if kind == "password" { String::new() } else { self.value(name) };
        view! {
            <label class="field">
                <span>{label}</span>
                <input
                    name=name
                    type=kind
                    value=value
                    autocomplete=autocomplete
                    required=true
                    aria-invalid=error.as_ref().map(|_| "true")
                    aria-describedby=described
                />
                {error.map(|error| view! { <span class="field-error" id=error_id>{error}</span> })}
            </label>
        }
    }
}

/// The flash left by the last form post, read once on the server (it only exists after a redirect, which is
/// a full page load) and carried to hydration.
pub(crate) fn take_flash() -> Option<Flash> {
    leptos::prelude::SharedValue::new(|| {
        #[cfg(feature = "ssr")]
        {
            let request = use_context::<leptos_actix::Request>()?;
            let flash = request.cookie(FLASH_COOKIE).and_then(|cookie| Flash::decode(cookie.value()));
            if flash.is_some()
                && let Some(response) = use_context::<leptos_actix::ResponseOptions>()
                && let Ok(clear) =
                    actix_web::http::header::HeaderValue::from_str(&format!("{FLASH_COOKIE}=; Path=/; Max-Age=0"))
            {
                response.append_header(actix_web::http::header::SET_COOKIE, clear);
            }
            flash
        }
        #[cfg(not(feature = "ssr"))]
        {
            let _ = FLASH_COOKIE;
            None
        }
    })
    .into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flashes_round_trip_and_garbage_is_ignored() {
        let flash = Flash::failure("signup", "Check the form").field("email", "taken").keep("email", "a@b.c");
        assert_eq!(Flash::decode(&flash.encode()), Some(flash));
        assert_eq!(Flash::decode("!!!"), None);
        assert_eq!(Flash::decode(&"A".repeat(MAX_FLASH_LEN + 1)), None);
    }
}
