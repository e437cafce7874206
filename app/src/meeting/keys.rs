//! End-to-end encryption keys, as Jitsi does with Olm but with X25519: every participant sends with a
//! media key of its own (AES-128-GCM, used by the frame worker) and hands it to each other participant
//! wrapped under a key only the two of them can derive (X25519, then HKDF-SHA-256). The node relays the
//! payloads and cannot read them. When someone joins, everyone ratchets every key forward (HKDF), so the
//! newcomer cannot read what was sent before; when someone leaves, everyone draws a fresh key and hands it
//! to those who stay, so the leaver cannot read what follows.
//!
//! Pure: randomness comes in as bytes and what to send or install goes out, so it is tested natively.

use std::collections::{BTreeMap, BTreeSet};

use aes_gcm::{
    Aes128Gcm, KeyInit, Nonce,
    aead::{Aead, Payload},
};
use convene_signal::ParticipantId;
use hkdf::Hkdf;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

/// An AES-128 media key.
pub type MediaKey = [u8; 16];

/// A media key wrapped in AES-GCM: the key, then the 16-byte tag.
const WRAPPED_LEN: usize = 32;

const WRAP_SALT: &[u8] = b"convene e2ee v1 wrap";
const RATCHET_SALT: &[u8] = b"convene e2ee v1 ratchet";

/// A key the frame worker must use: for `participant`'s frames (the person's own when it is theirs), at
/// `index` (the last byte of every encrypted frame names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    /// Whose frames.
    pub participant: ParticipantId,
    /// Its index.
    pub index: u8,
    /// The key.
    pub key: MediaKey,
}

/// A payload to relay: to one participant, or everyone when `to` is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The recipient.
    pub to: Option<ParticipantId>,
    /// The JSON the node relays unread.
    pub payload: String,
}

/// What the keys changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Payloads to send.
    pub outgoing: Vec<Outgoing>,
    /// Keys for the worker.
    pub installs: Vec<Install>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Message {
    /// Here is my public key (to everyone, on joining).
    Hello { public: [u8; 32] },
    /// My media key, wrapped for you (the key and GCM's tag); my public key comes along for unwrapping.
    Key { public: [u8; 32], index: u8, nonce: [u8; 12], wrapped: [u8; WRAPPED_LEN] },
}

/// Why a payload was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not one of our messages.
    #[error("an unreadable encryption message")]
    Unreadable,
    /// The wrapped key did not open: not for us, or tampered with.
    #[error("an encryption key that does not open")]
    WrongKey,
}

struct Peer {
    public: PublicKey,
    /// Their media key, once they handed it over.
    key: Option<(u8, MediaKey)>,
}

/// One participant's keys.
pub struct KeyRing {
    me: ParticipantId,
    secret: StaticSecret,
    public: PublicKey,
    own: (u8, MediaKey),
    peers: BTreeMap<ParticipantId, Peer>,
    /// Who has my current key.
    handed: BTreeSet<ParticipantId>,
}

impl KeyRing {
    /// Keys for `me` from 32 random bytes (the X25519 secret) and a first media key; says hello to everyone.
    pub fn new(me: ParticipantId, secret: [u8; 32], media_key: MediaKey) -> (Self, Changes) {
        let secret = StaticSecret::from(secret);
        let public = PublicKey::from(&secret);
        let ring = Self { me, secret, public, own: (0, media_key), peers: BTreeMap::new(), handed: BTreeSet::new() };
        let hello = Message::Hello { public: public.to_bytes() };
        let changes = Changes {
            outgoing: vec![Outgoing { to: None, payload: to_json(&hello) }],
            installs: vec![ring.own_install()],
        };
        (ring, changes)
    }

    fn own_install(&self) -> Install {
        Install { participant: self.me, index: self.own.0, key: self.own.1 }
    }

