//! Property-based fuzzing of everything the network layer parses from a
//! peer: the `btauth/1` headers, forward queries, the binary forward output,
//! SS58 addresses and keyfile JSON. Nothing may panic, allocate by a declared
//! size, or accept what was not signed.
//!
//! Bounded for CI (`PROPTEST_CASES`, default 256 per property). Inputs that
//! once failed are kept in `tests/corpus/net/proptest-regressions.txt` and
//! replayed first; hand-made inputs in `tests/corpus/net/` (`*.headers`: one
//! `name: value` per line; `*.nhfo`: forward-output bytes) run on every test.

use std::path::{Path, PathBuf};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use neuron_host::{
    net::{
        auth::{self, SignedHeaders, Verifier},
        wire::{self, ForwardQuery},
        Freshness,
    },
    wallet::{keyfile, AccountId, Keypair, Scheme},
};
use neuron_plugin_api::ForwardOutput;
use proptest::{
    prelude::*,
    test_runner::{Config, FileFailurePersistence},
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/net")
}

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/corpus/net/proptest-regressions.txt",
        ))),
        ..Config::default()
    }
}

/// One fixed sender and receiver for the whole run (key generation is not what is fuzzed).
struct Keys {
    sender: Keypair,
    receiver: Keypair,
}

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| Keys {
        sender: Keypair::from_seed(&[7; 32], Scheme::Sr25519).unwrap(),
        receiver: Keypair::from_seed(&[9; 32], Scheme::Sr25519).unwrap(),
    })
}

const NOW: u64 = 1_767_225_600_000_000_000;

fn verifier() -> Verifier {
    Verifier::new(keys().receiver.account(), Freshness::default())
}

fn header_map(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    map
}

/// Header names: mostly the auth headers in any case, sometimes anything.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            auth::HEADER_VERSION,
            auth::HEADER_HOTKEY,
            auth::HEADER_RECEIVER,
            auth::HEADER_NONCE,
            auth::HEADER_CRYPTO,
            auth::HEADER_SIGNATURE,
        ])
        .prop_map(|s| s.to_string()),
        1 => "[a-zA-Z-]{1,24}",
    ]
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..160),
        "(0x)?[0-9a-f]{0,140}".prop_map(String::into_bytes),
        "[0-9]{0,25}".prop_map(String::into_bytes),
        "5[1-9A-HJ-NP-Za-km-z]{47}".prop_map(String::into_bytes),
        Just(b"1".to_vec()),
    ]
}

