//! Stripe webhook requests as `POST /webhooks/stripe` reads them: the `Stripe-Signature` header checked
//! against the raw body, and the body read as an event (the input's first line is the header).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// The secret the seeds are signed with, at the time they were signed.
const SECRET: &str = "whsec_fuzz";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&byte| byte == b'\n') {
        Some(end) => (std::str::from_utf8(&data[..end]).ok(), &data[end + 1..]),
        None => (None, data),
    };
    let _ = convene_stripe_events::verify(body, header, SECRET, NOW);
    let _ = convene_stripe_events::parse(body);
});
