//! The weights commit hash, computed as subtensor computes it:
//! BLAKE2b-256 over the SCALE encoding of
//! `(hotkey: AccountId32, netuid: u16, uids: Vec<u16>, values: Vec<u16>, salt: Vec<u16>, version_key: u64)`.

use blake2::{digest::consts::U32, Blake2b, Digest};
use parity_scale_codec::Encode;

use super::AccountId;

/// The bytes that are hashed (exposed for cross-checking against other encoders).
pub fn commit_preimage(
    hotkey: &AccountId,
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> Vec<u8> {
    // A tuple of references encodes as the tuple of values: the key as a
    // fixed array (no length), the slices as `Vec<u16>` (compact length first).
    (&hotkey.0, netuid, uids, values, salt, version_key).encode()
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
        // The uids' length prefix, right after the key and netuid, in each
        // width of SCALE's compact form: subtensor decodes `Vec<u16>` so.
        for (n, bytes) in [
            (0usize, vec![0u8]),
            (1, vec![4]),
            (63, vec![252]),
            (64, vec![1, 1]),
            (16383, vec![253, 255]),
            (16384, vec![2, 0, 1, 0]),
        ] {
            let pre = commit_preimage(&AccountId([0; 32]), 0, &vec![0; n], &[], &[], 0);
            assert_eq!(pre[34..34 + bytes.len()], bytes, "{n}");
            assert_eq!(pre.len(), 34 + bytes.len() + 2 * n + 1 + 1 + 8, "{n}");
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
