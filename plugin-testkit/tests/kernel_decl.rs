//! A declared kernel checked against what the host really reflects from WGSL (naga's layout
//! rules: a vec3's 16-byte alignment included), on the test kit's device.

use neuron_plugin_api::prelude::*;

const SOURCE: &str = r#"
struct Params {
    n: u32,
    origin: vec3<f32>,
    scale: f32,
}
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn shift(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.n) {
        y[id.x] = x[id.x] * p.scale + p.origin.x;
    }
}
"#;

/// The right mirror: WGSL puts `origin` (a vec3) at byte 16 and `scale` right after it at 28.
#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct Params {
    n: u32,
    _pad: [u32; 3],
    origin: [f32; 3],
    scale: f32,
}
uniform_layout!(Params { n, _pad, origin, scale });

/// The mirror a hand-padder writes first: `origin` straight after `n`.
#[repr(C)]
#[derive(Copy, Clone, Pod, Zeroable)]
#[bytemuck(crate = "neuron_plugin_api::bytemuck")]
struct Naive {
    n: u32,
    origin: [f32; 3],
    scale: f32,
    _pad: [u32; 3],
}
uniform_layout!(Naive { n, origin, scale, _pad });

#[test]
fn the_host_reflects_wgsl_layout_and_a_misplaced_member_is_refused_when_built() {
    let gpu = neuron_plugin_testkit::gpu("kernel-decl");
    let kernel = gpu.kernel(KernelDecl::new(SOURCE, "shift").read("x").write("y").uniform::<Params>()).unwrap();
    let x = gpu.buffer_from(&[1.0f32, 2.0, 3.0], "x").unwrap();
    let y = gpu.zeros_f32(3, "y").unwrap();
    let mut b = gpu.batch();
    let params = Params { n: 3, _pad: [0; 3], origin: [0.5, 9.0, 9.0], scale: 2.0 };
    b.dispatch_with(&kernel, &[x.all(), y.all()], [1, 1, 1], &params);
    let r = b.read(y.all());
    assert_eq!(b.submit().unwrap().get::<f32>(r).unwrap(), [2.5, 4.5, 6.5], "the declared layout is the real one");

    let err = gpu.kernel(KernelDecl::new(SOURCE, "shift").read("x").write("y").uniform::<Naive>()).unwrap_err();
    assert!(
        err.message.contains(
            "kernel `shift`: uniform member `origin` is at byte 16 (12 bytes) in the WGSL but at byte 4 (12 bytes)"
        ),
        "{err}"
    );
    let err = gpu.kernel(KernelDecl::new(SOURCE, "shift").write("y").read("x").uniform::<Params>()).unwrap_err();
    assert!(err.message.contains("storage binding 0 differs"), "{err}");
}
