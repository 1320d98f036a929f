//! What a validator knows about each uid: a moving average of its scores and
//! per-uid statistics, kept aligned with the metagraph.
//!
//! Alignment rules (applied at every resync): a uid whose hotkey changed is a
//! new neuron, so its score and statistics restart from zero; a subnet that
//! grew extends every array; a subnet that shrank truncates them.

use serde::{Deserialize, Serialize};

use crate::chain::{AccountId, Metagraph};

/// Counters and recent figures for one uid.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UidStats {
    pub queried: u64,
    pub answered: u64,
    pub timeouts: u64,
    pub malformed: u64,
    pub errors: u64,
    /// Last usable loss (nats per token), NaN if none yet.
    pub last_loss: f32,
    /// Moving average of usable losses.
    pub avg_loss: f32,
    pub last_latency_s: f32,
    /// Consecutive steps without a usable answer.
    pub misses_in_a_row: u32,
}

/// How one queried uid fared in a step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Outcome {
    Answered { score: f32, loss: f32, latency_s: f32 },
    Timeout,
    Malformed,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoreBook {
    /// Weight of a new score in the moving average, in (0, 1].
    alpha: f32,
    /// Consecutive failed queries after which a uid's score drops to zero
    /// (0: never; the moving average alone then decays it).
    #[serde(default)]
    zero_after_misses: u32,
    hotkeys: Vec<AccountId>,
    scores: Vec<f32>,
    stats: Vec<UidStats>,
}

impl ScoreBook {
    pub fn new(alpha: f32) -> Self {
        assert!(alpha > 0.0 && alpha <= 1.0, "moving-average alpha must be in (0, 1]");
        Self { alpha, zero_after_misses: 0, hotkeys: Vec::new(), scores: Vec::new(), stats: Vec::new() }
    }

    /// A uid that fails this many queries in a row scores zero at once: a
    /// miner that went away stops earning within an epoch instead of decaying
    /// over many.
    pub fn with_zero_after_misses(mut self, misses: u32) -> Self {
        self.zero_after_misses = misses;
        self
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }
    pub fn stats(&self) -> &[UidStats] {
        &self.stats
    }
    pub fn hotkeys(&self) -> &[AccountId] {
        &self.hotkeys
    }

    /// Aligns with `mg`; returns the uids that were reset because their hotkey changed.
    pub fn resync(&mut self, mg: &Metagraph) -> Vec<u16> {
        let n = mg.neurons.len();
        let mut reset = Vec::new();
        self.hotkeys.truncate(n);
        self.scores.truncate(n);
        self.stats.truncate(n);
        for (uid, neuron) in mg.neurons.iter().enumerate() {
            if uid < self.hotkeys.len() {
                if self.hotkeys[uid] != neuron.hotkey {
                    self.hotkeys[uid] = neuron.hotkey;
                    self.scores[uid] = 0.0;
                    self.stats[uid] = UidStats { last_loss: f32::NAN, avg_loss: f32::NAN, ..UidStats::default() };
                    reset.push(uid as u16);
                }
            } else {
                self.hotkeys.push(neuron.hotkey);
                self.scores.push(0.0);
                self.stats.push(UidStats { last_loss: f32::NAN, avg_loss: f32::NAN, ..UidStats::default() });
            }
        }
        reset
    }

    /// Folds one step's outcome for `uid` into its moving average and stats.
    /// A uid that did not answer scores 0 for the step.
    pub fn record(&mut self, uid: u16, outcome: Outcome) {
        let Some(stats) = self.stats.get_mut(uid as usize) else { return };
        stats.queried += 1;
        let score = match outcome {
            Outcome::Answered { score, loss, latency_s } => {
                stats.answered += 1;
                stats.last_latency_s = latency_s;
                stats.misses_in_a_row = 0;
                if loss.is_finite() {
                    stats.last_loss = loss;
                    stats.avg_loss = if stats.avg_loss.is_finite() { 0.9 * stats.avg_loss + 0.1 * loss } else { loss };
                }
                if score.is_finite() {
                    score.max(0.0)
                } else {
                    0.0
                }
            }
            other => {
                match other {
                    Outcome::Timeout => stats.timeouts += 1,
                    Outcome::Malformed => stats.malformed += 1,
                    _ => stats.errors += 1,
                }
                stats.misses_in_a_row += 1;
                0.0
            }
        };
        let misses = stats.misses_in_a_row;
        let s = &mut self.scores[uid as usize];
        *s = if self.zero_after_misses > 0 && misses >= self.zero_after_misses {
            0.0
        } else {
            (1.0 - self.alpha) * *s + self.alpha * score
        };
    }

    /// Forgets every score (a scoring policy switch may ask for it).
    pub fn reset_scores(&mut self) {
        self.scores.iter_mut().for_each(|s| *s = 0.0);
    }

