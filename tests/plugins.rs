//! Loading plugins: side by side, refused with one line when they cannot
//! load, and panics inside plugins coming back as errors.

use neuron_e2e::{gpu, host_command, plugin};
use neuron_host::plugins::{Error, LoadedPlugin};
use neuron_plugin_api::{ErrorKind, OutputRequest, PluginKinds, TokenBatch};

fn load_error(path: &std::path::Path) -> String {
    let err = LoadedPlugin::load(path).expect_err("must not load");
    assert!(matches!(err, Error::PluginLoad { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains(&path.display().to_string()), "names the file: {text}");
    text
}

#[test]
fn two_model_plugins_load_side_by_side_and_answer_as_themselves() {
    let gpu = gpu();
    let template = LoadedPlugin::load(&plugin("template")).unwrap();
    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    assert_eq!(template.name(), "template");
    assert_eq!(fixture.name(), "fixture");
    assert_eq!(fixture.info().version.as_str(), "0.3.1");
    assert!(template.provides(PluginKinds::MODEL) && fixture.provides(PluginKinds::MODEL));
    assert!(fixture.provides(PluginKinds::SCORER) && !template.provides(PluginKinds::SCORER));

    let mut a = template.new_model(&gpu, "vocab_size = 16").unwrap();
    let mut b = fixture.new_model(&gpu, "vocab_size = 16\nshift = 5").unwrap();
    assert_eq!(a.describe().unwrap().architecture.as_str(), "bigram");
    assert_eq!(b.describe().unwrap().architecture.as_str(), "shift");

    let tokens = [2u32, 9, 15];
    let out = b.forward(TokenBatch::new(1, 3, &tokens), OutputRequest::top_k(1)).unwrap();
    assert_eq!(out.ids.as_slice(), &[7, 14, 4], "the shift model answers token + 5 mod 16");
    let out = a.forward(TokenBatch::new(1, 3, &tokens), OutputRequest::logits()).unwrap();
    assert_eq!(out.logits.len(), 3 * 16);
    assert!(out.logits.iter().all(|l| l.abs() <= 0.01), "the bigram model's fresh table is near zero");
}

#[test]
fn the_same_library_loaded_twice_is_one_plugin() {
    let a = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let b = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    assert_eq!(a.info(), b.info());
    let err =
        neuron_host::plugins::load_all(&[plugin("fixture_model"), plugin("fixture_model")]).unwrap_err().to_string();
    assert!(err.contains("declares the name `fixture`, already taken"), "{err}");
}

#[test]
fn an_older_abi_is_refused() {
    let text = load_error(&plugin("old_abi_plugin"));
    assert!(text.contains("built against plugin ABI 0.0.3, but this host speaks ABI 0.2.0"), "{text}");
    assert!(text.contains("rebuild the plugin"), "{text}");
}

#[test]
fn a_different_layout_is_refused() {
    let text = load_error(&plugin("skewed_layout_plugin"));
    assert!(text.contains("layout differs"), "{text}");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let text = load_error(&plugin("not_a_plugin"));
    assert!(text.contains("not a neuron-host plugin"), "{text}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libnotes.so");
    std::fs::write(&path, "just some text\n").unwrap();
    let text = load_error(&path);
    assert!(text.contains("not a loadable shared library"), "{text}");
}

#[test]
fn a_missing_path_and_a_directory_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = load_error(&dir.path().join("libnothing.so"));
    assert!(text.contains("no such file"), "{text}");
    let text = load_error(dir.path());
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn a_panic_inside_a_trait_method_is_an_error_and_the_host_carries_on() {
    let gpu = gpu();
    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let mut m = fixture.new_model(&gpu, "panic_in = \"forward\"").unwrap();
    let err = m.forward(TokenBatch::new(1, 2, &[1, 2]), OutputRequest::logits()).unwrap_err();
    let Error::Plugin { plugin, op, source } = &err else { panic!("{err:?}") };
    assert_eq!((plugin.as_str(), *op), ("fixture", "forward"));
    assert_eq!(source.kind, ErrorKind::PANIC);
    assert!(source.message.contains("panicked in forward: fixture was told to panic in forward"), "{err}");
    assert!(source.message.contains("fixture-model/src/lib.rs:"), "carries the location: {err}");
    // The same instance and the host keep working.
    m.zero_grad().unwrap();
    assert_eq!(m.describe().unwrap().architecture.as_str(), "shift");
    let mut healthy = fixture.new_model(&gpu, "").unwrap();
    healthy.forward(TokenBatch::new(1, 2, &[1, 2]), OutputRequest::logits()).unwrap();
}

#[test]
fn constructor_errors_and_panics_are_errors() {
    let gpu = gpu();
    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let err = fixture.new_model(&gpu, "fail_in = \"new\"").err().unwrap().to_string();
    assert_eq!(err, "plugin fixture (model constructor): fixture was told to fail in new");
    let err = fixture.new_model(&gpu, "panic_in = \"new\"").err().unwrap().to_string();
    assert!(
        err.starts_with(
            "plugin fixture (model constructor): panicked in model constructor: fixture was told to panic in new"
        ),
        "{err}"
    );
    let err = fixture.new_scorer(&gpu, "panic_in = \"new_scorer\"").err().unwrap().to_string();
    assert!(err.contains("panicked in scorer constructor"), "{err}");
    let err = fixture.new_model(&gpu, "shfit = 2").err().unwrap().to_string();
    assert!(err.contains("unknown configuration key `shfit` (did you mean `shift`?)"), "{err}");
    let template = LoadedPlugin::load(&plugin("template")).unwrap();
    let err = template.new_scorer(&gpu, "").err().unwrap().to_string();
    assert!(err.contains("provides no scorer"), "{err}");
}

#[test]
fn inspect_prints_the_declaration_and_exits_zero() {
    let out = host_command().args(["plugin", "inspect"]).arg(plugin("fixture_model")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for expected in [
        "plugin       fixture 0.3.1",
        "abi          0.2.0",
        "provides     model, scorer",
        "model        shift: vocab 16",
        "scorer       exact-match",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in:\n{stdout}");
    }
}

#[test]
fn inspect_exits_non_zero_with_one_line_for_every_load_error() {
    let dir = tempfile::tempdir().unwrap();
    let text_file = dir.path().join("plain.so");
    std::fs::write(&text_file, "not elf").unwrap();
    let panicking = dir.path().join("panic.toml");
    std::fs::write(&panicking, "[plugin.fixture]\npanic_in = \"new\"\n").unwrap();
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (vec![plugin("old_abi_plugin").into()], "ABI 0.0.3"),
        (vec![plugin("skewed_layout_plugin").into()], "layout differs"),
        (vec![plugin("not_a_plugin").into()], "not a neuron-host plugin"),
        (vec![text_file.clone().into()], "not a loadable shared library"),
        (vec![dir.path().join("missing.so").into()], "no such file"),
        (
            vec![plugin("fixture_model").into(), "--config".into(), panicking.clone().into()],
            "panicked in model constructor",
        ),
    ];
    for (args, expected) in cases {
        let out = host_command().args(["plugin", "inspect"]).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].contains(expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "nothing but the one line: {stderr}");
    }
}

/// A network preset's scoring values reach whichever scorer runs as defaults, in one build: the
/// Shapley scorer takes finney's `prune_len`, a value in its own section wins, and the loss
/// scorer, which reads none of them, is not refused for them.
#[test]
fn the_network_presets_scoring_values_are_defaults_a_scorer_reads_or_ignores() {
    use neuron_host::{
        config::{Config, Override},
        runtime::plugin_set::build_scorer,
    };
    let gpu = gpu();
    let network = Override::flag("subtensor.network", "--subtensor.network", "finney");
    let finney = Config::load_layers(None, &[network.clone()]).unwrap().config;
    let shapley = LoadedPlugin::load(&plugin("scoring_shapley")).unwrap();
    let described = |config: &Config| -> neuron_plugin_api::toml::Table {
        build_scorer(&shapley, &gpu, config).unwrap().describe().unwrap().config.parse().unwrap()
    };
    assert_eq!(described(&finney)["prune_len"].as_integer(), Some(32), "finney's preset");
    let own = Config::load_layers(None, &[network, Override::parse_set("plugin.scoring-shapley.prune_len=5").unwrap()])
        .unwrap()
        .config;
    assert_eq!(described(&own)["prune_len"].as_integer(), Some(5), "the section's own value wins");
    let local = Config::load_layers(None, &[]).unwrap().config;
    assert_eq!(described(&local)["prune_len"].as_integer(), Some(16), "the local preset's");

    let loss = LoadedPlugin::load(&plugin("scoring_loss")).unwrap();
    let scorer = build_scorer(&loss, &gpu, &finney).expect("network values a scorer does not read are no error");
    assert_eq!(scorer.describe().unwrap().policy.as_str(), "loss");
}

/// A feature a plugin uses where available is enabled where the adapter offers it and never
/// refuses the plugin where it does not; an unknown name is the author's typo, refused in one line.
#[test]
fn optional_gpu_features_are_enabled_where_offered_and_never_refused() {
    use neuron_host::gpu::{GpuDevice, GpuOptions, Requirement};
    let fixture = LoadedPlugin::load(&plugin("fixture_model")).unwrap();
    let optional: Vec<&str> = fixture.info().gpu.optional_features.iter().map(|f| f.as_str()).collect();
    assert_eq!(optional, ["SHADER_F16", "TEXTURE_COMPRESSION_ASTC"]);
    let device =
        GpuDevice::open(&GpuOptions::from_env(), &[Requirement { plugin: fixture.name(), gpu: &fixture.info().gpu }])
            .expect("optional features never keep a device from opening");
    let enabled: Vec<String> = device.adapter_info().features.iter().map(|f| f.to_string()).collect();
    for name in optional {
        assert_eq!(enabled.iter().any(|f| f == name), device.offers(name), "{name}: enabled exactly where offered");
    }
    // The plugin sees what was enabled through its own context.
    let model = fixture.new_model(&device, "").unwrap();
    drop(model);

    let mut typo = fixture.info().gpu.clone();
    typo.optional_features.push("SUBGROUPS".into());
    let err = GpuDevice::open(&GpuOptions::from_env(), &[Requirement { plugin: "fixture", gpu: &typo }]).err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("plugin fixture asks for GPU feature `SUBGROUPS` if available, which this host does not know"),
        "{text}"
    );
    assert!(!text.contains('\n'));

    let out =
        host_command().args(["plugin", "inspect", "--no-instantiate"]).arg(plugin("fixture_model")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("gpu uses     SHADER_F16, TEXTURE_COMPRESSION_ASTC where the adapter has them"),
        "{stdout}"
    );
}
