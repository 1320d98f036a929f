// The reductions of workgroup_sum.wgsl on subgroup operations, for devices
// with wgpu's SUBGROUP feature enabled (`shaders::Reduction::for_gpu` picks
// it). The interface is the same, so a kernel compiles after either prelude
// unchanged: WG, Lane, partial, workgroup_sum(lane, value),
// workgroup_max(lane, value).
//
// How it adds: each subgroup adds its threads' values (subgroupAdd); lane 0 of
// subgroup s writes that sum to partial[s]; then every subgroup adds the
// num_subgroups partial sums, lane j taking partial[j], partial[j + size], ...
// in ascending order, and subgroupAdd gives the total. Every subgroup does the
// same additions in the same order, so every thread gets the same bits, and
// the same inputs give the same bits on one adapter. The bits differ from the
// tree's (another order of additions), by rounding only. Two barriers instead
// of the tree's nine.
//
// Uses subgroup_id and num_subgroups, so it needs no assumption about how the
// adapter lays subgroups over local_invocation_index. It assumes full
// subgroups: 256 is a multiple of every subgroup size (powers of two up to
// 128), so a 256-thread workgroup has no partial one.
// Bindings: none. Limits: the calling entry point must be @workgroup_size(256).

const WG: u32 = 256u;
var<workgroup> partial: array<f32, 256>;

struct Lane {
    @builtin(local_invocation_index) index: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(num_subgroups) subgroups: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) size: u32,
}

fn workgroup_sum(lane: Lane, value: f32) -> f32 {
    let own = subgroupAdd(value);
    if (lane.lane == 0u) {
        partial[lane.subgroup] = own;
    }
    workgroupBarrier();
    var sum = 0.0;
    for (var s = lane.lane; s < lane.subgroups; s += lane.size) {
        sum += partial[s];
    }
    let total = subgroupAdd(sum);
    workgroupBarrier();
    return total;
}

fn workgroup_max(lane: Lane, value: f32) -> f32 {
    let own = subgroupMax(value);
    if (lane.lane == 0u) {
        partial[lane.subgroup] = own;
    }
    workgroupBarrier();
    var best = own;
    for (var s = lane.lane; s < lane.subgroups; s += lane.size) {
        best = max(best, partial[s]);
    }
    let total = subgroupMax(best);
    workgroupBarrier();
    return total;
}

