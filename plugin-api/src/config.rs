//! Reading a plugin's configuration section.
//!
//! The host passes each plugin its own TOML section as text. [`PluginConfig`]
//! reads typed values with defaults and, at [`PluginConfig::finish`], refuses
//! keys nobody read, suggesting the key that was probably meant.
//!
//! A scorer's section may also carry the network preset's scoring values (`prune_len`,
//! `logits_divergence`, ...) in the table [`NETWORK_DEFAULTS`]: [`PluginConfig::get`] returns the
//! section's own value, else the network's, else the plugin's default. Network values a plugin
//! never asks for are not an error (they are meant for whichever scorer runs); keys in the
//! section itself still must be known.

use std::collections::BTreeSet;

use crate::{PluginError, Result};

/// The table of a plugin's section that holds the network preset's values (set by the host).
pub const NETWORK_DEFAULTS: &str = "_network_defaults";

pub struct PluginConfig {
    plugin: String,
    table: toml::Table,
    network: toml::Table,
    read: BTreeSet<String>,
    known: BTreeSet<String>,
}

/// A value type [`PluginConfig`] can read.
pub trait ConfigValue: Sized {
    const TYPE: &'static str;
    fn from_toml(value: &toml::Value) -> Option<Self>;
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl ConfigValue for $t {
            const TYPE: &'static str = "an integer";
            fn from_toml(value: &toml::Value) -> Option<Self> {
                value.as_integer().and_then(|v| <$t>::try_from(v).ok())
            }
        }
    )*};
}
int_value!(u8, u16, u32, u64, usize, i32, i64);

impl ConfigValue for f64 {
    const TYPE: &'static str = "a number";
    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_float().or_else(|| value.as_integer().map(|v| v as f64))
    }
}

impl ConfigValue for f32 {
    const TYPE: &'static str = "a number";
    fn from_toml(value: &toml::Value) -> Option<Self> {
        f64::from_toml(value).map(|v| v as f32)
    }
}

impl ConfigValue for bool {
    const TYPE: &'static str = "true or false";
    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_bool()
    }
}

impl ConfigValue for String {
    const TYPE: &'static str = "a string";
    fn from_toml(value: &toml::Value) -> Option<Self> {
        value.as_str().map(str::to_string)
    }
}

impl PluginConfig {
    /// Parses the section text given to a constructor.
    pub fn parse(plugin: &str, text: &str) -> Result<Self> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            PluginError::config(format!("configuration of plugin {plugin} is not valid TOML: {}", e.message()))
        })?;
        let network = match table.remove(NETWORK_DEFAULTS) {
            None => toml::Table::new(),
            Some(toml::Value::Table(t)) => t,
            Some(other) => {
                return Err(PluginError::config(format!(
                    "plugin {plugin}: `{NETWORK_DEFAULTS}` must be a table of network defaults, found {other}"
                )))
            }
        };
        Ok(Self { plugin: plugin.to_string(), table, network, read: BTreeSet::new(), known: BTreeSet::new() })
    }

    /// Reads `key`: the section's value, else the network's (see [`NETWORK_DEFAULTS`]), else
    /// `default`.
    pub fn get<T: ConfigValue>(&mut self, key: &str, default: T) -> Result<T> {
        Ok(self.opt(key)?.unwrap_or(default))
    }

    /// Reads `key` if the section or the network's defaults give it.
    pub fn opt<T: ConfigValue>(&mut self, key: &str) -> Result<Option<T>> {
        self.known.insert(key.to_string());
        let (value, from) = match (self.table.get(key), self.network.get(key)) {
            (Some(v), _) => (v, ""),
            (None, Some(v)) => (v, " (the network preset's value)"),
            (None, None) => return Ok(None),
        };
        self.read.insert(key.to_string());
        T::from_toml(value).map(Some).ok_or_else(|| {
            PluginError::config(format!("plugin {}: `{key}`{from} must be {}, found {}", self.plugin, T::TYPE, value))
        })
    }

    /// Whether `key` was given, in the section or by the network.
    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key) || self.network.contains_key(key)
    }

    /// Refuses keys that no `get`/`opt` asked for.
    pub fn finish(self) -> Result<()> {
        for key in self.table.keys() {
            if !self.read.contains(key) {
                let hint = closest(key, self.known.iter().map(String::as_str))
                    .map(|k| format!(" (did you mean `{k}`?)"))
                    .unwrap_or_default();
                return Err(PluginError::config(format!(
                    "plugin {}: unknown configuration key `{key}`{hint}",
                    self.plugin
                )));
            }
        }
        Ok(())
    }
}

/// The candidate within edit distance 2 (or a third of the key's length) of `key`.
pub fn closest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (key.len() / 3).max(2);
    candidates.map(|c| (edit_distance(key, c), c)).filter(|&(d, _)| d <= limit).min().map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_typed_values_and_refuses_unknown_keys() {
        let mut c = PluginConfig::parse("gpt", "n_layer = 4\nn_heads = 2\nlr = 1").unwrap();
        assert_eq!(c.get("n_layer", 1u32).unwrap(), 4);
        assert_eq!(c.get("lr", 0.5f32).unwrap(), 1.0);
        assert_eq!(c.get("n_head", 1u32).unwrap(), 1);
        let err = c.finish().unwrap_err();
        assert_eq!(err.message.as_str(), "plugin gpt: unknown configuration key `n_heads` (did you mean `n_head`?)");
    }

    #[test]
    fn network_defaults_fill_what_the_section_leaves_out_and_extra_ones_are_no_error() {
        let text =
            "prune_len = 3\n[_network_defaults]\nprune_len = 10\nlogits_divergence = 0.5\nscaling_law_power = 0.4\n";
        let mut c = PluginConfig::parse("shapley", text).unwrap();
        assert_eq!(c.get("prune_len", 4u32).unwrap(), 3, "the section wins");
        assert_eq!(c.get("logits_divergence", 0.1f32).unwrap(), 0.5, "then the network");
        assert_eq!(c.get("temperature", 1.0f32).unwrap(), 1.0, "then the default");
        c.finish().expect("scaling_law_power was never asked for: meant for another scorer");
        let mut c = PluginConfig::parse("loss", "[_network_defaults]\nprune_len = \"ten\"").unwrap();
        let err = c.get("prune_len", 1u32).unwrap_err();
        assert!(err.message.contains("`prune_len` (the network preset's value) must be an integer"), "{err}");
        assert!(PluginConfig::parse("x", "_network_defaults = 3").is_err());
    }

    #[test]
    fn wrong_type_names_the_key() {
        let mut c = PluginConfig::parse("gpt", "n_layer = \"four\"").unwrap();
        let err = c.get("n_layer", 1u32).unwrap_err();
        assert!(err.message.contains("`n_layer` must be an integer"), "{err}");
    }

    #[test]
    fn bad_toml_is_one_line() {
        let err = PluginConfig::parse("gpt", "n_layer = ").err().unwrap();
        assert!(!err.message.contains('\n'), "{err}");
        assert!(err.message.starts_with("configuration of plugin gpt is not valid TOML"), "{err}");
    }
}
