//! `btauth/1`: hotkey-signed HTTP requests, as the Bittensor SDK (v11,
//! `bittensor.http_auth`) signs and verifies them.
//!
//! A request carries `X-Bittensor-Version: 1`, `X-Bittensor-Hotkey` (the
//! sender's SS58 address), `X-Bittensor-Receiver` (the receiver's),
//! `X-Bittensor-Nonce` (the sender's clock in nanoseconds since the Unix
//! epoch, decimal), `X-Bittensor-Signature` (`0x` + hex of 64 bytes) and, for
//! schemes other than sr25519 only, `X-Bittensor-Crypto`. The signature covers
//! these lines joined by `\n`, UTF-8, no trailing newline:
//!
//! ```text
//! btauth/1
//! sr25519                    the scheme
//! POST                       the method, upper-case
//! /v1/forward?x=1            the request target: path and query as sent
//! 9f86d0…                    lower-case hex sha256 of the raw body
//! 1767225600000000000        the nonce
//! 5Grw…                      sender
//! 5FHn…                      receiver ("-" when unbound)
//! ```
//!
//! The verifier checks, in the SDK's order: the headers' shape, the receiver
//! (this neuron's hotkey; unbound requests are refused), freshness (at most
//! `max_age` old, at most `allowed_skew` ahead), the signature under the
//! declared scheme only, and replay. The replay cache is written only after
//! the signature verifies, so unauthenticated traffic cannot fill it or burn
//! another sender's nonces. Error messages never echo the signature or payload.

use std::{
    collections::{HashSet, VecDeque},
    sync::Mutex,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

use super::access::PeerStanding;
use crate::wallet::{AccountId, Keypair, Scheme};

pub const PROTOCOL: &str = "btauth/1";
pub const VERSION: &str = "1";

pub const HEADER_VERSION: &str = "x-bittensor-version";
pub const HEADER_HOTKEY: &str = "x-bittensor-hotkey";
pub const HEADER_RECEIVER: &str = "x-bittensor-receiver";
pub const HEADER_NONCE: &str = "x-bittensor-nonce";
pub const HEADER_CRYPTO: &str = "x-bittensor-crypto";
pub const HEADER_SIGNATURE: &str = "x-bittensor-signature";

/// The SDK's defaults: ten seconds back, two seconds of clock drift ahead.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(10);
pub const DEFAULT_ALLOWED_SKEW: Duration = Duration::from_secs(2);

/// The exact bytes a `btauth/1` signature covers.
pub fn build_payload(
    scheme: Scheme,
    method: &str,
    target: &str,
    body: &[u8],
    nonce_ns: u64,
    sender: &str,
    receiver: Option<&str>,
) -> Vec<u8> {
    let body_hash = hex::encode(Sha256::digest(body));
    let nonce = nonce_ns.to_string();
    let method = method.to_ascii_uppercase();
    let lines: [&str; 8] =
        [PROTOCOL, scheme.name(), &method, target, &body_hash, &nonce, sender, receiver.unwrap_or("-")];
    lines.join("\n").into_bytes()
}

/// Nanoseconds since the Unix epoch by the system clock.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Signs a request with `keypair` for `receiver`; returns the headers to send.
/// `target` is the path and query exactly as sent. Each request (a retry
/// included) needs a fresh nonce; `None` takes the clock.
pub fn sign(
    keypair: &Keypair,
    method: &str,
    target: &str,
    body: &[u8],
    receiver: &AccountId,
    nonce_ns: Option<u64>,
) -> Vec<(HeaderName, HeaderValue)> {
    let nonce = nonce_ns.unwrap_or_else(now_ns);
    let sender = keypair.ss58();
    let receiver = receiver.to_ss58();
    let scheme = keypair.scheme();
    let payload = build_payload(scheme, method, target, body, nonce, &sender, Some(&receiver));
    let signature = format!("0x{}", hex::encode(keypair.sign(&payload)));
    let value = |s: &str| HeaderValue::from_str(s).expect("ASCII header value");
    let mut headers = vec![
        (HeaderName::from_static(HEADER_VERSION), HeaderValue::from_static(VERSION)),
        (HeaderName::from_static(HEADER_HOTKEY), value(&sender)),
        (HeaderName::from_static(HEADER_NONCE), value(&nonce.to_string())),
        (HeaderName::from_static(HEADER_SIGNATURE), value(&signature)),
        (HeaderName::from_static(HEADER_RECEIVER), value(&receiver)),
    ];
    if scheme != Scheme::Sr25519 {
        headers.push((HeaderName::from_static(HEADER_CRYPTO), HeaderValue::from_static(scheme.name())));
    }
    headers
}

/// Why a request was not authenticated. Every variant answers 401; the text
/// is safe to return to the (unauthenticated) caller.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// A header is missing, repeated or unparseable.
    #[error("malformed authentication: {0}")]
    Malformed(String),
    #[error("wrong receiver: {0}")]
    WrongReceiver(&'static str),
    #[error("stale request: {0}")]
    Stale(String),
    #[error("bad signature: the signature does not verify against the claimed hotkey")]
    BadSignature,
    #[error("replayed request: this nonce was already accepted from this hotkey")]
    Replayed,
}

/// The auth headers of a request, parsed but not yet verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub sender: String,
    pub receiver: Option<String>,
    pub nonce_ns: u64,
    pub scheme: Scheme,
    pub signature: Vec<u8>,
}

