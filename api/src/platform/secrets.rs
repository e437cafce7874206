//! Random tokens for links, cookies and keys, and their stored form.

use sha2::{Digest, Sha256};

/// 256 random bits as 52 lowercase base32 characters: URL- and cookie-safe, unguessable.
pub fn random_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| anyhow::anyhow!("no randomness available: {error}"))?;
    Ok(data_encoding::BASE32_NOPAD.encode(&bytes).to_lowercase())
}

/// What is stored for a token: its SHA-256, hex. A database leak then yields no usable link or session.
pub fn token_hash(token: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(token.as_bytes()))
}
