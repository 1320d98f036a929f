//! One keyfile on disk, in the Bittensor SDK's format.
//!
//! Plain keyfiles are JSON: `secretPhrase`, `secretSeed`, `privateKey`
//! (`0x` hex), `publicKey` and `accountId` (`0x` hex of the public key),
//! `ss58Address`, and `cryptoType` (1 sr25519, 0 ed25519; absent means
//! sr25519). Public-only files (`coldkeypub.txt`, `hotkeys/<name>pub.txt`)
//! carry no secret fields. A keypair is rebuilt from the phrase, else the
//! seed, else the private key, and checked against the stored address.
//!
//! Encrypted keyfiles are `$NACL` followed by a 24-byte nonce and a NaCl
//! secretbox (XSalsa20-Poly1305, tag first) of the JSON, under a key derived
//! from the password with Argon2i (version 0x13, libsodium's "sensitive"
//! limits: 8 passes over 512 MiB, one lane) and the SDK's fixed salt.
//!
//! Files are written owner-only (0600) to a temporary sibling and renamed into
//! place, in directories created 0700.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::Engine as _;
use crypto_secretbox::{aead::Aead, KeyInit, XSalsa20Poly1305};
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::keys::{AccountId, Keypair, Scheme};
use crate::error::{Error, Result};

const NACL_PREFIX: &[u8] = b"$NACL";
/// The salt the SDK derives every keyfile key with.
const NACL_SALT: &[u8; 16] = b"\x13q\x83\xdf\xf1Z\t\xbc\x9c\x90\xb5Q\x879\xe9\xb1";
/// libsodium's `crypto_pwhash_argon2i_OPSLIMIT_SENSITIVE` and `MEMLIMIT_SENSITIVE` (in KiB).
const ARGON2I_PASSES: u32 = 8;
const ARGON2I_MEMORY_KIB: u32 = 512 * 1024;
const NONCE_LEN: usize = 24;

/// Plain-text environment variable holding the password of every encrypted
/// keyfile neuron-host opens (the SDK's own per-file `BT_PW_*` variables are
/// read too).
pub const PASSWORD_ENV: &str = "NEURON_WALLET_PASSWORD";

fn keyfile_error(path: &Path, problem: impl Into<String>) -> Error {
    Error::Keyfile { path: path.to_path_buf(), problem: problem.into() }
}

/// What a keyfile holds: a full keypair, or only a public key.
#[derive(Debug)]
pub enum KeyfileContent {
    Keypair(Box<Keypair>),
    Public { account: AccountId, scheme: Scheme },
}

impl KeyfileContent {
    pub fn account(&self) -> AccountId {
        match self {
            KeyfileContent::Keypair(k) => k.account(),
            KeyfileContent::Public { account, .. } => *account,
        }
    }
}

/// Where a password for an encrypted keyfile comes from.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// This password.
    Given(Zeroizing<String>),
    /// `NEURON_WALLET_PASSWORD`, then the SDK's `BT_PW_<path>` variable, then a
    /// prompt on the terminal when there is one.
    EnvironmentOrPrompt,
    /// The environment only (services with no terminal).
    EnvironmentOnly,
}

impl PasswordSource {
    fn resolve(&self, path: &Path) -> Result<Zeroizing<String>> {
        if let PasswordSource::Given(p) = self {
            return Ok(p.clone());
        }
        if let Some(p) = std::env::var_os(PASSWORD_ENV) {
            let p = p
                .into_string()
                .map_err(|_| Error::Wallet(format!("{PASSWORD_ENV} is not valid UTF-8: set it to the password")))?;
            return Ok(Zeroizing::new(p));
        }
        if let Some(p) = sdk_env_password(path)? {
            return Ok(p);
        }
        let hint = format!("set {PASSWORD_ENV} (or the SDK's {}) to its password", sdk_env_var_name(path));
        if matches!(self, PasswordSource::EnvironmentOnly) {
            return Err(keyfile_error(path, format!("is encrypted: {hint}")));
        }
        prompt_password(&format!("Password for {}: ", path.display()))
            .map_err(|e| keyfile_error(path, format!("is encrypted and no password could be read ({e}): {hint}")))
    }
}