fn single<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<Option<&'a str>, AuthError> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(AuthError::Malformed(format!("{name} appears more than once")));
    }
    first.to_str().map(Some).map_err(|_| AuthError::Malformed(format!("{name} is not ASCII")))
}

impl SignedHeaders {
    /// Parses the `X-Bittensor-*` headers (names are case-insensitive).
    pub fn parse(headers: &HeaderMap) -> Result<SignedHeaders, AuthError> {
        let malformed = |m: String| AuthError::Malformed(m);
        if single(headers, HEADER_VERSION)? != Some(VERSION) {
            return Err(malformed(format!("missing or unsupported {HEADER_VERSION} (expected {VERSION})")));
        }
        let sender = match single(headers, HEADER_HOTKEY)? {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => return Err(malformed(format!("missing {HEADER_HOTKEY}"))),
        };
        let raw_nonce = single(headers, HEADER_NONCE)?.ok_or_else(|| malformed(format!("missing {HEADER_NONCE}")))?;
        let nonce_ns =
            parse_nonce(raw_nonce).ok_or_else(|| malformed(format!("{HEADER_NONCE} is not a decimal integer")))?;
        let scheme = match single(headers, HEADER_CRYPTO)? {
            None => Scheme::Sr25519,
            Some(s) => Scheme::parse(s).ok_or_else(|| malformed(format!("unsupported {HEADER_CRYPTO}")))?,
        };
        let raw_signature =
            single(headers, HEADER_SIGNATURE)?.ok_or_else(|| malformed(format!("missing {HEADER_SIGNATURE}")))?;
        let hex_text = raw_signature.strip_prefix("0x").unwrap_or(raw_signature);
        let signature = hex::decode(hex_text).map_err(|_| malformed(format!("{HEADER_SIGNATURE} is not hex")))?;
        let receiver = single(headers, HEADER_RECEIVER)?.map(str::to_string);
        Ok(SignedHeaders { sender, receiver, nonce_ns, scheme, signature })
    }
}

/// A nonce: ASCII digits (at most 20), fitting in 64 bits. Leading zeros are
/// accepted and the payload uses the canonical decimal, as the SDK does.
fn parse_nonce(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The authenticated sender of a verified request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub hotkey: AccountId,
    pub nonce_ns: u64,
    pub scheme: Scheme,
    /// Where the caller stands on the subnet, when the server's access rule
    /// looked it up.
    pub standing: Option<PeerStanding>,
}

/// Freshness window of a verifier.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Freshness {
    pub max_age: Duration,
    pub allowed_skew: Duration,
}

impl Default for Freshness {
    fn default() -> Self {
        Freshness { max_age: DEFAULT_MAX_AGE, allowed_skew: DEFAULT_ALLOWED_SKEW }
    }
}

/// Verifies requests addressed to one hotkey, remembering accepted nonces.
pub struct Verifier {
    receiver: String,
    freshness: Freshness,
    seen: NonceCache,
}

impl Verifier {
    pub fn new(receiver: AccountId, freshness: Freshness) -> Verifier {
        // Entries must outlive the whole window, or a replay inside the gap would pass.
        let retention = freshness.max_age + freshness.allowed_skew + Duration::from_secs(1);
        Verifier { receiver: receiver.to_ss58(), freshness, seen: NonceCache::new(retention) }
    }

