//! Following finalised blocks across dropped connections and misbehaving nodes.
//!
//! The follower resubscribes with exponential backoff after the subscription
//! ends or the connection drops, and every block number from the first one
//! seen onwards is delivered exactly once, in order: after a gap (blocks
//! finalised while disconnected) the missed numbers are emitted before the
//! new one, so a consumer counting epoch boundaries never skips one.
//!
//! A subscription that ends without delivering a block is a failure, not a
//! resubscribe: the backoff keeps growing (a node whose `chainHead_v1_follow`
//! ends at once would otherwise be asked twice a second forever), warnings
//! come at most once a minute, and under `subtensor.rpc = "auto"` the
//! connection falls back to the legacy methods after [`FALL_BACK_AFTER`]
//! such failures in a row.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use subxt::client::Blocks;
use tokio::sync::mpsc;

use super::{runtime::Subtensor, Connection};
use crate::chain::{BlockStream, ChainError};

async fn subscribe(conn: &Connection) -> Result<Blocks<Subtensor>, ChainError> {
    let client = conn.client().await?;
    match client.stream_blocks().await {
        Ok(blocks) => Ok(blocks),
        Err(e) => Err(conn.error("subscribing to finalised blocks", e).await),
    }
}

/// Starts following; fails only if the first subscription cannot be made.
pub(crate) async fn follow(conn: Arc<Connection>, backoff: (Duration, Duration)) -> Result<BlockStream, ChainError> {
    let blocks = subscribe(&conn).await?;
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(run(conn, blocks, tx, backoff));
    Ok(BlockStream::new(rx))
}

/// What to emit for a newly seen block `n`, given the last block emitted.
pub fn numbers_to_emit(last: Option<u64>, n: u64) -> std::ops::RangeInclusive<u64> {
    match last {
        Some(l) if n <= l => n + 1..=n,
        Some(l) => l + 1..=n,
        None => n..=n,
    }
}

/// Failed subscriptions in a row after which `auto` gives up on the new RPC methods.
pub const FALL_BACK_AFTER: u32 = 3;

/// One warning a minute at most; what was held back is counted in the next one.
struct Warnings {
    last: Option<Instant>,
    held: u32,
}

impl Warnings {
    fn warn(&mut self, message: &str) {
        if self.last.is_some_and(|t| t.elapsed() < Duration::from_secs(60)) {
            self.held += 1;
            tracing::debug!(target: "neuron_host::chain", "{message}");
            return;
        }
        let held = std::mem::take(&mut self.held);
        let more = if held > 0 { format!(" ({held} more like it in the last minute)") } else { String::new() };
        tracing::warn!(target: "neuron_host::chain", "{message}{more}");
        self.last = Some(Instant::now());
    }
}

async fn run(
    conn: Arc<Connection>,
    mut blocks: Blocks<Subtensor>,
    tx: mpsc::Sender<Result<u64, ChainError>>,
    (first_delay, max_delay): (Duration, Duration),
) {
    let endpoint = conn.endpoint.url.clone();
    let mut last = None;
    let mut warnings = Warnings { last: None, held: 0 };
    let mut failures = 0u32;
    let mut delay = first_delay;
    loop {
        let mut delivered = 0u64;
        let mut why = "the subscription ended".to_string();
        while let Some(item) = blocks.next().await {
            match item {
                Ok(block) => {
                    let n = block.number();
                    for b in numbers_to_emit(last, n) {
                        if tx.send(Ok(b)).await.is_err() {
                            return;
                        }
                    }
                    last = Some(last.map_or(n, |l: u64| l.max(n)));
                    delivered += 1;
                }
                Err(e) => {
                    why = format!("the subscription failed: {e}");
                    break;
                }
            }
        }
        if delivered > 0 {
            // It worked for a while: a fresh start.
            failures = 0;
            delay = first_delay;
        } else {
            failures += 1;
        }
        if failures >= FALL_BACK_AFTER && conn.can_fall_back() {
            conn.fall_back_to_legacy(&format!("{failures} block subscriptions in a row ended without a block ({why})"))
                .await;
            failures = 0;
            delay = first_delay;
        }
        blocks = loop {
            if tx.is_closed() {
                return;
            }
            let empty = if delivered == 0 { ", without a block" } else { "" };
            warnings.warn(&format!(
                "following blocks of {endpoint}: {why}{empty}; resubscribing in {} ms",
                delay.as_millis()
            ));
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(max_delay);
            match subscribe(&conn).await {
                Ok(b) => break b,
                Err(e) => {
                    why = e.to_string();
                    delivered = 0;
                }
            }
        };
        tracing::debug!(target: "neuron_host::chain", "following blocks of {endpoint} again after block {}", last.map_or("none".to_string(), |l| l.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::numbers_to_emit;

    #[test]
    fn gaps_are_filled_and_repeats_dropped() {
        assert_eq!(numbers_to_emit(None, 10).collect::<Vec<_>>(), [10]);
        assert_eq!(numbers_to_emit(Some(10), 11).collect::<Vec<_>>(), [11]);
        assert_eq!(numbers_to_emit(Some(10), 14).collect::<Vec<_>>(), [11, 12, 13, 14]);
        assert!(numbers_to_emit(Some(10), 10).next().is_none());
        assert!(numbers_to_emit(Some(10), 9).next().is_none());
    }
}
