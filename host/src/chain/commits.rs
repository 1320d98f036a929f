//! Weight commits waiting for their reveal, kept in a small JSON file so a
//! restart between commit and reveal does not lose the salt (without it the
//! commit can never be revealed and the validator's weights for that epoch
//! are lost).
//!
//! A commit belongs to the epoch it was included in and may be revealed only in
//! that epoch plus the subnet's reveal period; after that it has expired. The
//! chain's record of it ([`super::Chain::weight_commits`]) says which epoch that is.

use std::{path::PathBuf, sync::Mutex};

use serde::{Deserialize, Serialize};

use crate::chain::{AccountId, ChainError, NetUid};

const VERSION: u32 = 1;

/// One commit waiting for its reveal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCommit {
    pub netuid: NetUid,
    pub hotkey: AccountId,
    pub uids: Vec<u16>,
    pub values: Vec<u16>,
    pub salt: Vec<u16>,
    pub version_key: u64,
    /// The commit hash, hex.
    pub hash: String,
    /// The epoch (subtensor's per-subnet index) in which it must be revealed: as the chain
    /// recorded it where that could be read, else predicted when it was sent.
    pub reveal_epoch: u64,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    version: u32,
    pending: Vec<PendingCommit>,
}

/// The pending commits of one neuron, in memory and (when a path is given) on disk.
pub struct CommitStore {
    path: Option<PathBuf>,
    pending: Mutex<Vec<PendingCommit>>,
}

impl CommitStore {
    /// Reads the file if it exists (a missing file is an empty store).
    pub fn open(path: Option<PathBuf>) -> Result<Self, ChainError> {
        let pending = match &path {
            Some(p) if p.exists() => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| ChainError::Other(format!("cannot read pending commits {}: {e}", p.display())))?;
                let file: File = serde_json::from_str(&text).map_err(|e| {
                    ChainError::Other(format!(
                        "pending commits {} are not valid ({e}); move the file away to start without them",
                        p.display()
                    ))
                })?;
                if file.version != VERSION {
                    return Err(ChainError::Other(format!(
                        "pending commits {} have format version {}, this host reads {VERSION}",
                        p.display(),
                        file.version
                    )));
                }
                file.pending
            }
            _ => Vec::new(),
        };
        Ok(Self { path, pending: Mutex::new(pending) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PendingCommit>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, pending: &[PendingCommit]) -> Result<(), ChainError> {
        let Some(path) = &self.path else { return Ok(()) };
        let text = serde_json::to_string_pretty(&File { version: VERSION, pending: pending.to_vec() })
            .map_err(|e| ChainError::Other(format!("cannot encode pending commits: {e}")))?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| ChainError::Other(format!("cannot create {} for pending commits: {e}", dir.display())))?;
        }
        crate::fsutil::write_atomically(path, text.as_bytes())
            .map_err(|e| ChainError::Other(format!("cannot write pending commits {}: {e}", path.display())))
    }

    pub fn all(&self) -> Vec<PendingCommit> {
        self.lock().clone()
    }

    /// Adds a commit (saved before the extrinsic is sent, so a crash keeps the salt).
    pub fn add(&self, commit: PendingCommit) -> Result<(), ChainError> {
        let mut pending = self.lock();
        pending.push(commit);
        self.save(&pending)
    }

    /// Sets the reveal epoch of the commit with this hash (the chain's record of it, or a
    /// "not yet" from the chain moving it on).
    pub fn set_reveal_epoch(&self, hash: &str, epoch: u64) -> Result<(), ChainError> {
        let mut pending = self.lock();
        for c in pending.iter_mut().filter(|c| c.hash == hash) {
            c.reveal_epoch = epoch;
        }
        self.save(&pending)
    }

    /// Removes the commit with this hash (revealed, refused, or expired).
    pub fn remove(&self, hash: &str) -> Result<(), ChainError> {
        let mut pending = self.lock();
        pending.retain(|c| c.hash != hash);
        self.save(&pending)
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(hash: &str) -> PendingCommit {
        PendingCommit {
            netuid: 1,
            hotkey: AccountId([1; 32]),
            uids: vec![0, 1],
            values: vec![3, 4],
            salt: vec![9, 9],
            version_key: 0,
            hash: hash.into(),
            reveal_epoch: 5,
        }
    }

    #[test]
    fn commits_survive_a_restart_and_a_corrupt_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("commits.json");
        let store = CommitStore::open(Some(path.clone())).unwrap();
        store.add(commit("aa")).unwrap();
        store.add(commit("bb")).unwrap();
        store.remove("aa").unwrap();
        let reopened = CommitStore::open(Some(path.clone())).unwrap();
        assert_eq!(reopened.all(), vec![commit("bb")]);
        std::fs::write(&path, "{").unwrap();
        let err = CommitStore::open(Some(path)).err().unwrap().to_string();
        assert!(err.contains("commits.json") && err.contains("move the file away"), "{err}");
    }
}
