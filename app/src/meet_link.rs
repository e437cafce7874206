//! What is wrong with an invitation link, told in words the invitee understands.
//!
//! This only reads a token's shape and claims; it proves nothing. Signature verification lives with the
//! tenant signing keys (the meetings issue) and runs before a meeting opens. Until a key vouches for a
//! token, the best this page can do is explain why the link does not open a meeting.

use convene_domain::RoomName;
use data_encoding::BASE64URL_NOPAD;
use serde::Deserialize;

/// Tokens longer than this are refused unread: a real room token is well under 2 KiB.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why a link does not open a meeting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkProblem {
    /// The link has no `?jwt=` part at all.
    MissingToken,
    /// The token is not a readable JWT (cut off when copied, or not a token).
    UnreadableToken,
    /// The token names another room.
    OtherRoom {
        /// The room the token was issued for.
        token_room: String,
    },
    /// The token is readable but no signing key on this server vouches for it.
    UnknownIssuer,
}

/// The claims this page reads. Everything else in the token is ignored here.
#[derive(Deserialize)]
struct Claims {
    room: Option<String>,
}

/// Diagnoses the link `<room>?jwt=<token>`.
pub fn diagnose(room: &RoomName, token: Option<&str>) -> LinkProblem {
    let Some(token) = token.map(str::trim).filter(|token| !token.is_empty()) else {
        return LinkProblem::MissingToken;
    };
    let Some(claims) = read_claims(token) else {
        return LinkProblem::UnreadableToken;
    };
    match claims.room {
        Some(token_room) if token_room != "*" && token_room != room.as_str() => LinkProblem::OtherRoom { token_room },
        _ => LinkProblem::UnknownIssuer,
    }
}

fn read_claims(token: &str) -> Option<Claims> {
    if token.len() > MAX_TOKEN_LEN {
        return None;
    }
    let mut parts = token.split('.');
    let (header, claims, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || signature.is_empty() {
        return None;
    }
    let decode = |part: &str| BASE64URL_NOPAD.decode(part.as_bytes()).ok();
    // Every JWT header names its algorithm; anything else is not a token.
    let header: serde_json::Value = serde_json::from_slice(&decode(header)?).ok()?;
    header.get("alg")?.as_str()?;
    serde_json::from_slice(&decode(claims)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(header: &str, claims: &str) -> String {
        let encode = |text: &str| BASE64URL_NOPAD.encode(text.as_bytes());
        format!("{}.{}.c2ln", encode(header), encode(claims))
    }

    fn room() -> RoomName {
        RoomName::parse("weekly-sync").unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn a_link_without_a_token_says_so() {
        assert_eq!(diagnose(&room(), None), LinkProblem::MissingToken);
        assert_eq!(diagnose(&room(), Some("  ")), LinkProblem::MissingToken);
    }

    #[test]
    fn damaged_tokens_are_unreadable() {
        let good_header = r#"{"alg":"RS256","typ":"JWT"}"#;
        for bad in [
            "abc".to_owned(),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            "!!!.???.sig".to_owned(),
            token("not json", r#"{"room":"weekly-sync"}"#),
            token(good_header, "[1,2]"),
            token(r#"{"typ":"JWT"}"#, r#"{"room":"weekly-sync"}"#),
            token(good_header, r#"{"room":"weekly-sync"}"#).trim_end_matches("c2ln").to_owned(),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert_eq!(diagnose(&room(), Some(&bad)), LinkProblem::UnreadableToken, "{bad}");
        }
    }

    #[test]
    fn a_token_for_another_room_names_that_room() {
        let other = token(r#"{"alg":"RS256"}"#, r#"{"room":"board-meeting"}"#);
        assert_eq!(diagnose(&room(), Some(&other)), LinkProblem::OtherRoom { token_room: "board-meeting".into() });
    }

    #[test]
    fn readable_tokens_still_need_a_key_that_vouches_for_them() {
        for claims in [r#"{"room":"weekly-sync"}"#, r#"{"room":"*"}"#, r#"{"aud":"jitsi"}"#] {
            let readable = token(r#"{"alg":"RS256"}"#, claims);
            assert_eq!(diagnose(&room(), Some(&readable)), LinkProblem::UnknownIssuer, "{claims}");
        }
    }
}
