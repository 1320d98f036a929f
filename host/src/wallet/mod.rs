//! Bittensor wallets: the SDK's directory layout and keyfiles, so that a
//! wallet made by `btcli` or the Python SDK works here and the other way round.
//!
//! ```text
//! <root>/<name>/coldkey              the coldkey (encrypted by default)
//! <root>/<name>/coldkeypub.txt       its public key
//! <root>/<name>/hotkeys/<hotkey>     a hotkey (plain by default)
//! <root>/<name>/hotkeys/<hotkey>pub.txt
//! ```
//!
//! `<root>` is `~/.bittensor/wallets` unless `--wallet.path` (or `[wallet]
//! path`) moves it. A neuron signs with its hotkey; the coldkey stays locked
//! except to create a wallet. [`keys`] derives keys as the SDK does;
//! [`keyfile`] reads and writes the files.

pub mod keyfile;
pub mod keys;

use std::path::{Path, PathBuf};

pub use keyfile::{KeyfileContent, PasswordSource, PASSWORD_ENV};
pub use keys::{AccountId, KeyError, Keypair, Scheme};

use crate::error::{Error, Result};

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Error {
        Error::Wallet(e.0)
    }
}

/// `[wallet]` in the configuration, `--wallet.*` on the command line: which
/// wallet and hotkey, and where wallets live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalletConfig {
    pub name: Option<String>,
    pub hotkey: Option<String>,
    pub path: Option<PathBuf>,
}

pub const WALLET_KEYS: &[&str] = &["name", "hotkey", "path"];

impl WalletConfig {
    /// The wallet this names (`default`/`default` under the default root when unset).
    pub fn wallet(&self) -> Result<Wallet> {
        let root = match &self.path {
            Some(p) => expand_home(p),
            None => default_root()?,
        };
        Wallet::new(root, self.name.as_deref().unwrap_or("default"), self.hotkey.as_deref().unwrap_or("default"))
    }

    /// Reads a `[wallet]` table (unknown keys refused by the caller's list).
    pub fn from_table(table: &toml::Table) -> std::result::Result<WalletConfig, String> {
        let mut c = WalletConfig::default();
        for (key, value) in table {
            let text = value.as_str().ok_or_else(|| format!("`wallet.{key}` must be a string"))?.to_string();
            match key.as_str() {
                "name" => c.name = Some(text),
                "hotkey" => c.hotkey = Some(text),
                "path" => c.path = Some(PathBuf::from(text)),
                other => return Err(format!("unknown key `wallet.{other}`")),
            }
        }
        Ok(c)
    }

    /// Flags override what the file said.
    pub fn merge(&mut self, flags: WalletConfig) {
        if flags.name.is_some() {
            self.name = flags.name;
        }
        if flags.hotkey.is_some() {
            self.hotkey = flags.hotkey;
        }
        if flags.path.is_some() {
            self.path = flags.path;
        }
    }
}

/// `~/.bittensor/wallets`.
pub fn default_root() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| Path::new(&h).join(".bittensor").join("wallets"))
        .ok_or_else(|| Error::Wallet("HOME is not set: give the wallet directory with --wallet.path".into()))
}

fn expand_home(p: &Path) -> PathBuf {
    match (p.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => p.to_path_buf(),
    }
}

/// One wallet and one of its hotkeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wallet {
    pub root: PathBuf,
    pub name: String,
    pub hotkey: String,
}

/// A wallet name or hotkey name must be one path component.
fn check_component(kind: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && !value.contains('/')
        && !value.contains('\\')
        && !value.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(Error::Wallet(format!("`{value}` is not a usable {kind} name: use letters, digits, `-` or `_`")))
    }
}

impl Wallet {
    pub fn new(root: impl Into<PathBuf>, name: &str, hotkey: &str) -> Result<Wallet> {
        check_component("wallet", name)?;
        check_component("hotkey", hotkey)?;
        Ok(Wallet { root: root.into(), name: name.to_string(), hotkey: hotkey.to_string() })
    }
    pub fn dir(&self) -> PathBuf {
        self.root.join(&self.name)
    }
    pub fn coldkey_path(&self) -> PathBuf {
        self.dir().join("coldkey")
    }
    pub fn coldkeypub_path(&self) -> PathBuf {
        self.dir().join("coldkeypub.txt")
    }
    pub fn hotkey_path(&self) -> PathBuf {
        self.dir().join("hotkeys").join(&self.hotkey)
    }
    pub fn hotkeypub_path(&self) -> PathBuf {
        self.dir().join("hotkeys").join(format!("{}pub.txt", self.hotkey))
    }

    /// The hotkey, able to sign: what a neuron runs with.
    pub fn hotkey_keypair(&self, password: &PasswordSource) -> Result<Keypair> {
        read_keypair(
            &self.hotkey_path(),
            password,
            "regenerate the hotkey from its phrase with `btcli wallet regen-hotkey`",
        )
    }

    /// The coldkey, able to sign (usually asks for its password).
    pub fn coldkey_keypair(&self, password: &PasswordSource) -> Result<Keypair> {
        read_keypair(&self.coldkey_path(), password, "this wallet has no coldkey secret")
    }

