//! Yuma consensus against subtensor's own epoch test vectors
//! (pallets/subtensor/src/tests/epoch.rs in opentensor/subtensor): the same
//! scenarios, replayed through `yuma::epoch`, must store the same u16 bonds
//! and (for Yuma 3) the same dividends within the reference's 1e-3.
//!
//! The harness keeps what the chain keeps between epochs (weights as stored
//! after max-upscaling, bonds, permits, last updates) and, like those tests,
//! calls the epoch directly, so the previous-epoch block stays 0.

use neuron_host::chain::yuma::{epoch, max_upscale_u16, within_max_weight_limit, EpochInput, EpochOutput};

struct Subnet {
    block: u64,
    stake: Vec<u64>,
    last_update: Vec<u64>,
    registered: Vec<u64>,
    permit: Vec<bool>,
    weights: Vec<Vec<(u16, u16)>>,
    bonds: Vec<Vec<(u16, u16)>>,
    max_validators: u16,
    kappa: u16,
    bonds_penalty: u16,
    bonds_moving_average: u64,
    yuma3: bool,
}

impl Subnet {
    /// Everyone registered at block 0, as the reference tests do.
    fn new(stake: &[u64]) -> Self {
        let n = stake.len();
        Subnet {
            block: 0,
            stake: stake.to_vec(),
            last_update: vec![0; n],
            registered: vec![0; n],
            permit: vec![false; n],
            weights: vec![Vec::new(); n],
            bonds: vec![Vec::new(); n],
            max_validators: n as u16,
            kappa: 32_767,
            bonds_penalty: u16::MAX,
            bonds_moving_average: 900_000,
            yuma3: false,
        }
    }

    fn set_weights(&mut self, uid: usize, uids: &[u16], values: &[u16]) {
        self.weights[uid] = uids.iter().copied().zip(max_upscale_u16(values)).collect();
        self.last_update[uid] = self.block;
    }

    fn next_block(&mut self) {
        self.block += 1;
    }

    fn epoch(&mut self) -> EpochOutput {
        let out = epoch(&EpochInput {
            current_block: self.block,
            tempo: 1,
            last_epoch_block: 0,
            activity_cutoff: 5000,
            last_update: &self.last_update,
            block_at_registration: &self.registered,
            stake: &self.stake,
            min_stake: 0,
            validator_permit: &self.permit,
            max_allowed_validators: self.max_validators,
            weights: &self.weights,
            bonds: &self.bonds,
            kappa: self.kappa,
            bonds_penalty: self.bonds_penalty,
            bonds_moving_average: self.bonds_moving_average,
            yuma3: self.yuma3,
            owner_uid: None,
            emission: 1_000_000_000,
        });
        self.permit = out.validator_permit.clone();
        for (row, new) in self.bonds.iter_mut().zip(&out.bonds) {
            if let Some(new) = new {
                *row = new.clone();
            }
        }
        out
    }

    fn bond(&self, i: usize, j: u16) -> u16 {
        self.bonds[i].iter().find(|(k, _)| *k == j).map(|&(_, b)| b).unwrap_or(0)
    }
}