    /// A payload relayed from `from`; `nonce` is 12 fresh random bytes, used if a key goes back.
    pub fn receive(&mut self, from: ParticipantId, payload: &str, nonce: [u8; 12]) -> Result<Changes, KeyError> {
        let message: Message = serde_json::from_str(payload).map_err(|_| KeyError::Unreadable)?;
        let mut changes = Changes::default();
        match message {
            Message::Hello { public } => {
                let public = PublicKey::from(public);
                self.peers.entry(from).or_insert(Peer { public, key: None }).public = public;
            }
            Message::Key { public, index, nonce: their_nonce, wrapped } => {
                let public = PublicKey::from(public);
                let cipher = self.wrapping(&public, from);
                let aad = aad(from, index);
                let opened = cipher
                    .decrypt(Nonce::from_slice(&their_nonce), Payload { msg: &wrapped, aad: &aad })
                    .map_err(|_| KeyError::WrongKey)?;
                let key: MediaKey = opened.try_into().map_err(|_| KeyError::WrongKey)?;
                self.peers.insert(from, Peer { public, key: Some((index, key)) });
                changes.installs.push(Install { participant: from, index, key });
            }
        }
        // Whoever we can now reach gets our key, once per key.
        if !self.handed.contains(&from) {
            changes.outgoing.extend(self.hand_to(from, nonce));
        }
        Ok(changes)
    }

    fn hand_to(&mut self, to: ParticipantId, nonce: [u8; 12]) -> Option<Outgoing> {
        let peer = self.peers.get(&to)?;
        let cipher = self.wrapping(&peer.public, self.me);
        let (index, key) = self.own;
        let aad = aad(self.me, index);
        let wrapped =
            cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: &key, aad: &aad }).ok()?.try_into().ok()?;
        self.handed.insert(to);
        let message = Message::Key { public: self.public.to_bytes(), index, nonce, wrapped };
        Some(Outgoing { to: Some(to), payload: to_json(&message) })
    }

    /// The key two participants share for wrapping `sender`'s media keys.
    fn wrapping(&self, their_public: &PublicKey, sender: ParticipantId) -> Aes128Gcm {
        let shared = self.secret.diffie_hellman(their_public);
        let mut key = [0u8; 16];
        // The sender in the info keeps the two directions' keys apart; 16 bytes is far below HKDF's limit.
        let _ = Hkdf::<Sha256>::new(Some(WRAP_SALT), shared.as_bytes()).expand(&sender.0.to_be_bytes(), &mut key);
        Aes128Gcm::new(&key.into())
    }

    /// Someone joined: every key moves one step forward, so what was sent before stays closed to them.
    pub fn joined(&mut self, who: ParticipantId) -> Changes {
        if who == self.me {
            return Changes::default();
        }
        self.own = ratchet(self.own);
        let mut installs = vec![self.own_install()];
        for (participant, peer) in &mut self.peers {
            if let Some(key) = peer.key {
                let next = ratchet(key);
                peer.key = Some(next);
                installs.push(Install { participant: *participant, index: next.0, key: next.1 });
            }
        }
        // Everyone already here derives the new key themselves; only the newcomer needs it handed over.
        Changes { outgoing: Vec::new(), installs }
    }

    /// Someone left: a fresh key of our own, handed to everyone who stays (one nonce each, in order).
    pub fn left(&mut self, who: ParticipantId, fresh: MediaKey, nonces: &[[u8; 12]]) -> Changes {
        self.peers.remove(&who);
        self.own = (self.own.0.wrapping_add(1), fresh);
        self.handed.clear();
        let recipients: Vec<ParticipantId> = self.peers.keys().copied().collect();
        let outgoing = recipients.into_iter().zip(nonces).filter_map(|(to, nonce)| self.hand_to(to, *nonce)).collect();
        Changes { outgoing, installs: vec![self.own_install()] }
    }

    /// How many peers a rotation hands keys to (the nonces [`KeyRing::left`] needs).
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }
}

fn ratchet((index, key): (u8, MediaKey)) -> (u8, MediaKey) {
    let mut next = [0u8; 16];
    let _ = Hkdf::<Sha256>::new(Some(RATCHET_SALT), &key).expand(&[], &mut next);
    (index.wrapping_add(1), next)
}

fn aad(sender: ParticipantId, index: u8) -> [u8; 9] {
    let mut aad = [0u8; 9];
    aad[..8].copy_from_slice(&sender.0.to_be_bytes());
    aad[8] = index;
    aad
}