/// Reads a password from the terminal without echo; an error when standard
/// input is not a terminal (a service, a pipe, CI), so nothing ever waits on
/// a terminal nobody watches.
pub fn prompt_password(prompt: &str) -> std::io::Result<Zeroizing<String>> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return Err(std::io::Error::other("standard input is not a terminal"));
    }
    rpassword::prompt_password(prompt).map(Zeroizing::new)
}

/// The SDK's per-keyfile password variable: `BT_PW_` and the path with
/// separators and dots turned into underscores, upper-cased.
pub fn sdk_env_var_name(path: &Path) -> String {
    let normalized: String = path
        .to_string_lossy()
        .chars()
        .map(|c| if c == std::path::MAIN_SEPARATOR || c == '.' { '_' } else { c })
        .collect();
    format!("BT_PW_{}", normalized.to_uppercase())
}

/// The SDK stores a password in its variable as base64 of the password XORed
/// with the variable's name (obfuscation, not protection).
fn sdk_env_password(path: &Path) -> Result<Option<Zeroizing<String>>> {
    let name = sdk_env_var_name(path);
    let Some(value) = std::env::var_os(&name) else { return Ok(None) };
    let bad = || Error::Wallet(format!("{name} does not hold a password as the Bittensor SDK stores it: unset it"));
    let value = value.into_string().map_err(|_| bad())?;
    let bytes = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(value.trim()).map_err(|_| bad())?);
    let key = name.as_bytes();
    let plain: Vec<u8> = bytes.iter().enumerate().map(|(i, b)| b ^ key[i % key.len()]).collect();
    String::from_utf8(plain).map(|p| Some(Zeroizing::new(p))).map_err(|_| bad())
}

/// Whether keyfile bytes are encrypted in a format the SDK writes or once wrote.
pub fn encryption_of(data: &[u8]) -> Option<&'static str> {
    if data.starts_with(NACL_PREFIX) {
        Some("NaCl")
    } else if data.starts_with(b"$ANSIBLE_VAULT") {
        Some("Ansible Vault")
    } else if data.starts_with(b"gAAAAA") {
        Some("legacy Fernet")
    } else {
        None
    }
}