/// subtensor `test_bonds`: four validators (stake 1:2:3:4) weight four miners
/// 1:2:3:4; then validators leave one by one for self-weight, and validator 3
/// disagrees with consensus by weighting only miner 7, whose weight is clipped:
/// the bonds of the departed validators decay, the dissenter's stay.
#[test]
fn classic_yuma_matches_subtensor_test_bonds() {
    let mut s = Subnet::new(&[1, 2, 3, 4, 0, 0, 0, 0]);
    s.epoch(); // issues validator permits
    assert_eq!(s.permit, [true, true, true, true, false, false, false, false]);
    s.next_block();
    for uid in 0..4 {
        s.set_weights(uid, &[4, 5, 6, 7], &[u16::MAX / 4, u16::MAX / 2, (u16::MAX / 4) * 3, u16::MAX]);
    }
    let out = s.epoch();
    assert_eq!([s.bond(0, 4), s.bond(1, 4), s.bond(2, 4), s.bond(3, 4)], [16383, 32767, 49151, 65535]);
    // Agreement: full validator trust (0.9999999995 in the reference's log, stored as 65534).
    assert_eq!(&out.validator_trust[..4], &[65534, 65534, 65534, 65534]);
    assert_eq!(&out.incentive[..4], &[0, 0, 0, 0]);

    s.set_weights(0, &[0], &[u16::MAX]);
    s.next_block();
    s.epoch();
    assert_eq!([s.bond(0, 4), s.bond(1, 4), s.bond(2, 4), s.bond(3, 4)], [14582, 32767, 49151, 65535]);

    s.set_weights(1, &[1], &[u16::MAX]);
    s.next_block();
    s.epoch();
    assert_eq!([s.bond(0, 4), s.bond(1, 4), s.bond(2, 4), s.bond(3, 4)], [12603, 28321, 49151, 65535]);

    s.set_weights(2, &[2], &[u16::MAX]);
    s.next_block();
    let out = s.epoch();
    assert_eq!([s.bond(0, 7), s.bond(1, 7), s.bond(2, 7), s.bond(3, 7)], [12602, 28320, 49150, 65535]);
    // A lone validator (40% of stake) is below kappa: no consensus, no incentive.
    assert!(out.consensus.iter().all(|&c| c == 0) && out.incentive.iter().all(|&i| i == 0));

    // Validator 2 comes back weighting only miner 7: consensus forms at the
    // median, validator 3's weights are clipped to it.
    s.set_weights(2, &[7], &[u16::MAX]);
    s.next_block();
    let out = s.epoch();
    assert_eq!([s.bond(0, 7), s.bond(1, 7), s.bond(2, 7), s.bond(3, 7)], [10951, 24609, 49150, 65535]);
    assert_eq!(&out.incentive[4..], &[0, 0, 0, 65535], "only miner 7 is in consensus");

    s.next_block();
    s.epoch();
    assert_eq!([s.bond(0, 7), s.bond(1, 7), s.bond(2, 7), s.bond(3, 7)], [9559, 21482, 49150, 65535]);

    s.next_block();
    s.epoch();
    assert_eq!([s.bond(0, 7), s.bond(1, 7), s.bond(2, 7), s.bond(3, 7)], [8376, 18824, 49150, 65535]);
}

fn close(actual: f64, target: f64) -> bool {
    (actual - target).abs() <= 1e-3
}

/// subtensor `test_yuma_3_liquid_alpha_disabled`: three equal validators, two
/// miners; in epoch 2 validator C switches to miner 2 and its dividends drop,
/// then recover as it returns (Yuma 3, bonds EMA 0.975, no bonds penalty).
#[test]
fn yuma3_matches_subtensor_liquid_alpha_disabled() {
    let mut s = Subnet::new(&[33, 33, 34, 0, 0]);
    s.max_validators = 3;
    s.kappa = u16::MAX / 2;
    s.bonds_penalty = 0;
    s.bonds_moving_average = 975_000;
    s.yuma3 = true;
    s.next_block();
    s.epoch();

    let target_bonds: [[[f64; 2]; 3]; 6] = [
        [[0.0250, 0.0000], [0.0250, 0.0000], [0.0250, 0.0000]],
        [[0.0494, 0.0000], [0.0494, 0.0000], [0.0494, 0.0000]],
        [[0.0731, 0.0000], [0.0731, 0.0000], [0.0481, 0.0250]],
        [[0.0963, 0.0000], [0.0963, 0.0000], [0.0719, 0.0244]],
        [[0.1189, 0.0000], [0.1189, 0.0000], [0.0951, 0.0238]],
        [[0.1409, 0.0000], [0.1409, 0.0000], [0.1178, 0.0232]],
    ];
    let target_dividends: [[f64; 3]; 6] = [
        [0.3300, 0.3300, 0.3400],
        [0.3300, 0.3300, 0.3400],
        [0.3734, 0.3734, 0.2532],
        [0.3611, 0.3611, 0.2779],
        [0.3541, 0.3541, 0.2919],
        [0.3495, 0.3495, 0.3009],
    ];
    for epoch in 0..6 {
        let rows: [[u16; 2]; 3] =
            if epoch == 2 { [[u16::MAX, 0], [u16::MAX, 0], [0, u16::MAX]] } else { [[u16::MAX, 0]; 3] };
        for (uid, row) in rows.iter().enumerate() {
            s.set_weights(uid, &[3, 4], row);
        }
        s.next_block();
        let out = s.epoch();
        for v in 0..3 {
            for (m, uid) in [3u16, 4].iter().enumerate() {
                let b = f64::from(s.bond(v, *uid)) / 65535.0;
                assert!(
                    close(b, target_bonds[epoch][v][m]),
                    "epoch {epoch} bond[{v}][{uid}] {b} vs {}",
                    target_bonds[epoch][v][m]
                );
            }
            let d = f64::from(out.dividends[v]) / 65535.0;
            assert!(
                close(d, target_dividends[epoch][v]),
                "epoch {epoch} dividend[{v}] {d} vs {}",
                target_dividends[epoch][v]
            );
        }
    }
}

