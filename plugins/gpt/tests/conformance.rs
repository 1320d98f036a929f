//! The built library through the conformance suite, loaded as the host loads it (the same checks
//! `neuron-host plugin check` runs).

#[test]
fn the_built_library_passes_the_conformance_suite() {
    let report = neuron_plugin_testkit::Conformance::new(neuron_plugin_testkit::cdylib("gpt"))
        .model_config("preset = \"tiny\"")
        .assert_passes();
    println!("{report}");
}

/// The other paths through the same contract: the tree reductions and the f16 copy of the weights
/// (where the adapter has SHADER_F16, as lavapipe does; elsewhere the model falls back to f32
/// weights and this is the tree path alone). Gradients against central differences, overfitting,
/// state round trips and determinism all hold with them.
#[test]
fn the_tree_reductions_and_f16_weights_pass_the_conformance_suite_too() {
    let report = neuron_plugin_testkit::Conformance::new(neuron_plugin_testkit::cdylib("gpt"))
        .model_config("preset = \"tiny\"\nsubgroups = false\nweights_f16 = true")
        .assert_passes();
    println!("{report}");
}
