//! `neuron-host plugin check`: the plugin conformance suite of `neuron-plugin-testkit` (the same
//! checks an author runs from `cargo test`), on each plugin given, with the configuration's
//! `[plugin.<name>]` section, on the host's GPU.

use neuron_plugin_testkit::{Conformance, Outcome};

use crate::{
    config::Config,
    error::{Error, Result},
    plugins::load_all,
    runtime::plugin_set::open_gpu,
};

pub struct CheckOptions {
    pub steps: u32,
    pub learning_rate: f32,
    pub nondeterministic: bool,
}

pub fn run(config: &Config, options: &CheckOptions) -> Result<()> {
    if config.plugins.is_empty() {
        return Err(Error::Config(
            "no plugin given: pass --plugin PATH (for example target/release/libtemplate.so), or list `plugins` in the config file".into(),
        ));
    }
    // Loading them all first refuses a broken file or two plugins of one name in one line.
    let plugins = load_all(&config.plugins)?;
    let gpu = open_gpu(config, &plugins)?;
    println!("GPU: {}", gpu.describe());
    let mut failed = Vec::new();
    for plugin in &plugins {
        let section = config.plugin_section(plugin.name());
        let mut suite = Conformance::new(plugin.path())
            .model_config(&section)
            .scorer_config(&config.scorer_section(plugin.name()))
            .overfit_steps(options.steps)
            .learning_rate(options.learning_rate);
        if options.nondeterministic {
            suite = suite.nondeterministic();
        }
        let report = suite.run_loaded(plugin, Some(&gpu));
        println!("{report}");
        for check in report.failures() {
            if let Outcome::Fail(why) = &check.outcome {
                failed.push(format!("{}: {}: {why}", plugin.name(), check.name));
            }
        }
    }
    match failed.len() {
        0 => Ok(()),
        1 => Err(Error::Check(format!("plugin check failed: {}", failed[0]))),
        n => Err(Error::Check(format!("plugin check: {n} checks failed, the first {}", failed[0]))),
    }
}