fn to_json(message: &Message) -> String {
    // Byte arrays and a number only: serialising cannot fail.
    serde_json::to_string(message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(id: u64) -> (KeyRing, Changes) {
        KeyRing::new(ParticipantId(id), [id as u8; 32], [id as u8 + 100; 16])
    }

    /// Delivers every outgoing payload of `from` to the rings it is for; returns what they installed.
    fn deliver(from: ParticipantId, changes: Changes, rings: &mut [&mut KeyRing]) -> Vec<(ParticipantId, Install)> {
        let mut installed = Vec::new();
        let mut queue: Vec<(ParticipantId, Outgoing)> = changes.outgoing.into_iter().map(|o| (from, o)).collect();
        while let Some((sender, outgoing)) = queue.pop() {
            for ring in rings.iter_mut() {
                if ring.me == sender || outgoing.to.is_some_and(|to| to != ring.me) {
                    continue;
                }
                let changes = ring.receive(sender, &outgoing.payload, [7; 12]).expect("a readable payload");
                installed.extend(changes.installs.into_iter().map(|install| (ring.me, install)));
                queue.extend(changes.outgoing.into_iter().map(|o| (ring.me, o)));
            }
        }
        installed
    }

    #[test]
    fn everyone_gets_everyone_elses_key_and_the_relay_reads_nothing() {
        let (mut ann, ann_hello) = ring(1);
        let (mut bob, bob_hello) = ring(2);
        // Bob answers Ann's hello with his key, and Ann answers that with hers.
        let installed = deliver(ParticipantId(1), ann_hello, &mut [&mut ann, &mut bob]);
        let got = |who, whose| installed.iter().any(|(at, i)| at.0 == who && i.participant.0 == whose);
        assert!(got(1, 2) && got(2, 1), "{installed:?}");
        assert!(deliver(ParticipantId(2), bob_hello, &mut [&mut ann, &mut bob]).is_empty(), "keys go over once");
        let bob_has_ann = installed.iter().find(|(at, _)| at.0 == 2).map(|(_, install)| install.key);
        assert_eq!(bob_has_ann, Some([101; 16]));

        // What the node relays never holds the key in the clear.
        let (mut cy, cy_hello) = ring(3);
        let reply = ann.receive(ParticipantId(3), &cy_hello.outgoing[0].payload, [9; 12]).unwrap();
        let payload = &reply.outgoing[0].payload;
        let key_in_clear = serde_json::to_string(&[101u8; 16]).unwrap();
        assert!(!payload.contains(key_in_clear.trim_matches(['[', ']'])), "{payload}");
        let taken = cy.receive(ParticipantId(1), payload, [1; 12]).unwrap();
        assert_eq!(taken.installs[0].participant, ParticipantId(1));
        assert_eq!(bob.receive(ParticipantId(1), payload, [1; 12]), Err(KeyError::WrongKey), "not for Bob");
        assert_eq!(bob.receive(ParticipantId(1), "{\"kind\":\"nope\"}", [1; 12]), Err(KeyError::Unreadable));
        let long_key = payload.replacen("\"public\":[", "\"public\":[1,", 1);
        assert_eq!(cy.receive(ParticipantId(1), &long_key, [1; 12]), Err(KeyError::Unreadable), "33 bytes");
    }

    #[test]
    fn a_join_ratchets_every_key_alike_and_a_leave_rotates_to_a_fresh_one() {
        let (mut ann, ann_hello) = ring(1);
        let (mut bob, bob_hello) = ring(2);
        deliver(ParticipantId(1), ann_hello, &mut [&mut ann, &mut bob]);
        deliver(ParticipantId(2), bob_hello, &mut [&mut ann, &mut bob]);

        let at_ann = ann.joined(ParticipantId(3));
        let at_bob = bob.joined(ParticipantId(3));
        let ann_own = at_ann.installs.iter().find(|i| i.participant.0 == 1).cloned().unwrap();
        let ann_at_bob = at_bob.installs.iter().find(|i| i.participant.0 == 1).cloned().unwrap();
        assert_eq!(ann_own, ann_at_bob, "both sides ratchet Ann's key to the same next key");
        assert_eq!(ann_own.index, 1);
        assert_ne!(ann_own.key, [101; 16]);

        let rotated = ann.left(ParticipantId(2), [55; 16], &[[3; 12]]);
        assert_eq!(rotated.installs, [Install { participant: ParticipantId(1), index: 2, key: [55; 16] }]);
        assert!(rotated.outgoing.is_empty(), "Bob left, and no one else is here");
    }
}
