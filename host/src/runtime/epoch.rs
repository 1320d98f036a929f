//! When an epoch ends: after `length` blocks (by default the subnet's tempo)
//! or a wall-clock limit, whichever comes first. Blocks are the chain's, so
//! a validator's epochs line up with the chain's however fast it steps.

use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct EpochClock {
    length_blocks: u64,
    time_limit: Option<Duration>,
    start_block: u64,
    started: Instant,
}

impl EpochClock {
    pub fn new(length_blocks: u64, time_limit: Option<Duration>, start_block: u64) -> Self {
        Self { length_blocks: length_blocks.max(1), time_limit, start_block, started: Instant::now() }
    }

    /// Whether the epoch that started at `start_block` is over at `block`.
    pub fn is_over(&self, block: u64) -> bool {
        block >= self.start_block + self.length_blocks || self.time_limit.is_some_and(|t| self.started.elapsed() >= t)
    }

    /// Starts the next epoch at `block`.
    pub fn restart(&mut self, block: u64) {
        self.start_block = block;
        self.started = Instant::now();
    }

    pub fn start_block(&self) -> u64 {
        self.start_block
    }

    pub fn length_blocks(&self) -> u64 {
        self.length_blocks
    }

    /// Blocks done in this epoch, capped at its length.
    pub fn blocks_done(&self, block: u64) -> u64 {
        block.saturating_sub(self.start_block).min(self.length_blocks)
    }

    /// Estimated time left, from blocks left and the block time (and the time limit).
    pub fn time_left(&self, block: u64, block_time: Duration) -> Duration {
        let by_blocks = block_time * (self.length_blocks - self.blocks_done(block)) as u32;
        match self.time_limit {
            Some(limit) => by_blocks.min(limit.saturating_sub(self.started.elapsed())),
            None => by_blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_after_its_blocks_or_its_time() {
        let mut c = EpochClock::new(10, None, 100);
        assert!(!c.is_over(109));
        assert!(c.is_over(110));
        c.restart(110);
        assert_eq!(c.blocks_done(115), 5);
        let quick = EpochClock::new(1000, Some(Duration::ZERO), 0);
        assert!(quick.is_over(0), "a zero time limit ends the epoch at once");
    }
}
