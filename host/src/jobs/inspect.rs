//! `neuron-host plugin inspect PATH`: what a plugin declares, and whether
//! each kind it declares can be built with its default (or given) config.

use std::path::Path;

use neuron_plugin_api::{PluginKinds, ABI_VERSION};

use crate::{config::Config, error::Result, plugins::LoadedPlugin, runtime::plugin_set::open_gpu};

pub fn inspect(path: &Path, config: &Config, instantiate: bool) -> Result<()> {
    let plugin = LoadedPlugin::load(path)?;
    let info = plugin.info();
    println!("plugin       {} {}", info.name, info.version);
    println!("file         {}", path.display());
    println!("abi          {} (this host: {ABI_VERSION})", info.abi_version);
    println!("provides     {}", info.kinds.names().join(", "));
    println!("description  {}", info.description);
    let features: Vec<&str> = info.gpu.features.iter().map(|f| f.as_str()).collect();
    let limits: Vec<String> = info.gpu.limits.iter().map(|l| format!("{} >= {}", l.name, l.min)).collect();
    println!(
        "gpu needs    features: {}; limits: {}",
        if features.is_empty() { "none".to_string() } else { features.join(", ") },
        if limits.is_empty() { "none".to_string() } else { limits.join(", ") }
    );
    if !info.gpu.optional_features.is_empty() {
        let optional: Vec<&str> = info.gpu.optional_features.iter().map(|f| f.as_str()).collect();
        println!("gpu uses     {} where the adapter has them", optional.join(", "));
    }
    if !instantiate {
        return Ok(());
    }
    let gpu = open_gpu(config, std::slice::from_ref(&plugin))?;
    println!("gpu          {}", gpu.describe());
    let section = config.plugin_section(plugin.name());
    if plugin.provides(PluginKinds::MODEL) {
        let model = plugin.new_model(&gpu, &section)?;
        let d = model.describe()?;
        println!(
            "model        {}: vocab {}, context {}, {} parameters, tokenizer {}",
            d.architecture, d.vocab_size, d.block_size, d.parameters, d.tokenizer
        );
    }
    if plugin.provides(PluginKinds::SCORER) {
        let scorer = plugin.new_scorer(&gpu, &section)?;
        println!("scorer       {}", scorer.describe()?.policy);
    }
    Ok(())
}