fn derive_key(password: &str) -> Result<Zeroizing<[u8; 32]>> {
    let params = argon2::Params::new(ARGON2I_MEMORY_KIB, ARGON2I_PASSES, 1, Some(32))
        .map_err(|e| Error::Wallet(format!("argon2 parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2i, argon2::Version::V0x13, params);
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(password.as_bytes(), NACL_SALT, key.as_mut())
        .map_err(|e| Error::Wallet(format!("deriving the keyfile key: {e}")))?;
    Ok(key)
}

/// `$NACL` encryption of keyfile bytes, as the SDK writes encrypted keyfiles.
pub fn encrypt(plain: &[u8], password: &str) -> Result<Vec<u8>> {
    let key = derive_key(password)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| Error::Wallet(format!("no randomness from the system: {e}")))?;
    let sealed =
        cipher.encrypt(&nonce.into(), plain).map_err(|_| Error::Wallet("encrypting a keyfile failed".into()))?;
    let mut out = Vec::with_capacity(NACL_PREFIX.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(NACL_PREFIX);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Opens `$NACL` keyfile bytes; `Ok(None)` when the password is wrong.
pub fn decrypt(data: &[u8], password: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let body = data.strip_prefix(NACL_PREFIX).ok_or_else(|| Error::Wallet("not a $NACL keyfile".into()))?;
    if body.len() < NONCE_LEN + 16 {
        return Err(Error::Wallet("the $NACL keyfile is truncated".into()));
    }
    let (nonce, sealed) = body.split_at(NONCE_LEN);
    let key = derive_key(password)?;
    let cipher = XSalsa20Poly1305::new(key.as_ref().into());
    Ok(cipher.decrypt(nonce.into(), sealed).ok().map(Zeroizing::new))
}

/// Parses plain keyfile JSON. `Err` carries a problem that names no secret.
pub fn parse(data: &[u8]) -> std::result::Result<KeyfileContent, String> {
    let text = std::str::from_utf8(data).map_err(|_| "is neither keyfile JSON nor encrypted".to_string())?;
    let value: Value = serde_json::from_str(text).map_err(|_| "is not keyfile JSON".to_string())?;
    let map = value.as_object().ok_or("is not a JSON object")?;
    let scheme = match map.get("cryptoType") {
        None | Some(Value::Null) => Some(Scheme::Sr25519),
        Some(Value::Number(n)) => n.as_u64().and_then(|c| u8::try_from(c).ok()).and_then(Scheme::from_code),
        Some(Value::String(s)) => Scheme::parse(s),
        Some(_) => None,
    }
    .ok_or("has an unknown cryptoType (expected 1 for sr25519 or 0 for ed25519)")?;
    let stored = match map.get("ss58Address").or_else(|| map.get(" ss58Address")) {
        None => None,
        Some(v) => Some(
            v.as_str().and_then(|s| AccountId::from_ss58(s).ok()).ok_or("has an ss58Address that is not an address")?,
        ),
    };
    let field = |name: &str| map.get(name).and_then(Value::as_str);
    let hex_field = |name: &str| -> std::result::Result<Option<Zeroizing<Vec<u8>>>, String> {
        match field(name) {
            None => Ok(None),
            Some(s) => hex::decode(s.trim_start_matches("0x"))
                .map(|b| Some(Zeroizing::new(b)))
                .map_err(|_| format!("has a {name} that is not hex")),
        }
    };
    type Derive<'a> = Box<dyn Fn(Scheme) -> std::result::Result<Keypair, String> + 'a>;
    let derive: Option<(&str, Derive)> = if let Some(phrase) = field("secretPhrase") {
        Some(("secretPhrase", Box::new(move |s| Keypair::from_phrase(phrase, None, s).map_err(|e| e.0))))
    } else if let Some(seed) = hex_field("secretSeed")? {
        Some(("secretSeed", Box::new(move |s| Keypair::from_seed(&seed, s).map_err(|e| e.0))))
    } else if let Some(private) = hex_field("privateKey")? {
        Some(("privateKey", Box::new(move |s| Keypair::from_private_key(&private, s).map_err(|e| e.0))))
    } else {
        None
    };
    let Some((source, derive)) = derive else {
        let account = match (stored, hex_field("publicKey")?) {
            (Some(a), _) => a,
            (None, Some(pk)) => {
                AccountId(pk.as_slice().try_into().map_err(|_| "has a publicKey that is not 32 bytes")?)
            }
            (None, None) => return Err("holds no key (no secretPhrase, secretSeed, privateKey or ss58Address)".into()),
        };
        return Ok(KeyfileContent::Public { account, scheme });
    };
    let keypair = derive(scheme).map_err(|e| format!("has an unusable {source}: {e}"))?;
    match stored {
        Some(a) if a != keypair.account() => {
            // Old keyfiles mislabel or omit cryptoType; the stored address says which key it is.
            match derive(scheme.other()) {
                Ok(other) if other.account() == a => Ok(KeyfileContent::Keypair(Box::new(other))),
                _ => Err(format!("has an ss58Address that does not match the key its {source} derives")),
            }
        }
        _ => Ok(KeyfileContent::Keypair(Box::new(keypair))),
    }
}

/// Keyfile JSON for a keypair, with every field the SDK writes.
pub fn serialize_keypair(keypair: &Keypair) -> Zeroizing<Vec<u8>> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Fields<'a> {
        account_id: &'a str,
        public_key: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret_phrase: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret_seed: Option<&'a str>,
        private_key: &'a str,
        ss58_address: &'a str,
        crypto_type: u8,
    }
    let account = keypair.account();
    let public = account.to_hex();
    let seed = keypair.seed().map(|s| Zeroizing::new(format!("0x{}", hex::encode(s))));
    let private = Zeroizing::new(format!("0x{}", hex::encode(keypair.private_key().as_slice())));
    let fields = Fields {
        account_id: &public,
        public_key: &public,
        secret_phrase: keypair.phrase(),
        secret_seed: seed.as_deref().map(String::as_str),
        private_key: &private,
        ss58_address: &account.to_ss58(),
        crypto_type: keypair.scheme().code(),
    };
    Zeroizing::new(serde_json::to_vec(&fields).expect("keyfile fields serialize"))
}

/// Keyfile JSON for a public key alone (`coldkeypub.txt`, `hotkeys/<name>pub.txt`).
pub fn serialize_public(account: AccountId, scheme: Scheme) -> Vec<u8> {
    let value = json!({
        "accountId": account.to_hex(),
        "publicKey": account.to_hex(),
        "ss58Address": account.to_ss58(),
        "cryptoType": scheme.code(),
    });
    serde_json::to_vec(&value).expect("a JSON object serializes")
}

/// Reads a keyfile, decrypting it with a password from `password` when it is
/// encrypted. Warns when a file holding a private key is readable by others.
pub fn read(path: &Path, password: &PasswordSource) -> Result<KeyfileContent> {
    let data = Zeroizing::new(read_bytes(path)?);
    let plain = match encryption_of(&data) {
        None => data,
        Some("NaCl") => {
            let pw = password.resolve(path)?;
            decrypt(&data, &pw)?
                .ok_or_else(|| keyfile_error(path, "cannot be decrypted with that password: give the right one"))?
        }
        Some(other) => {
            return Err(keyfile_error(
                path,
                format!(
                    "is encrypted with the {other} format, which neuron-host does not read: re-encrypt it with `btcli wallet update`"
                ),
            ))
        }
    };
    let content = parse(&plain).map_err(|problem| keyfile_error(path, problem))?;
    if matches!(content, KeyfileContent::Keypair(_)) {
        warn_if_readable_by_others(path);
    }
    Ok(content)
}

/// Reads a keyfile's bytes, naming the file when it cannot.
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => keyfile_error(path, "does not exist: create it with `neuron-host wallet new`"),
        _ => Error::Io { path: path.to_path_buf(), source: e },
    })
}

