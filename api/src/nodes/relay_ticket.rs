//! Tickets for phone calls passed between nodes. A caller let in at a node whose meeting runs on another
//! node is passed there by the first node's gateway with a ticket; that node hands it back to redeem it,
//! and the control plane lets the caller in (admission checked afresh) only if the ticket is its own, for
//! that node, unexpired, and not redeemed before. Signed with HMAC-SHA256 under the node secret, which
//! every replica holds, so any replica redeems what another issued; gateways never need to read one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use convene_domain::{RoomName, TenantId};
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a ticket lets its caller in: the other gateway presents it within a second or two.
pub const LIFETIME: Duration = Duration::from_secs(30);
/// Says what the MAC is for, so no other signature under the node secret passes as a ticket.
const CONTEXT: &[u8] = b"convene phone relay ticket\n";

/// What a ticket carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayTicket {
    /// The meeting's organisation.
    #[serde(rename = "t")]
    pub tenant: TenantId,
    /// Its room.
    #[serde(rename = "r")]
    pub room: RoomName,
    /// The node the call is passed to: only it may redeem the ticket.
    #[serde(rename = "n")]
    pub node: String,
    /// The caller's number as their trunk gave it (who a removal keeps out).
    #[serde(rename = "c")]
    pub caller: Option<String>,
    /// When it stops letting anyone in, in milliseconds since the Unix epoch.
    #[serde(rename = "e")]
    pub expires_ms: i64,
    /// Tells this ticket from every other, so it is redeemed once.
    #[serde(rename = "x")]
    pub nonce: String,
}

impl RelayTicket {
    /// A ticket for `caller` into `tenant`'s `room` on `node`, good for [`LIFETIME`] from `now`.
    pub fn new(
        (tenant, room): (TenantId, &RoomName),
        node: &str,
        caller: Option<&str>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Self> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
        Ok(Self {
            tenant,
            room: room.clone(),
            node: node.to_owned(),
            caller: caller.map(str::to_owned),
            expires_ms: now.timestamp_millis() + LIFETIME.as_millis() as i64,
            nonce: BASE64URL_NOPAD.encode(&nonce),
        })
    }

    /// `<payload>.<mac>`, both base64url.
    pub fn seal(&self, secret: &SecretString) -> String {
        let payload = BASE64URL_NOPAD.encode(&serde_json::to_vec(self).unwrap_or_default());
        let mac = mac(secret, &payload).finalize().into_bytes();
        format!("{payload}.{}", BASE64URL_NOPAD.encode(&mac))
    }

    /// The ticket in `text` if it was sealed under `secret`, is for `node` and has not expired at `now`.
    pub fn open(secret: &SecretString, text: &str, node: &str, now: DateTime<Utc>) -> Option<Self> {
        let (payload, signature) = text.split_once('.')?;
        let signature = BASE64URL_NOPAD.decode(signature.as_bytes()).ok()?;
        mac(secret, payload).verify_slice(&signature).ok()?;
        let ticket: Self = serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).ok()?).ok()?;
        (ticket.node == node && now.timestamp_millis() < ticket.expires_ms).then_some(ticket)
    }
}

fn mac(secret: &SecretString, payload: &str) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose_secret().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(CONTEXT);
    mac.update(payload.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(now: DateTime<Utc>) -> RelayTicket {
        let room = RoomName::parse("standup").unwrap();
        RelayTicket::new((TenantId::new(), &room), "node-b", Some("+15557654321"), now).unwrap()
    }

    #[test]
    fn a_ticket_opens_only_under_its_secret_for_its_node_until_it_expires() {
        let secret = SecretString::from("s".repeat(40));
        let now = Utc::now();
        let issued = ticket(now);
        let sealed = issued.seal(&secret);
        assert!(sealed.len() < 400, "it fits in a SIP header over UDP: {}", sealed.len());
        assert_eq!(RelayTicket::open(&secret, &sealed, "node-b", now), Some(issued.clone()));
        assert_eq!(RelayTicket::open(&secret, &sealed, "node-a", now), None, "another node");
        assert_eq!(RelayTicket::open(&secret, &sealed, "node-b", now + LIFETIME), None, "expired");
        assert_eq!(RelayTicket::open(&SecretString::from("t".repeat(40)), &sealed, "node-b", now), None);
        assert_ne!(ticket(now).seal(&secret), sealed, "each ticket is its own");

        // A payload changed under the old signature, or junk, opens nothing.
        let (_, signature) = sealed.split_once('.').unwrap();
        let forged = RelayTicket { room: RoomName::parse("board").unwrap(), ..issued };
        let payload = BASE64URL_NOPAD.encode(&serde_json::to_vec(&forged).unwrap());
        assert_eq!(RelayTicket::open(&secret, &format!("{payload}.{signature}"), "node-b", now), None);
        for junk in ["", ".", "abc", "abc.def", &format!("{sealed}x"), &format!("x{sealed}")] {
            assert_eq!(RelayTicket::open(&secret, junk, "node-b", now), None, "{junk}");
        }
    }
}
