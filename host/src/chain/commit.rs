//! The weights commit hash, computed as subtensor computes it:
//! BLAKE2b-256 over the SCALE encoding of
//! `(hotkey: AccountId32, netuid: u16, uids: Vec<u16>, values: Vec<u16>, salt: Vec<u16>, version_key: u64)`.

use blake2::{digest::consts::U32, Blake2b, Digest};

use super::AccountId;

/// SCALE compact encoding of a length.
fn compact_len(out: &mut Vec<u8>, n: usize) {
    let n = n as u64;
    if n < 1 << 6 {
        out.push((n << 2) as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&(((n << 2) | 1) as u16).to_le_bytes());
    } else if n < 1 << 30 {
        out.extend_from_slice(&(((n << 2) | 2) as u32).to_le_bytes());
    } else {
        out.push(0b11 | (4 << 2));
        out.extend_from_slice(&(n as u32).to_le_bytes());
    }
}

fn vec_u16(out: &mut Vec<u8>, v: &[u16]) {
    compact_len(out, v.len());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// The bytes that are hashed (exposed for cross-checking against other encoders).
pub fn commit_preimage(
    hotkey: &AccountId,
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + 2 + 3 * 4 + 2 * (uids.len() + values.len() + salt.len()) + 8);
    out.extend_from_slice(&hotkey.0);
    out.extend_from_slice(&netuid.to_le_bytes());
    vec_u16(&mut out, uids);
    vec_u16(&mut out, values);
    vec_u16(&mut out, salt);
    out.extend_from_slice(&version_key.to_le_bytes());
    out
}

/// The hash a validator commits and later reveals against.
pub fn commit_hash(
    hotkey: &AccountId,
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> [u8; 32] {
    Blake2b::<U32>::digest(commit_preimage(hotkey, netuid, uids, values, salt, version_key)).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_lengths() {
        for (n, bytes) in [
            (0usize, vec![0u8]),
            (1, vec![4]),
            (63, vec![252]),
            (64, vec![1, 1]),
            (16383, vec![253, 255]),
            (16384, vec![2, 0, 1, 0]),
        ] {
            let mut out = Vec::new();
            compact_len(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    #[test]
    fn preimage_layout() {
        let pre = commit_preimage(&AccountId([7; 32]), 2, &[0, 1], &[30000, 35535], &[9], 5);
        let mut want = vec![7u8; 32];
        want.extend_from_slice(&[2, 0]);
        want.extend_from_slice(&[8, 0, 0, 1, 0]);
        want.extend_from_slice(&[8, 0x30, 0x75, 0xcf, 0x8a]);
        want.extend_from_slice(&[4, 9, 0]);
        want.extend_from_slice(&[5, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(pre, want);
    }
}