/// Whether a keyfile is encrypted, without asking for a password.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    Ok(encryption_of(&read_bytes(path)?).is_some())
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o044 != 0 {
                tracing::warn!(
                    "private keyfile {} is readable by other users: run `chmod 600 {}`",
                    path.display(),
                    path.display()
                );
            }
        }
    }
}

/// Writes keyfile bytes owner-only (0600), atomically: a temporary sibling
/// file, synced, renamed into place. Refuses to replace an existing file
/// unless `overwrite`.
pub fn write(path: &Path, data: &[u8], overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        return Err(keyfile_error(path, "already exists: pass --overwrite to replace it"));
    }
    let io = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| Error::Io { path: p, source }
    };
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(io(dir))?;
    }
    use std::io::Write as _;
    let how = crate::fsutil::Replace { mode: Some(0o600), keep_previous: &[] };
    crate::fsutil::replace_file(path, how, |f| f.write_all(data)).map(|_| ()).map_err(io(path))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypairs_round_trip_through_json() {
        for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
            let k = Keypair::generate(scheme, 12).unwrap();
            let KeyfileContent::Keypair(back) = parse(&serialize_keypair(&k)).unwrap() else { panic!("a keypair") };
            assert_eq!((back.account(), back.scheme(), back.phrase()), (k.account(), scheme, k.phrase()));
            let KeyfileContent::Public { account, scheme: s } = parse(&serialize_public(k.account(), scheme)).unwrap()
            else {
                panic!("a public key")
            };
            assert_eq!((account, s), (k.account(), scheme));
        }
    }

    #[test]
    fn seed_then_private_key_are_used_when_there_is_no_phrase() {
        let k = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let seed_only = format!(r#"{{"secretSeed":"0x{}"}}"#, hex::encode(k.seed().unwrap()));
        assert_eq!(parse(seed_only.as_bytes()).unwrap().account(), k.account());
        let private_only = format!(r#"{{"privateKey":"0x{}"}}"#, hex::encode(k.private_key().as_slice()));
        assert_eq!(parse(private_only.as_bytes()).unwrap().account(), k.account());
    }

    #[test]
    fn a_mismatched_address_or_garbage_is_refused_without_secrets() {
        let k = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let other = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let text = format!(r#"{{"secretPhrase":"{}","ss58Address":"{}"}}"#, k.phrase().unwrap(), other.ss58());
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(e.contains("does not match") && !e.contains(k.phrase().unwrap()), "{e}");
        assert!(parse(b"{}").unwrap_err().contains("holds no key"));
        assert!(parse(b"\xff\xfe").is_err());
        assert!(parse(br#"{"cryptoType":7,"ss58Address":"x"}"#).is_err());
    }

    #[test]
    fn the_sdk_password_variable_is_decoded() {
        let path = Path::new("/tmp/w/.x/coldkey");
        assert_eq!(sdk_env_var_name(path), "BT_PW__TMP_W__X_COLDKEY");
    }
}
