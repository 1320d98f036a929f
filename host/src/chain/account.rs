//! Account ids (32-byte sr25519 public keys) and their SS58 text form.

use std::{fmt, str::FromStr};

use blake2::{Blake2b512, Digest};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The SS58 address format Bittensor uses (the generic Substrate prefix).
pub const SS58_FORMAT: u16 = 42;

/// A 32-byte account id: a hotkey's or coldkey's public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct AccountId(pub [u8; 32]);

impl AccountId {
    /// SS58 text with Bittensor's format 42.
    pub fn to_ss58(&self) -> String {
        ss58_encode(&self.0, SS58_FORMAT)
    }

    /// Parses SS58 text of any simple (one-byte prefix) format.
    pub fn from_ss58(text: &str) -> Result<Self, String> {
        let bytes = bs58::decode(text).into_vec().map_err(|e| format!("`{text}` is not base58: {e}"))?;
        if bytes.len() != 35 {
            return Err(format!("`{text}` is not an SS58 account address ({} bytes, expected 35)", bytes.len()));
        }
        if bytes[0] >= 64 {
            return Err(format!("`{text}` uses a two-byte SS58 prefix, which this host does not read"));
        }
        let checksum = ss58_checksum(&bytes[..33]);
        if bytes[33..] != checksum[..2] {
            return Err(format!("`{text}` has a wrong SS58 checksum"));
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[1..33]);
        Ok(Self(id))
    }

    /// A deterministic id from a name (local chains and tests; not a real key).
    pub fn from_name(name: &str) -> Self {
        let digest = Blake2b512::digest(name.as_bytes());
        let mut id = [0u8; 32];
        id.copy_from_slice(&digest[..32]);
        Self(id)
    }
}

fn ss58_checksum(data: &[u8]) -> [u8; 64] {
    let mut h = Blake2b512::new();
    h.update(b"SS58PRE");
    h.update(data);
    h.finalize().into()
}

fn ss58_encode(id: &[u8; 32], format: u16) -> String {
    assert!(format < 64, "two-byte SS58 prefixes are not used by Bittensor");
    let mut data = Vec::with_capacity(35);
    data.push(format as u8);
    data.extend_from_slice(id);
    let checksum = ss58_checksum(&data);
    data.extend_from_slice(&checksum[..2]);
    bs58::encode(data).into_string()
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_ss58())
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.to_ss58())
    }
}

impl FromStr for AccountId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_ss58(s)
    }
}

impl Serialize for AccountId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_ss58())
    }
}

impl<'de> Deserialize<'de> for AccountId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::from_ss58(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss58_of_a_well_known_key() {
        // Alice's sr25519 public key and its generic-substrate address (a
        // widely published test vector).
        let alice: [u8; 32] = [
            0xd4, 0x35, 0x93, 0xc7, 0x15, 0xfd, 0xd3, 0x1c, 0x61, 0x14, 0x1a, 0xbd, 0x04, 0xa9, 0x9f, 0xd6, 0x82, 0x2c,
            0x85, 0x58, 0x85, 0x4c, 0xcd, 0xe3, 0x9a, 0x56, 0x84, 0xe7, 0xa5, 0x6d, 0xa2, 0x7d,
        ];
        let text = AccountId(alice).to_ss58();
        assert_eq!(text, "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY");
        assert_eq!(AccountId::from_ss58(&text).unwrap(), AccountId(alice));
        let mut broken = text.clone();
        broken.replace_range(5..6, "b");
        assert!(AccountId::from_ss58(&broken).is_err());
    }
}