    pub fn alpha(&self) -> f32 {
        self.alpha
    }

    pub fn zero_after_misses(&self) -> u32 {
        self.zero_after_misses
    }

    /// A new moving-average weight (a config reload); ignored outside (0, 1].
    pub fn set_alpha(&mut self, alpha: f32) {
        if alpha > 0.0 && alpha <= 1.0 {
            self.alpha = alpha;
        }
    }

    pub fn set_zero_after_misses(&mut self, misses: u32) {
        self.zero_after_misses = misses;
    }

    /// Restores each uid's run of failed queries (a replay starting from a
    /// recorded snapshot); uids past `misses` keep theirs.
    pub fn restore_misses(&mut self, misses: &[u32]) {
        for (stats, &m) in self.stats.iter_mut().zip(misses) {
            stats.misses_in_a_row = m;
        }
    }

    /// Restores scores saved earlier for the hotkeys that still hold the same
    /// uid (a restarted validator realigned to today's metagraph).
    pub fn restore(&mut self, hotkeys: &[AccountId], scores: &[f32]) {
        for (uid, (hk, &s)) in hotkeys.iter().zip(scores).enumerate() {
            if self.hotkeys.get(uid) == Some(hk) {
                self.scores[uid] = s;
            }
        }
    }

    /// Restores per-uid statistics saved earlier, like [`Self::restore`]:
    /// only where the same hotkey still holds the uid.
    pub fn restore_stats(&mut self, hotkeys: &[AccountId], stats: &[UidStats]) {
        for (uid, (hk, s)) in hotkeys.iter().zip(stats).enumerate() {
            if self.hotkeys.get(uid) == Some(hk) {
                self.stats[uid] = s.clone();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::NeuronInfo;

    fn metagraph(names: &[&str]) -> Metagraph {
        Metagraph {
            netuid: 1,
            block: 0,
            neurons: names
                .iter()
                .enumerate()
                .map(|(uid, n)| NeuronInfo::bare(uid as u16, AccountId::from_name(n), AccountId::from_name("c")))
                .collect(),
        }
    }

    #[test]
    fn a_replaced_hotkey_loses_its_score_and_the_arrays_follow_the_subnet() {
        let mut book = ScoreBook::new(0.5);
        book.resync(&metagraph(&["a", "b", "c"]));
        for uid in 0..3 {
            book.record(uid, Outcome::Answered { score: 1.0, loss: 0.5, latency_s: 0.1 });
        }
        assert_eq!(book.scores(), &[0.5, 0.5, 0.5]);
        // uid 1 is taken over by a new hotkey, and the subnet grows by one.
        let reset = book.resync(&metagraph(&["a", "x", "c", "d"]));
        assert_eq!(reset, vec![1]);
        assert_eq!(book.scores(), &[0.5, 0.0, 0.5, 0.0]);
        assert_eq!(book.stats()[1].queried, 0);
        assert_eq!(book.stats()[0].queried, 1);
        book.resync(&metagraph(&["a", "x"]));
        assert_eq!(book.len(), 2);
    }

    #[test]
    fn misses_decay_the_score_towards_zero() {
        let mut book = ScoreBook::new(0.3);
        book.resync(&metagraph(&["a"]));
        book.record(0, Outcome::Answered { score: 1.0, loss: 1.0, latency_s: 0.1 });
        for _ in 0..30 {
            book.record(0, Outcome::Timeout);
        }
        assert!(book.scores()[0] < 1e-4);
        assert_eq!((book.stats()[0].timeouts, book.stats()[0].misses_in_a_row), (30, 30));
    }

    #[test]
    fn a_run_of_misses_zeroes_the_score_and_an_answer_starts_it_again() {
        let mut book = ScoreBook::new(0.1).with_zero_after_misses(3);
        book.resync(&metagraph(&["a"]));
        book.record(0, Outcome::Answered { score: 1.0, loss: 1.0, latency_s: 0.1 });
        book.record(0, Outcome::Timeout);
        book.record(0, Outcome::Error);
        assert!(book.scores()[0] > 0.05, "two misses only decay it: {}", book.scores()[0]);
        book.record(0, Outcome::Malformed);
        assert_eq!(book.scores()[0], 0.0);
        book.record(0, Outcome::Answered { score: 1.0, loss: 1.0, latency_s: 0.1 });
        assert!((book.scores()[0] - 0.1).abs() < 1e-6);
        assert_eq!(book.stats()[0].misses_in_a_row, 0);
    }

    #[test]
    fn restore_only_where_the_hotkey_still_holds_the_uid() {
        let mut book = ScoreBook::new(0.1);
        book.resync(&metagraph(&["a", "b"]));
        book.restore(&[AccountId::from_name("a"), AccountId::from_name("z")], &[0.7, 0.9]);
        assert_eq!(book.scores(), &[0.7, 0.0]);
    }
}