/// A miner that turns bad: every validator moves its weight away. Its
/// incentive falls to zero at the next epoch. Classic Yuma stores bonds
/// column-max-upscaled, so bonds to it keep their proportions; Yuma 3 keeps
/// absolute bonds, which decay with the moving average.
#[test]
fn a_miner_that_turns_bad_loses_incentive_and_bonds() {
    for yuma3 in [false, true] {
        let mut s = Subnet::new(&[50, 50, 0, 0]);
        s.yuma3 = yuma3;
        s.epoch();
        s.next_block();
        for uid in 0..2 {
            s.set_weights(uid, &[2, 3], &[u16::MAX, u16::MAX]);
        }
        let mut out = s.epoch();
        for _ in 0..5 {
            s.next_block();
            out = s.epoch();
        }
        assert!(out.incentive[2] > 30000 && out.incentive[3] > 30000, "{:?}", out.incentive);
        let bond_before = s.bond(0, 2);
        for uid in 0..2 {
            s.set_weights(uid, &[3], &[u16::MAX]);
        }
        s.next_block();
        out = s.epoch();
        assert_eq!((out.incentive[2], out.incentive[3]), (0, 65535), "yuma3={yuma3}");
        for _ in 0..10 {
            s.next_block();
            s.epoch();
        }
        if yuma3 {
            assert!(s.bond(0, 2) < bond_before * 3 / 4, "bond decays: {} -> {}", bond_before, s.bond(0, 2));
        } else {
            assert_eq!((bond_before, s.bond(0, 2)), (65535, 65535), "classic bonds keep their column proportions");
        }
    }
}

#[test]
fn inactive_validators_and_outdated_weights_count_for_nothing() {
    let mut s = Subnet::new(&[50, 50, 0, 0]);
    s.epoch();
    s.next_block();
    s.set_weights(0, &[2], &[u16::MAX]);
    s.set_weights(1, &[3], &[u16::MAX]);
    // Validator 1 goes quiet past the activity cutoff.
    s.block += 5001;
    s.set_weights(0, &[2], &[u16::MAX]);
    let out = s.epoch();
    assert!(!out.active[1] && out.active[0]);
    assert_eq!(out.incentive[2], 65535);
    assert_eq!(out.incentive[3], 0);
    // Miner 2 re-registers: weights set before its registration are outdated.
    s.registered[2] = s.block;
    s.next_block();
    let out = s.epoch();
    assert_eq!(out.incentive[2], 0, "{:?}", out.incentive);
    // With no valid weights at all, emission follows active stake.
    assert_eq!(out.emission[0], 1_000_000_000);
}

#[test]
fn max_upscale_and_limit_match_subtensor_rounding() {
    assert_eq!(
        max_upscale_u16(&[u16::MAX / 4, u16::MAX / 2, (u16::MAX / 4) * 3, u16::MAX]),
        [16383, 32767, 49149, 65535]
    );
    assert_eq!(max_upscale_u16(&[1, 2, 3]), [21845, 43690, 65535]);
    assert_eq!(max_upscale_u16(&[0, 0]), [0, 0]);
    assert!(within_max_weight_limit(&[1, 1, 1], u16::MAX / 3 + 1));
    assert!(!within_max_weight_limit(&[2, 1, 1], u16::MAX / 3 + 1));
}