    /// Authenticates a request: `target` is the path and query as received,
    /// `body` the raw bytes. `now_ns` is the clock (injectable for tests).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        method: &str,
        target: &str,
        body: &[u8],
        now_ns: u64,
    ) -> Result<Caller, AuthError> {
        let h = SignedHeaders::parse(headers)?;
        match &h.receiver {
            None => return Err(AuthError::WrongReceiver("this neuron requires receiver-bound requests")),
            Some(r) if *r != self.receiver => {
                return Err(AuthError::WrongReceiver("the request was signed for a different receiving hotkey"))
            }
            Some(_) => {}
        }
        let age = i128::from(now_ns) - i128::from(h.nonce_ns);
        if age > self.freshness.max_age.as_nanos() as i128 {
            return Err(AuthError::Stale(format!(
                "the nonce is older than the {}s freshness window",
                self.freshness.max_age.as_secs_f64()
            )));
        }
        if -age > self.freshness.allowed_skew.as_nanos() as i128 {
            return Err(AuthError::Stale(format!(
                "the nonce is more than {}s in the future",
                self.freshness.allowed_skew.as_secs_f64()
            )));
        }
        let malformed = || AuthError::Malformed("invalid hotkey address or signature encoding".into());
        let sender = AccountId::from_ss58(&h.sender).map_err(|_| malformed())?;
        if h.signature.len() != 64 {
            return Err(malformed());
        }
        let payload = build_payload(h.scheme, method, target, body, h.nonce_ns, &h.sender, h.receiver.as_deref());
        if !sender.verify(h.scheme, &payload, &h.signature) {
            return Err(AuthError::BadSignature);
        }
        if !self.seen.insert(sender, h.nonce_ns) {
            return Err(AuthError::Replayed);
        }
        Ok(Caller { hotkey: sender, nonce_ns: h.nonce_ns, scheme: h.scheme, standing: None })
    }

    /// This verifier's hotkey (the receiver it accepts).
    pub fn receiver(&self) -> &str {
        &self.receiver
    }
}

/// Accepted `(hotkey, nonce)` pairs, each kept for `retention` and then
/// forgotten (by then the freshness check refuses the nonce anyway).
struct NonceCache {
    retention: Duration,
    inner: Mutex<NonceCacheInner>,
}

#[derive(Default)]
struct NonceCacheInner {
    seen: HashSet<(AccountId, u64)>,
    expiry: VecDeque<(Instant, (AccountId, u64))>,
}

impl NonceCache {
    fn new(retention: Duration) -> NonceCache {
        NonceCache { retention, inner: Mutex::new(NonceCacheInner::default()) }
    }

    /// `true` (and remembered) when the pair is new.
    fn insert(&self, hotkey: AccountId, nonce: u64) -> bool {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while inner.expiry.front().is_some_and(|(t, _)| *t <= now) {
            let (_, key) = inner.expiry.pop_front().expect("front exists");
            inner.seen.remove(&key);
        }
        if !inner.seen.insert((hotkey, nonce)) {
            return false;
        }
        inner.expiry.push_back((now + self.retention, (hotkey, nonce)));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        pairs.into_iter().collect()
    }

    #[test]
    fn the_payload_is_the_sdks_layout() {
        let p = build_payload(Scheme::Sr25519, "post", "/a?b=1", b"x", 5, "S", None);
        assert_eq!(
            String::from_utf8(p).unwrap(),
            "btauth/1\nsr25519\nPOST\n/a?b=1\n2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\n5\nS\n-"
        );
    }

    #[test]
    fn a_signed_request_verifies_once() {
        for scheme in [Scheme::Sr25519, Scheme::Ed25519] {
            let sender = Keypair::generate(scheme, 12).unwrap();
            let receiver = Keypair::generate(Scheme::Sr25519, 12).unwrap();
            let v = Verifier::new(receiver.account(), Freshness::default());
            let now = now_ns();
            let h = headers(sign(&sender, "POST", "/v1/forward", b"{}", &receiver.account(), Some(now)));
            let caller = v.verify(&h, "POST", "/v1/forward", b"{}", now).unwrap();
            assert_eq!((caller.hotkey, caller.scheme), (sender.account(), scheme));
            assert_eq!(v.verify(&h, "POST", "/v1/forward", b"{}", now), Err(AuthError::Replayed));
        }
    }

    #[test]
    fn a_bad_signature_does_not_burn_the_nonce() {
        let sender = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let receiver = Keypair::generate(Scheme::Sr25519, 12).unwrap();
        let v = Verifier::new(receiver.account(), Freshness::default());
        let now = now_ns();
        let h = headers(sign(&sender, "POST", "/p", b"body", &receiver.account(), Some(now)));
        assert_eq!(v.verify(&h, "POST", "/p", b"b0dy", now), Err(AuthError::BadSignature));
        assert!(v.verify(&h, "POST", "/p", b"body", now).is_ok());
    }

    #[test]
    fn nonces_must_be_plain_decimal() {
        assert_eq!(parse_nonce("0005"), Some(5));
        for bad in ["", "-5", "+5", " 5", "5 ", "1_000", "99999999999999999999", "0x10"] {
            assert_eq!(parse_nonce(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn expired_nonces_are_forgotten() {
        let cache = NonceCache::new(Duration::from_millis(20));
        let a = AccountId([1; 32]);
        assert!(cache.insert(a, 1));
        assert!(!cache.insert(a, 1));
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.insert(a, 2));
        assert!(cache.insert(a, 1), "the first entry expired");
        assert_eq!(cache.inner.lock().unwrap().seen.len(), 2);
    }
}
