//! The host's configuration: a TOML file, then environment variables, then
//! flags, validated into one typed [`Config`]. Unknown keys are refused with
//! the key that was probably meant.
//!
//! ```toml
//! plugins = ["target/release/libgpt.so"]
//!
//! [gpu]
//! backend = "auto"        # or vulkan, metal, dx12, gl (env NEURON_GPU_BACKEND)
//! adapter = "llvmpipe"    # only adapters whose name contains this (env NEURON_GPU_ADAPTER)
//!
//! [plugin.gpt]            # passed to the plugin named `gpt`, as TOML text
//! preset = "nano"
//! ```

use std::path::{Path, PathBuf};

use neuron_plugin_api::config::closest;

use crate::{
    error::{Error, Result},
    gpu::GpuOptions,
    net::{NetConfig, NET_KEYS},
    wallet::{WalletConfig, WALLET_KEYS},
};

#[derive(Clone, Debug, Default)]
pub struct Config {
    /// Plugin files to load.
    pub plugins: Vec<PathBuf>,
    pub gpu: GpuOptions,
    /// `[wallet]`: which wallet and hotkey (flags `--wallet.*` override).
    pub wallet: WalletConfig,
    /// `[net]`: the neuron's server and client.
    pub net: NetConfig,
    /// `[plugin.<name>]` sections.
    plugin_sections: toml::Table,
    /// The file this came from, if any.
    pub file: Option<PathBuf>,
}

const TOP_KEYS: &[&str] = &["plugins", "gpu", "plugin", "wallet", "net"];
const GPU_KEYS: &[&str] = &["backend", "adapter"];

fn unknown_key(section: &str, key: &str, known: &[&str]) -> Error {
    let hint = closest(key, known.iter().copied()).map(|k| format!(" (did you mean `{k}`?)")).unwrap_or_default();
    let place = if section.is_empty() { String::new() } else { format!(" in [{section}]") };
    Error::Config(format!("unknown configuration key `{key}`{place}{hint}"))
}

impl Config {
    /// Reads `file` (if given) and then the environment.
    pub fn load(file: Option<&Path>) -> Result<Config> {
        let mut config = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
                Self::parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
            }
            None => Config::default(),
        };
        config.file = file.map(Path::to_path_buf);
        let env = GpuOptions::from_env();
        if env.backend.is_some() {
            config.gpu.backend = env.backend;
        }
        if env.adapter.is_some() {
            config.gpu.adapter = env.adapter;
        }
        Ok(config)
    }

    /// Parses configuration text (no environment).
    pub fn parse(text: &str) -> Result<Config> {
        let table: toml::Table =
            text.parse().map_err(|e: toml::de::Error| Error::Config(format!("not valid TOML: {}", e.message())))?;
        let mut config = Config::default();
        for (key, value) in &table {
            match key.as_str() {
                "plugins" => {
                    let list =
                        value.as_array().ok_or_else(|| Error::Config("`plugins` must be a list of paths".into()))?;
                    for v in list {
                        let s = v.as_str().ok_or_else(|| Error::Config("`plugins` must be a list of paths".into()))?;
                        config.plugins.push(PathBuf::from(s));
                    }
                }
                "gpu" => {
                    let t = value.as_table().ok_or_else(|| Error::Config("`gpu` must be a table".into()))?;
                    for (k, v) in t {
                        let s =
                            v.as_str().ok_or_else(|| Error::Config(format!("`gpu.{k}` must be a string")))?.to_string();
                        match k.as_str() {
                            "backend" => config.gpu.backend = Some(s),
                            "adapter" => config.gpu.adapter = Some(s),
                            other => return Err(unknown_key("gpu", other, GPU_KEYS)),
                        }
                    }
                }
                "wallet" | "net" => {
                    let t = value.as_table().ok_or_else(|| Error::Config(format!("`{key}` must be a table")))?;
                    let known = if key == "wallet" { WALLET_KEYS } else { NET_KEYS };
                    if let Some(k) = t.keys().find(|k| !known.contains(&k.as_str())) {
                        return Err(unknown_key(key, k, known));
                    }
                    if key == "wallet" {
                        config.wallet = WalletConfig::from_table(t).map_err(Error::Config)?;
                    } else {
                        config.net = NetConfig::from_table(t).map_err(Error::Config)?;
                    }
                }
                "plugin" => {
                    let t = value
                        .as_table()
                        .ok_or_else(|| Error::Config("`plugin` must hold one table per plugin name".into()))?;
                    for (name, section) in t {
                        if !section.is_table() {
                            return Err(Error::Config(format!("`plugin.{name}` must be a table")));
                        }
                    }
                    config.plugin_sections = t.clone();
                }
                other => return Err(unknown_key("", other, TOP_KEYS)),
            }
        }
        Ok(config)
    }

    /// The `[plugin.<name>]` section as TOML text ("" when absent).
    pub fn plugin_section(&self, name: &str) -> String {
        match self.plugin_sections.get(name).and_then(|v| v.as_table()) {
            Some(t) => toml::to_string(t).unwrap_or_default(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plugins_gpu_and_sections() {
        let c = Config::parse("plugins = [\"a.so\"]\n[gpu]\nbackend = \"vulkan\"\n[plugin.gpt]\npreset = \"nano\"\n")
            .unwrap();
        assert_eq!(c.plugins, vec![PathBuf::from("a.so")]);
        assert_eq!(c.gpu.backend.as_deref(), Some("vulkan"));
        assert_eq!(c.plugin_section("gpt").trim(), "preset = \"nano\"");
        assert_eq!(c.plugin_section("other"), "");
    }

    #[test]
    fn parses_wallet_and_net() {
        let c = Config::parse(
            "[wallet]\nname = \"cold\"\nhotkey = \"hot\"\npath = \"/w\"\n\
             [net]\nbind = \"127.0.0.1:9000\"\nrequire_validator_permit = true\nmin_stake_tao = 1.5\ntimeout_s = 3\n",
        )
        .unwrap();
        let w = c.wallet.wallet().unwrap();
        assert_eq!(w.hotkey_path(), PathBuf::from("/w/cold/hotkeys/hot"));
        assert_eq!(c.net.server.bind.port(), 9000);
        assert!(c.net.server.access.require_validator_permit);
        assert_eq!(c.net.server.access.min_stake_rao, 1_500_000_000);
        assert_eq!(c.net.client.timeout, std::time::Duration::from_secs(3));
        let e = Config::parse("[net]\nbind = \"nowhere\"\n").unwrap_err().to_string();
        assert!(e.contains("must be an address and port"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_a_suggestion() {
        let e = Config::parse("[gpu]\nbackends = \"vulkan\"\n").unwrap_err().to_string();
        assert_eq!(e, "unknown configuration key `backends` in [gpu] (did you mean `backend`?)");
        let e = Config::parse("[net]\nbindd = \"x\"\n").unwrap_err().to_string();
        assert_eq!(e, "unknown configuration key `bindd` in [net] (did you mean `bind`?)");
        let e = Config::parse("plugin = 3\n").unwrap_err().to_string();
        assert!(e.contains("`plugin` must hold one table"), "{e}");
    }
}
