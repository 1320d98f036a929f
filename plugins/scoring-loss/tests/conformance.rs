//! The built library through the conformance suite, loaded as the host loads it (the same checks
//! `neuron-host plugin check` runs).

#[test]
fn the_built_library_passes_the_conformance_suite() {
    let report = neuron_plugin_testkit::Conformance::new(neuron_plugin_testkit::cdylib("scoring_loss")).assert_passes();
    println!("{report}");
}
