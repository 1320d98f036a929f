//! Following finalised blocks across dropped connections.
//!
//! The follower resubscribes with exponential backoff after the subscription
//! ends or the connection drops, and every block number from the first one
//! seen onwards is delivered exactly once, in order: after a gap (blocks
//! finalised while disconnected) the missed numbers are emitted before the
//! new one, so a consumer counting epoch boundaries never skips one.

use std::{sync::Arc, time::Duration};

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

async fn run(
    conn: Arc<Connection>,
    mut blocks: Blocks<Subtensor>,
    tx: mpsc::Sender<Result<u64, ChainError>>,
    (first_delay, max_delay): (Duration, Duration),
) {
    let endpoint = conn.endpoint.url.clone();
    let mut last = None;
    loop {
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
                }
                Err(e) => {
                    tracing::warn!(target: "neuron_host::chain", "block subscription to {endpoint} failed: {e}");
                    break;
                }
            }
        }
        let mut delay = first_delay;
        blocks = loop {
            if tx.is_closed() {
                return;
            }
            tracing::warn!(target: "neuron_host::chain", "following blocks of {endpoint}: resubscribing in {} ms", delay.as_millis());
            tokio::time::sleep(delay).await;
            match subscribe(&conn).await {
                Ok(b) => break b,
                Err(e) => {
                    tracing::warn!(target: "neuron_host::chain", "{e}");
                    delay = (delay * 2).min(max_delay);
                }
            }
        };
        tracing::info!(target: "neuron_host::chain", "following blocks of {endpoint} again after block {}", last.map_or("none".to_string(), |l| l.to_string()));
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
