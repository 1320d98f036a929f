//! `neuron-host wallet new|show|list`: create and inspect wallets in the
//! Bittensor SDK's layout (the SDK and `btcli` read what `new` writes).

use zeroize::Zeroizing;

use crate::{
    error::{Error, Result},
    wallet::{self, keyfile, Scheme, Wallet, WalletConfig, PASSWORD_ENV},
};

/// What `wallet new` creates.
#[derive(Clone, Debug)]
pub struct NewOptions {
    /// Phrase length (12, 15, 18, 21 or 24 words).
    pub words: usize,
    /// Encrypt the coldkey (the SDK's default).
    pub encrypt_coldkey: bool,
    /// Encrypt the hotkey too (a running neuron then needs the password).
    pub encrypt_hotkey: bool,
    /// Replace existing keyfiles.
    pub overwrite: bool,
    pub scheme: Scheme,
}

impl Default for NewOptions {
    fn default() -> Self {
        NewOptions {
            words: 12,
            encrypt_coldkey: true,
            encrypt_hotkey: false,
            overwrite: false,
            scheme: Scheme::Sr25519,
        }
    }
}

/// Creates the coldkey (unless the wallet has one) and the hotkey, and prints
/// their addresses and the phrases to write down.
pub fn new(config: &WalletConfig, options: &NewOptions) -> Result<()> {
    let w = config.wallet()?;
    let need_password = options.encrypt_hotkey || (options.encrypt_coldkey && !has_coldkey(&w));
    let password = if need_password { Some(new_password()?) } else { None };
    let encrypt_with = |yes: bool| password.as_deref().filter(|_| yes).map(String::as_str);
    if !has_coldkey(&w) || options.overwrite {
        make_key(options, "coldkey", |k| {
            w.write_coldkey(k, encrypt_with(options.encrypt_coldkey), options.overwrite).map(|()| w.coldkey_path())
        })?;
        println!("  (write the coldkey phrase down: it is the only way to recover the coldkey)");
    } else {
        println!("coldkey      {}  (kept)", w.coldkey_account()?);
    }
    make_key(options, "hotkey", |k| {
        w.write_hotkey(k, encrypt_with(options.encrypt_hotkey), options.overwrite).map(|()| w.hotkey_path())
    })?;
    Ok(())
}

/// Generates a key, writes it with `write`, and prints its address, file and phrase.
fn make_key(
    options: &NewOptions,
    role: &str,
    write: impl FnOnce(&wallet::Keypair) -> Result<std::path::PathBuf>,
) -> Result<()> {
    let key = wallet::Keypair::generate(options.scheme, options.words)?;
    let path = write(&key)?;
    println!("{role:<12} {}  {}", key.ss58(), path.display());
    println!("{role} phrase:");
    println!("  {}", key.phrase().expect("a generated key keeps its phrase"));
    Ok(())
}

fn has_coldkey(w: &Wallet) -> bool {
    w.coldkey_path().exists()
}

/// A new password: `NEURON_WALLET_PASSWORD`, else asked twice on the terminal.
fn new_password() -> Result<Zeroizing<String>> {
    if let Some(p) = std::env::var_os(PASSWORD_ENV) {
        let p = p.into_string().map_err(|_| Error::Wallet(format!("{PASSWORD_ENV} is not valid UTF-8")))?;
        if p.is_empty() {
            return Err(Error::Wallet(format!("{PASSWORD_ENV} is empty: set it to the password to encrypt with")));
        }
        return Ok(Zeroizing::new(p));
    }
    let no_terminal = |e: std::io::Error| {
        Error::Wallet(format!(
            "cannot read a password ({e}): set {PASSWORD_ENV}, or pass --no-password to leave the key unencrypted"
        ))
    };
    let first = keyfile::prompt_password("New password: ").map_err(no_terminal)?;
    if first.is_empty() {
        return Err(Error::Wallet("the password is empty: choose one, or pass --no-password".into()));
    }
    let again = keyfile::prompt_password("Retype password: ").map_err(no_terminal)?;
    if *first != *again {
        return Err(Error::Wallet("the passwords differ: run the command again".into()));
    }
    Ok(first)
}

/// Prints a wallet's addresses and files, without unlocking anything.
pub fn show(config: &WalletConfig) -> Result<()> {
    let w = config.wallet()?;
    if !w.dir().is_dir() {
        return Err(Error::Wallet(format!(
            "no wallet `{}` in {}: create it with `neuron-host wallet new --wallet.name {}`",
            w.name,
            w.root.display(),
            w.name
        )));
    }
    println!("wallet       {}  {}", w.name, w.dir().display());
    match w.coldkey_account() {
        Ok(a) => println!("coldkey      {a}  {}", describe(&w.coldkey_path())),
        Err(e) => println!("coldkey      unavailable: {e}"),
    }
    match w.hotkey_account() {
        Ok(a) => println!("hotkey       {a}  {} ({})", w.hotkey, describe(&w.hotkey_path())),
        Err(e) => println!("hotkey       {} unavailable: {e}", w.hotkey),
    }
    Ok(())
}

fn describe(path: &std::path::Path) -> String {
    match keyfile::read_bytes(path) {
        Ok(bytes) => match keyfile::encryption_of(&bytes) {
            Some(kind) => format!("{kind}-encrypted"),
            None => "unencrypted".to_string(),
        },
        Err(_) => "no secret keyfile".to_string(),
    }
}

/// Lists the wallets under the wallet root with their hotkeys' addresses.
pub fn list(config: &WalletConfig) -> Result<()> {
    let root = config.wallet()?.root;
    let wallets = wallet::list(&root)?;
    if wallets.is_empty() {
        println!("no wallets in {} (create one with `neuron-host wallet new`)", root.display());
        return Ok(());
    }
    println!("wallets in {}", root.display());
    for (name, hotkeys) in wallets {
        let cold = Wallet::new(&root, &name, "default").and_then(|w| w.coldkey_account());
        println!("{name}  {}", cold.map(|a| a.to_string()).unwrap_or_else(|_| "(no coldkeypub.txt)".into()));
        for hotkey in hotkeys {
            let hot = Wallet::new(&root, &name, &hotkey).and_then(|w| w.hotkey_account());
            println!("  {hotkey}  {}", hot.map(|a| a.to_string()).unwrap_or_else(|_| "(locked)".into()));
        }
    }
    Ok(())
}
