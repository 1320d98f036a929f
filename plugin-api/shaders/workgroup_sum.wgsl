// Deterministic reductions over a 256-thread workgroup, shared by the kernels
// that reduce per workgroup. This is the plain path, for every adapter;
// workgroup_sum_subgroup.wgsl has the same interface on subgroup operations.
// WGSL has no includes: a plugin compiles one of the two followed by the
// kernel's own source (`shaders::Reduction::with_prelude`), so line numbers in
// a compile error of that kernel count this file's lines first.
//
// Provides:
//   WG             the workgroup size (256) of the entry points that call it
//   Lane           an entry point's argument (`lane: Lane`) carrying the
//                  builtins the reductions need; `lane.index` is the
//                  local_invocation_index
//   partial        var<workgroup> array<f32, 256>, the reductions' scratch
//   workgroup_sum  the sum of every thread's `value`, added in a fixed tree
//                  order (so the same inputs give the same bits); every thread
//                  gets the total
//   workgroup_max  the largest `value` (exact in any order)
// Call them from uniform control flow.
// Bindings: none. Limits: the calling entry point must be @workgroup_size(256).

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

struct Lane {
    @builtin(local_invocation_index) index: u32,
}

fn workgroup_tree(lid: u32, value: f32, take_max: bool) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
        if (lid < stride) {
            let a = partial[lid];
            let b = partial[lid + stride];
            partial[lid] = select(a + b, max(a, b), take_max);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

fn workgroup_sum(lane: Lane, value: f32) -> f32 {
    return workgroup_tree(lane.index, value, false);
}

fn workgroup_max(lane: Lane, value: f32) -> f32 {
    return workgroup_tree(lane.index, value, true);
}

