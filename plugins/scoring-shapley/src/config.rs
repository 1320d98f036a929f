//! The `[plugin.scoring-shapley]` section: keys, defaults and their checks.

use neuron_plugin_api::{PluginConfig, PluginError, Result};

/// ln(8.8e13): Kaplan et al.'s N_c, the parameter count at a loss of 1 nat
/// (the same constant as `shaders/shapley_synergy.wgsl`).
const LN_PARAMS_AT_ONE_NAT: f64 = 32.108_359;
/// Kaplan et al.'s alpha_N.
const ALPHA: f64 = 0.076;
/// Largest exponent a value may reach: e^85 = 8e36 leaves room for a base plus
/// a synergy (each at most that) below f32's 3.4e38.
const MAX_EXPONENT: f64 = 85.0;

/// The scorer's effective configuration. Defaults are the Bittensor 3.x core
/// validator's (subtensor's initial hyperparameters), except `prune_len`.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapleyConfig {
    /// Power the parameter count of a miner's own loss is raised to.
    pub scaling_law_power: f32,
    /// Power the parameter counts of a pair's losses are raised to.
    pub synergy_scaling_law_power: f32,
    /// Weight of the divergence excess in the penalty `1 + logits_divergence * excess`; 0 turns it off.
    pub logits_divergence: f32,
    /// How many miners (lowest loss first) are kept per step; 0 keeps every usable one.
    pub prune_len: u32,
    /// Least probability mass assumed outside a top k (as scoring-loss's `floor`).
    pub floor: f32,
    /// Losses below this count as this (the reference's entropy of natural text, 1.69 nats).
    pub min_loss: f32,
}

impl Default for ShapleyConfig {
    fn default() -> Self {
        Self {
            scaling_law_power: 0.5,
            synergy_scaling_law_power: 0.5,
            logits_divergence: 0.02,
            prune_len: 0,
            floor: 1e-6,
            min_loss: 1.69,
        }
    }
}

impl ShapleyConfig {
    /// Reads the section text; unknown keys and values outside their range are
    /// refused with one line naming the key.
    pub fn parse(text: &str) -> Result<Self> {
        let d = Self::default();
        let mut cfg = PluginConfig::parse(crate::NAME, text)?;
        let c = Self {
            scaling_law_power: cfg.get("scaling_law_power", d.scaling_law_power)?,
            synergy_scaling_law_power: cfg.get("synergy_scaling_law_power", d.synergy_scaling_law_power)?,
            logits_divergence: cfg.get("logits_divergence", d.logits_divergence)?,
            prune_len: cfg.get("prune_len", d.prune_len)?,
            floor: cfg.get("floor", d.floor)?,
            min_loss: cfg.get("min_loss", d.min_loss)?,
        };
        cfg.finish()?;
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let refuse = |key: &str, rule: &str, value: f32| {
            Err(PluginError::config(format!("plugin {}: {key} must be {rule}, got {value}", crate::NAME)))
        };
        for (key, power) in [
            ("scaling_law_power", self.scaling_law_power),
            ("synergy_scaling_law_power", self.synergy_scaling_law_power),
        ] {
            if !(power > 0.0 && power.is_finite()) {
                return refuse(key, "positive", power);
            }
        }
        if !(self.logits_divergence >= 0.0 && self.logits_divergence.is_finite()) {
            return refuse("logits_divergence", "0 or more", self.logits_divergence);
        }
        if !(self.floor > 0.0 && self.floor < 1.0) {
            return refuse("floor", "in (0, 1)", self.floor);
        }
        if !(self.min_loss > 0.0 && self.min_loss.is_finite()) {
            return refuse("min_loss", "positive", self.min_loss);
        }
        // The largest value a loss can map to is N(min_loss)^power; keep it inside f32.
        let span = LN_PARAMS_AT_ONE_NAT - f64::from(self.min_loss).ln() / ALPHA;
        for (key, power) in [
            ("scaling_law_power", self.scaling_law_power),
            ("synergy_scaling_law_power", self.synergy_scaling_law_power),
        ] {
            if f64::from(power) * span > MAX_EXPONENT {
                return Err(PluginError::config(format!(
                    "plugin {}: {key} = {power} with min_loss = {} maps losses to values beyond f32; use a power of at most {:.3}",
                    crate::NAME,
                    self.min_loss,
                    MAX_EXPONENT / span
                )));
            }
        }
        Ok(())
    }

    /// The effective configuration as TOML, for `describe`.
    pub fn to_toml(&self) -> String {
        format!(
            "scaling_law_power = {}\nsynergy_scaling_law_power = {}\nlogits_divergence = {}\nprune_len = {}\nfloor = {:e}\nmin_loss = {}\n",
            self.scaling_law_power,
            self.synergy_scaling_law_power,
            self.logits_divergence,
            self.prune_len,
            self.floor,
            self.min_loss
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_describe() {
        let d = ShapleyConfig::parse("").unwrap();
        assert_eq!(d, ShapleyConfig::default());
        assert_eq!(ShapleyConfig::parse(&d.to_toml()).unwrap(), d);
    }

    #[test]
    fn errors_are_one_line_naming_the_key() {
        for (text, needle) in [
            ("scaling_law_power = 0", "scaling_law_power must be positive"),
            ("synergy_scaling_law_power = -1", "synergy_scaling_law_power must be positive"),
            ("logits_divergence = -0.5", "logits_divergence must be 0 or more"),
            ("floor = 1", "floor must be in (0, 1)"),
            ("min_loss = 0", "min_loss must be positive"),
            ("prune_len = -2", "`prune_len` must be an integer"),
            ("prune_len = 1.5", "`prune_len` must be an integer"),
            ("scaling_law_power = \"half\"", "`scaling_law_power` must be a number"),
            ("scaling_law_power = 4", "scaling_law_power = 4 with min_loss = 1.69 maps losses to values beyond f32"),
            ("synergy_power = 0.5", "unknown configuration key `synergy_power`"),
            ("prune_length = 3", "unknown configuration key `prune_length` (did you mean `prune_len`?)"),
        ] {
            let err = ShapleyConfig::parse(text).unwrap_err();
            assert!(err.message.contains(needle), "{text}: {err}");
            assert!(err.message.starts_with("plugin scoring-shapley: "), "{text}: {err}");
            assert!(!err.message.contains('\n'), "{text}: {err}");
        }
        // The largest power the check allows still gives finite values.
        let ok = ShapleyConfig::parse("scaling_law_power = 3.3").unwrap();
        assert_eq!(ok.scaling_law_power, 3.3);
    }
}