/// A correctly signed request (headers as pairs, body).
fn signed_request(body: &[u8]) -> Vec<(String, Vec<u8>)> {
    auth::sign(&keys().sender, "POST", "/v1/forward", body, &keys().receiver.account(), Some(NOW))
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Checks that arbitrary headers neither panic nor authenticate.
fn check_headers(pairs: &[(String, Vec<u8>)], body: &[u8]) {
    let map = header_map(pairs);
    let _ = SignedHeaders::parse(&map);
    let result = verifier().verify(&map, "POST", "/v1/forward", body, NOW);
    // Arbitrary headers carry no signature of anyone's over this request; passing would be a forgery.
    assert!(result.is_err(), "arbitrary headers authenticated as {:?}", result.map(|c| c.hotkey));
}

/// Checks that arbitrary bytes decode without panicking, and that whatever
/// decodes is canonical (re-encodes to the same bytes).
fn check_output_bytes(bytes: &[u8]) {
    if let Ok(out) = wire::decode_output(bytes) {
        assert_eq!(wire::encode_output(&out).unwrap(), bytes);
        let q = ForwardQuery {
            version: 1,
            batch: out.batch,
            seq_len: out.positions,
            tokens: vec![],
            output: if out.k == 0 { wire::OutputWanted::Logits } else { wire::OutputWanted::TopK },
            k: out.k,
            last_only: false,
        };
        let _ = wire::check_answer(&q, &out);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_headers_never_panic_or_authenticate(
        pairs in prop::collection::vec((header_name(), header_value()), 0..10),
        body in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        check_headers(&pairs, &body);
    }

    #[test]
    fn a_mutated_signed_request_is_refused(
        body in prop::collection::vec(any::<u8>(), 0..128),
        which in 0usize..5,
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut pairs = signed_request(&body);
        // Compared with this very request: sr25519 signatures are randomised, so signing
        // again gives another signature.
        let original = SignedHeaders::parse(&header_map(&pairs)).ok();
        let value = &mut pairs[which].1;
        if value.is_empty() {
            return Ok(());
        }
        let i = position.index(value.len());
        value[i] ^= flip;
        let map = header_map(&pairs);
        // A flip can land on a case-insensitive hex letter or a `0x` prefix and change nothing.
        let unchanged = SignedHeaders::parse(&map).ok() == original;
        let result = verifier().verify(&map, "POST", "/v1/forward", &body, NOW);
        prop_assert!(result.is_err() || unchanged, "a mutated request authenticated: {:?}", pairs[which]);
    }

    #[test]
    fn a_changed_body_or_target_is_refused(
        body in prop::collection::vec(any::<u8>(), 0..128),
        other in prop::collection::vec(any::<u8>(), 0..128),
        target in "/[a-z0-9/?=&]{0,20}",
    ) {
        let map = header_map(&signed_request(&body));
        if other != body {
            prop_assert!(verifier().verify(&map, "POST", "/v1/forward", &other, NOW).is_err());
        }
        if target != "/v1/forward" {
            prop_assert!(verifier().verify(&map, "POST", &target, &body, NOW).is_err());
        }
        prop_assert!(verifier().verify(&map, "POST", "/v1/forward", &body, NOW).is_ok());
    }

    #[test]
    fn arbitrary_output_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_output_bytes(&bytes);
    }

    #[test]
    fn corrupted_outputs_are_refused_or_canonical(
        batch in 0u32..4, positions in 0u32..4, k in 0u32..4, vocab in 0u32..6,
        field in 0usize..6, value in any::<u32>(), cut in any::<prop::sample::Index>(),
    ) {
        let rows = (batch * positions) as usize;
        let out = ForwardOutput {
            batch, positions, vocab_size: vocab, k,
            logits: if k == 0 { vec![0.5; rows * vocab as usize].into() } else { Default::default() },
            ids: vec![1; rows * k as usize].into(),
            logprobs: vec![-1.0; rows * k as usize].into(),
        };
        let mut bytes = wire::encode_output(&out).unwrap();
        prop_assert_eq!(wire::decode_output(&bytes).unwrap(), out);
        // Overwrite one header field (magic, version+kind, batch, positions, vocab, k) or truncate.
        let at = [0, 4, 8, 12, 16, 20][field];
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
        check_output_bytes(&bytes);
        let n = cut.index(bytes.len() + 1);
        check_output_bytes(&bytes[..n]);
    }

    #[test]
    fn arbitrary_query_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), json in "\\{\"version\":1,\"batch\":[0-9]{1,12},\"seq_len\":[0-9]{1,12},\"tokens\":\\[[0-9,]{0,20}\\],\"output\":\"(top_k|logits)\",\"k\":[0-9]{1,12}\\}") {
        for body in [bytes.as_slice(), json.as_bytes()] {
            if let Ok(q) = serde_json::from_slice::<ForwardQuery>(body) {
                let _ = q.check(1 << 16);
                let _ = q.rows();
            }
        }
    }

    #[test]
    fn arbitrary_addresses_and_keyfiles_never_panic(
        text in "\\PC{0,80}",
        phrase in "[a-z ]{0,120}",
        seed in "(0x)?[0-9a-f]{0,130}",
        crypto in prop_oneof![Just("1".to_string()), Just("0".to_string()), Just("\"sr25519\"".to_string()), "-?[0-9]{1,4}"],
    ) {
        let _ = AccountId::from_ss58(&text);
        for json in [
            format!(r#"{{"secretPhrase":{phrase:?},"cryptoType":{crypto}}}"#),
            format!(r#"{{"secretSeed":{seed:?},"ss58Address":{text:?}}}"#),
            format!(r#"{{"privateKey":{seed:?},"cryptoType":{crypto}}}"#),
            format!(r#"{{"publicKey":{seed:?}}}"#),
            text.clone(),
        ] {
            if let Err(problem) = keyfile::parse(json.as_bytes()) {
                // A secret of a few letters is inside any message; only longer ones can be told apart.
                prop_assert!(phrase.trim().len() < 8 || !problem.contains(phrase.trim()), "echoed a secret: {problem}");
            }
        }
    }
}

/// Hand-made inputs kept in the repository, checked on every run.
#[test]
fn the_corpus_is_handled() {
    let mut seen = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("tests/corpus/net exists") {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        match path.extension().and_then(|e| e.to_str()) {
            Some("headers") => {
                let pairs: Vec<(String, Vec<u8>)> = String::from_utf8_lossy(&bytes)
                    .lines()
                    .filter(|l| !l.starts_with('#'))
                    .filter_map(|l| l.split_once(": "))
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect();
                check_headers(&pairs, b"");
                assert!(
                    verifier().verify(&header_map(&pairs), "POST", "/v1/forward", b"", NOW).is_err(),
                    "{} must not authenticate",
                    path.display()
                );
            }
            Some("nhfo") => check_output_bytes(&bytes),
            _ => continue,
        }
        seen += 1;
    }
    assert!(seen >= 6, "the corpus has its files ({seen} found)");
}
