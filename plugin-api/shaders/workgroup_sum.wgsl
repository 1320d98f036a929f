// A deterministic sum over a 256-thread workgroup, shared by the kernels that
// reduce per workgroup. WGSL has no includes: a plugin compiles this file
// followed by the kernel's own (`concat!(include_str!(..), include_str!(..))`),
// so line numbers in a compile error of that kernel count this file's lines
// first.
//
// Provides:
//   WG             the workgroup size (256) of the entry points that call it
//   partial        var<workgroup> array<f32, 256>, its scratch
//   workgroup_sum  the sum of every thread's `value`, added in a fixed tree
//                  order (so the same inputs give the same bits); every thread
//                  gets the total. Call it from uniform control flow.
// Bindings: none. Limits: the calling entry point must be @workgroup_size(256).

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

fn workgroup_sum(lid: u32, value: f32) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            partial[lid] += partial[lid + stride];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