    /// The coldkey's address, from `coldkeypub.txt` (no password needed).
    pub fn coldkey_account(&self) -> Result<AccountId> {
        Ok(keyfile::read(&self.coldkeypub_path(), &PasswordSource::EnvironmentOnly)?.account())
    }

    /// The hotkey's address without unlocking it: the hotkey file when it is
    /// plain, else `<hotkey>pub.txt`.
    pub fn hotkey_account(&self) -> Result<AccountId> {
        let path = self.hotkey_path();
        if !keyfile::is_encrypted(&path)? {
            return Ok(keyfile::read(&path, &PasswordSource::EnvironmentOnly)?.account());
        }
        Ok(keyfile::read(&self.hotkeypub_path(), &PasswordSource::EnvironmentOnly)?.account())
    }

    /// Writes a coldkey (encrypted with `password` when given) and `coldkeypub.txt`.
    pub fn write_coldkey(&self, keypair: &Keypair, password: Option<&str>, overwrite: bool) -> Result<()> {
        write_pair(&self.coldkey_path(), &self.coldkeypub_path(), keypair, password, overwrite)
    }

    /// Writes a hotkey (encrypted with `password` when given) and `<hotkey>pub.txt`.
    pub fn write_hotkey(&self, keypair: &Keypair, password: Option<&str>, overwrite: bool) -> Result<()> {
        write_pair(&self.hotkey_path(), &self.hotkeypub_path(), keypair, password, overwrite)
    }
}

/// A keyfile that must hold a secret key; `fix` says what to do when it holds only a public one.
fn read_keypair(path: &Path, password: &PasswordSource, fix: &str) -> Result<Keypair> {
    match keyfile::read(path, password)? {
        KeyfileContent::Keypair(k) => Ok(*k),
        KeyfileContent::Public { .. } => {
            Err(Error::Keyfile { path: path.to_path_buf(), problem: format!("holds only a public key: {fix}") })
        }
    }
}

fn write_pair(private: &Path, public: &Path, keypair: &Keypair, password: Option<&str>, overwrite: bool) -> Result<()> {
    if !overwrite {
        for p in [private, public] {
            if p.exists() {
                return Err(Error::Keyfile {
                    path: p.to_path_buf(),
                    problem: "already exists: pass --overwrite to replace it".into(),
                });
            }
        }
    }
    let plain = keyfile::serialize_keypair(keypair);
    let data = match password {
        Some(pw) => keyfile::encrypt(&plain, pw)?,
        None => plain.to_vec(),
    };
    keyfile::write(private, &data, true)?;
    keyfile::write(public, &keyfile::serialize_public(keypair.account(), keypair.scheme()), true)
}

/// The wallets under `root`: each name with its hotkey names, sorted.
pub fn list(root: &Path) -> Result<Vec<(String, Vec<String>)>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::Io { path: root.to_path_buf(), source }),
    };
    let mut wallets = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let mut hotkeys: Vec<String> = std::fs::read_dir(path.join("hotkeys"))
            .map(|it| {
                it.flatten()
                    .filter(|e| e.path().is_file())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.ends_with("pub.txt") && !n.ends_with(".tmp"))
                    .collect()
            })
            .unwrap_or_default();
        hotkeys.sort();
        wallets.push((name, hotkeys));
    }
    wallets.sort();
    Ok(wallets)
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalletSettings {
    pub name: String,
    pub hotkey: String,
    /// Directory holding wallets.
    pub path: String,
}

impl Default for WalletSettings {
    fn default() -> Self {
        Self { name: "default".into(), hotkey: "default".into(), path: "~/.bittensor/wallets".into() }
    }
}

impl WalletSettings {
    pub fn wallet_config(&self) -> WalletConfig {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        WalletConfig { name: some(&self.name), hotkey: some(&self.hotkey), path: some(&self.path).map(PathBuf::from) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_sdk_layout() {
        let w = Wallet::new("/r", "cold", "hot").unwrap();
        assert_eq!(w.coldkey_path(), Path::new("/r/cold/coldkey"));
        assert_eq!(w.coldkeypub_path(), Path::new("/r/cold/coldkeypub.txt"));
        assert_eq!(w.hotkey_path(), Path::new("/r/cold/hotkeys/hot"));
        assert_eq!(w.hotkeypub_path(), Path::new("/r/cold/hotkeys/hotpub.txt"));
        assert!(Wallet::new("/r", "../x", "hot").is_err());
        assert!(Wallet::new("/r", "cold", "").is_err());
    }

    #[test]
    fn written_keys_read_back_and_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let w = Wallet::new(dir.path(), "w", "h").unwrap();
        let hot = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        w.write_hotkey(&hot, None, false).unwrap();
        assert_eq!(w.hotkey_keypair(&PasswordSource::EnvironmentOnly).unwrap().account(), hot.account());
        assert_eq!(w.hotkey_account().unwrap(), hot.account());
        assert!(w.write_hotkey(&hot, None, false).unwrap_err().to_string().contains("--overwrite"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [w.hotkey_path(), w.hotkeypub_path()] {
                assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
            }
        }
        assert_eq!(list(dir.path()).unwrap(), vec![("w".to_string(), vec!["h".to_string()])]);
    }
}
