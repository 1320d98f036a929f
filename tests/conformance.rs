//! The plugin conformance suite (neuron-plugin-testkit) on what the repository ships and on its
//! broken fixtures, through the library API and through `neuron-host plugin check`.

use std::path::Path;

use neuron_e2e::{host_command, plugin};
use neuron_plugin_testkit::{Conformance, Outcome, Report};

fn failure(report: &Report, check: &str) -> String {
    match report.outcome(check) {
        Some(Outcome::Fail(why)) => {
            assert!(!why.contains('\n'), "one line: {why}");
            why.clone()
        }
        other => panic!("check `{check}` should have failed, got {other:?}\n{report}"),
    }
}

fn config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("check.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn libraries_that_are_not_plugins_of_this_abi_fail_the_first_check_with_the_reason() {
    for (lib, reason) in [
        ("old_abi_plugin", "built against plugin ABI 0.0.3, but this host speaks ABI"),
        ("skewed_layout_plugin", "its plugin ABI layout differs from this host's"),
        ("not_a_plugin", "not a neuron-host plugin: it exports no plugin root module"),
    ] {
        let report = Conformance::new(plugin(lib)).run();
        assert!(!report.passed());
        assert_eq!(report.checks.len(), 1, "nothing runs past a failed load: {report}");
        assert!(failure(&report, "loads").contains(reason), "{lib}: {report}");
        assert!(report.to_string().contains("FAIL  loads"), "{report}");
    }
    let report = Conformance::new("/nonexistent/libnothing.so").run();
    assert!(failure(&report, "loads").contains("no such file"), "{report}");
}

#[test]
fn a_panic_in_any_entry_point_fails_the_check_that_reached_it_and_the_process_survives() {
    // The fixture panics where `panic_in` says; the CPU bigram reaches every training entry point.
    for place in ["new", "forward", "loss", "backward", "step", "export_state"] {
        let report = Conformance::new(plugin("fixture_model"))
            .model_config(&format!("model = \"bigram\"\npanic_in = \"{place}\""))
            .run();
        let why = report
            .failures()
            .find_map(|c| match &c.outcome {
                Outcome::Fail(w) if w.contains(&format!("fixture was told to panic in {place}")) => Some(w.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a panic in {place} must fail a check:\n{report}"));
        assert!(why.contains("a plugin must return a PluginError, never panic"), "{why}");
        assert!(!why.contains('\n'), "{why}");
        // The scorer of the same library still runs and is checked on its own.
        assert!(matches!(report.outcome("scorer builds"), Some(Outcome::Pass(_))), "{place}: {report}");
    }
    for place in ["new_scorer", "score"] {
        let report = Conformance::new(plugin("fixture_model")).scorer_config(&format!("panic_in = \"{place}\"")).run();
        assert!(
            report.failures().any(|c| matches!(&c.outcome, Outcome::Fail(w) if w.contains(&format!("panicked in"))
                && w.contains(&format!("fixture was told to panic in {place}")))),
            "{place}: {report}"
        );
    }
}

#[test]
fn an_inference_only_model_passes_with_the_training_checks_skipped() {
    let report = Conformance::new(plugin("fixture_model")).model_config("model = \"frozen-bigram\"").run();
    for check in ["gradients", "overfits a tiny batch"] {
        assert!(
            matches!(report.outcome(check), Some(Outcome::Skip(why)) if why.contains("inference-only")),
            "{report}"
        );
    }
    for check in [
        "model builds",
        "forward",
        "loss agrees with forward",
        "bad input is refused, not a panic",
        "state round-trips",
        "deterministic",
    ] {
        assert!(matches!(report.outcome(check), Some(Outcome::Pass(_))), "{check}: {report}");
    }
    assert!(
        matches!(report.outcome("state round-trips"), Some(Outcome::Pass(t)) if t == "1 parameter tensors; outputs identical"),
        "{report}"
    );
}

#[test]
fn a_model_whose_gradient_is_wrong_fails_the_gradient_check_though_it_still_trains() {
    let suite = Conformance::new(plugin("fixture_model")).learning_rate(2.0);
    let right = suite.clone().model_config("model = \"bigram\"").run();
    assert!(matches!(right.outcome("gradients"), Some(Outcome::Pass(_))), "{right}");
    for check in ["forward", "loss agrees with forward", "overfits a tiny batch", "state round-trips", "deterministic"]
    {
        assert!(matches!(right.outcome(check), Some(Outcome::Pass(_))), "{check}: {right}");
    }

    let wrong = suite.model_config("model = \"bigram\"\ngradient_scale = 1.5").run();
    let why = failure(&wrong, "gradients");
    assert!(why.contains("d loss / d bigram.weight[") && why.contains("the gradient is wrong"), "{why}");
    // Overfitting alone would not have caught it.
    assert!(matches!(wrong.outcome("overfits a tiny batch"), Some(Outcome::Pass(_))), "{wrong}");
}

#[test]
fn plugin_check_passes_every_shipped_plugin() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[plugin.gpt]\npreset = \"tiny\"\n");
    let out = host_command()
        .args(["plugin", "check"])
        .args([plugin("gpt"), plugin("scoring_loss"), plugin("scoring_shapley")])
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    for name in ["gpt", "scoring-loss", "scoring-shapley"] {
        assert!(text.contains(&format!("conformance of plugin {name} (")), "{text}");
    }
    assert!(text.contains("ok    gradients: 16 coordinates agree"), "{text}");
    assert_eq!(text.matches("  passed: ").count(), 3, "{text}");
    assert!(!text.contains("FAIL"), "{text}");

    // The template trains by plain SGD, which wants a larger rate.
    let out = host_command().args(["plugin", "check"]).arg(plugin("template")).args(["--lr", "2"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("  passed: 10 checks"), "{text}");
}

#[test]
fn plugin_check_exits_non_zero_with_one_line_naming_the_failed_check() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[plugin.fixture]\nmodel = \"bigram\"\ngradient_scale = 1.5\n");
    let out = host_command()
        .args(["plugin", "check"])
        .arg(plugin("fixture_model"))
        .arg("--config")
        .arg(&cfg)
        .args(["--lr", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAIL  gradients: d loss / d bigram.weight["), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("fixture: gradients: d loss / d bigram.weight["), "{stderr}");

    let out = host_command().args(["plugin", "check"]).arg(plugin("old_abi_plugin")).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.trim().lines().last().unwrap().contains("built against plugin ABI 0.0.3"), "{stderr}");
}
