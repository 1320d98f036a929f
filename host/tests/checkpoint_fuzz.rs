//! Property-based fuzzing of the checkpoint reader (`checkpoint::pth::load` and the restricted
//! unpickler under it). A `.pth` file may come from a stranger, so it must be only data: whatever
//! the bytes, loading never panics or aborts, never allocates by a size the file declares, never
//! hangs, and a refusal is one line.
//!
//! Four properties: arbitrary bytes (and bytes ending in zip end-of-directory records with
//! arbitrary fields); mutations of a real checkpoint written by `pth::save` (bit flips,
//! truncations, overwrites, insertions, extreme values in zip header fields); arbitrary streams
//! of the pickle opcodes the reader knows, wrapped in an archive; and, checked on every load of
//! all of them, a bound on the memory the load takes. A counting global allocator in this test
//! binary keeps per-thread current and peak byte counts, so the tests running in parallel threads
//! do not see each other's allocations.
//!
//! Bounded for CI (`PROPTEST_CASES`, default 256 per property; the whole file runs in a few
//! seconds in debug). Inputs that once failed are kept in
//! `tests/corpus/checkpoint/proptest-regressions.txt` and replayed first. Hand-made hostile files
//! in `tests/corpus/checkpoint/` (described in its README.md) are replayed on every run, each
//! with the refusal it must get; `NEURON_REGENERATE_CORPUS=1` rewrites them (and the README)
//! from the generator below before they are replayed.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    cell::Cell,
    collections::BTreeSet,
    io::{Cursor, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use neuron_host::checkpoint::{
    pickle::{self, Value, MAX_TEXT_BYTES, MAX_VALUES},
    pth,
};
use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config, FileFailurePersistence},
};
use zip::{write::SimpleFileOptions, CompressionMethod, ZipWriter};

// ---------------------------------------------------------------------------------------------
// Memory: a counting allocator, per thread.

/// `System`, counting the bytes each thread has allocated and not yet freed, and the most it
/// has held since its peak was last reset. (Memory freed on another thread than the one that
/// allocated it makes a count go down there: the counts are signed.)
struct Counting;

thread_local! {
    static CURRENT: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn count(delta: i64) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get() + delta;
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Counted as the allocator may do it: the new block before the old one is freed.
            count(new_size as i64);
            count(-(layout.size() as i64));
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the most bytes this thread held above what it held
/// when `f` started (the result itself included, as it is still held when `f` returns).
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    (out, (PEAK.with(Cell::get) - start).max(0) as u64)
}

/// The most memory loading a file of `len` bytes may take.
///
/// What the reader's limits allow: every size a file declares is checked against the file's own
/// length before anything is allocated, so the archive's entries cost at most a few times the
/// file (the pickle read whole, each storage read once, tensors copied out of shared storages up
/// to `pth::MAX_TENSOR_BYTES_PER_FILE_BYTE` = 4 times the file or 1 MiB, and the zip reader's
/// index of entries); hence 8 bytes per byte of file. The unpickler is bounded by its own limits,
/// independent of the file's length: `pickle::MAX_VALUES` objects (values on the stack and copies
/// in the memo, each a few dozen bytes) and `pickle::MAX_TEXT_BYTES` of text. A small pickle can
/// reach those limits by copying from its memo, so they are part of the bound and not multiples
/// of the file. Anything above this is an allocation sized by something the file declared.
fn memory_bound(len: usize) -> u64 {
    const PER_VALUE: u64 = 128;
    (16 << 20) /* fixed costs: zip reader, hash maps, error text */
        + 8 * len as u64
        + MAX_VALUES * PER_VALUE
        + MAX_TEXT_BYTES
}

/// How long one load may take (debug build, a loaded 2-core machine).
const TIME_BOUND: Duration = Duration::from_secs(10);

/// Loads `bytes`, checking what every load must satisfy: no panic (a panic fails the test),
/// a refusal in one line, memory within [`memory_bound`], time within [`TIME_BOUND`].
fn check(bytes: &[u8]) -> Result<Value, String> {
    check_measured(bytes).0
}

/// [`check`], with the peak memory the load took.
fn check_measured(bytes: &[u8]) -> (Result<Value, String>, u64) {
    let input = Cursor::new(bytes);
    let started = Instant::now();
    let (result, peak) = peak_of(|| pth::load(input));
    let elapsed = started.elapsed();
    let bound = memory_bound(bytes.len());
    assert!(peak <= bound, "loading {} bytes took {peak} bytes of memory, more than the {bound} allowed", bytes.len());
    assert!(elapsed < TIME_BOUND, "loading {} bytes took {elapsed:?}", bytes.len());
    let result = result.map_err(|e| {
        let e = e.to_string();
        assert!(!e.contains('\n') && !e.contains('\r'), "a refusal in more than one line: {e:?}");
        assert!(!e.is_empty(), "an empty refusal");
        e
    });
    (result, peak)
}

// ---------------------------------------------------------------------------------------------
// Building checkpoints and pickles.

#[path = "common/values.rs"]
mod values;
use values::f32_tensor;

/// A small checkpoint: a state dict of a few float tensors, ints, strings, a list.
fn sample() -> Value {
    Value::Dict(vec![
        (
            Value::str("model"),
            Value::OrderedDict(vec![
                (Value::str("wte.weight"), f32_tensor(&[3, 4], (0..12).map(|i| i as f32 / 4.0))),
                (Value::str("ln.bias"), f32_tensor(&[4], [0.5, -0.5, 1e-7, 3.0])),
                (Value::str("scalar"), f32_tensor(&[], [2.5])),
            ]),
        ),
        (Value::str("global_step"), Value::Int(1234)),
        (Value::str("big"), Value::Int(-(1 << 40))),
        (Value::str("lr"), Value::Float(6e-4)),
        (Value::str("plugin"), Value::Dict(vec![(Value::str("name"), Value::str("gpt"))])),
        (Value::str("tags"), Value::List(vec![Value::str("a"), Value::Bool(true), Value::None])),
    ])
}

fn saved_sample() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| pth::save(&sample(), "ckpt", Cursor::new(Vec::new())).unwrap().into_inner())
}

/// The sample again, every entry with zip64 extra fields (what a checkpoint over 4 GiB has).
fn saved_sample_zip64() -> &'static [u8] {
    static BYTES: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BYTES.get_or_init(|| {
        let value = sample();
        let (pkl, storages) = pickle::dump(&value);
        let mut entries = vec![("data.pkl".to_string(), pkl)];
        entries.extend(storages.iter().enumerate().map(|(k, s)| (format!("data/{k}"), s.to_vec())));
        zip_of("ckpt", &entries, true)
    })
}

/// A stored (uncompressed) zip of `entries` under the folder `root`.
fn zip_of(root: &str, entries: &[(String, Vec<u8>)], zip64: bool) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored).large_file(zip64);
    for (name, bytes) in entries {
        let name = if root.is_empty() { name.clone() } else { format!("{root}/{name}") };
        zip.start_file(name, stored.with_alignment(64)).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// An archive holding `pickle` as `x/data.pkl` and `storages` (key, bytes) as `x/data/<key>`.
fn archive(pickle: &[u8], storages: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut entries = vec![("data.pkl".to_string(), pickle.to_vec())];
    entries.extend(storages.iter().map(|(k, b)| (format!("data/{k}"), b.clone())));
    zip_of("x", &entries, false)
}

/// The pickle opcodes the reader knows (and INST, which it must refuse).
use neuron_host::checkpoint::pickle::op;

/// A pickle being written by hand.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn proto2() -> Self {
        Pickle(vec![op::PROTO, 2])
    }

    fn op(&mut self, code: u8) -> &mut Self {
        self.0.push(code);
        self
    }

    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }

    fn text(&mut self, s: &str) -> &mut Self {
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.raw(s.as_bytes())
    }

    fn int(&mut self, i: i64) -> &mut Self {
        match i32::try_from(i) {
            Ok(i) => {
                self.0.push(op::BININT);
                self.raw(&i.to_le_bytes())
            }
            Err(_) => {
                self.0.extend_from_slice(&[op::LONG1, 8]);
                self.raw(&i.to_le_bytes())
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) -> &mut Self {
        self.0.push(op::GLOBAL);
        self.raw(format!("{module}\n{name}\n").as_bytes())
    }

    fn ints(&mut self, items: &[i64]) -> &mut Self {
        self.op(op::MARK);
        for &i in items {
            self.int(i);
        }
        self.op(op::TUPLE)
    }

    /// `torch._utils._rebuild_tensor_v2(storage, offset, shape, stride, False, OrderedDict())`
    /// over the persistent storage `('storage', torch.<storage>, key, 'cpu', numel)`.
    fn tensor(
        &mut self,
        storage: &str,
        key: &str,
        numel: i64,
        offset: i64,
        shape: &[i64],
        stride: &[i64],
    ) -> &mut Self {
        self.global("torch._utils", "_rebuild_tensor_v2").op(op::MARK);
        self.op(op::MARK).text("storage").global("torch", storage).text(key).text("cpu").int(numel);
        self.op(op::TUPLE).op(op::BINPERSID);
        self.int(offset).ints(shape).ints(stride).op(op::NEWFALSE);
        self.global("collections", "OrderedDict").op(op::EMPTY_TUPLE).op(op::REDUCE);
        self.op(op::TUPLE).op(op::REDUCE)
    }

    fn stop(&mut self) -> Vec<u8> {
        self.op(op::STOP);
        std::mem::take(&mut self.0)
    }
}

/// `{'w': tensor}` over storage "0" of 4 floats: a well-formed file but for the tensor's numbers.
fn one_tensor(numel: i64, offset: i64, shape: &[i64], stride: &[i64]) -> Vec<u8> {
    let mut p = Pickle::proto2();
    p.op(op::EMPTY_DICT).text("w").tensor("FloatStorage", "0", numel, offset, shape, stride).op(op::SETITEM);
    archive(&p.stop(), &[("0", [1f32, 2.0, 3.0, 4.0].iter().flat_map(|f| f.to_le_bytes()).collect())])
}

// ---------------------------------------------------------------------------------------------
// Strategies.

fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/corpus/checkpoint/proptest-regressions.txt",
        ))),
        ..Config::default()
    }
}

/// Numbers a header field or an opcode argument may be given: mostly the ones that break things.
fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(0xFFFF),
        Just(0xFFFF_FFFF),
        Just(0xFFFF_FFFE),
        Just(u64::MAX),
        Just(i64::MAX as u64),
        Just(1 << 36),
        0u64..4096,
        any::<u64>(),
    ]
}

/// Zip end-of-central-directory records (classic, and zip64 with its locator) with arbitrary
/// fields, so arbitrary bytes reach the zip reader's directory parsing.
fn end_records() -> impl Strategy<Value = Vec<u8>> {
    let classic = (prop::collection::vec(extreme(), 7), prop::collection::vec(any::<u8>(), 0..8)).prop_map(|(f, c)| {
        let mut r = b"PK\x05\x06".to_vec();
        for &v in &f[..4] {
            r.extend_from_slice(&(v as u16).to_le_bytes());
        }
        r.extend_from_slice(&(f[4] as u32).to_le_bytes());
        r.extend_from_slice(&(f[5] as u32).to_le_bytes());
        r.extend_from_slice(&(c.len() as u16).to_le_bytes());
        r.extend_from_slice(&c);
        r
    });
    let zip64 = (prop::collection::vec(extreme(), 10), any::<bool>()).prop_map(|(f, honest_offset)| {
        // zip64 end record (56 bytes), locator (20), classic record with 0xFFFF/0xFFFFFFFF.
        let mut r = b"PK\x06\x06".to_vec();
        r.extend_from_slice(&44u64.to_le_bytes());
        r.extend_from_slice(&[45, 0, 45, 0]);
        r.extend_from_slice(&(f[0] as u32).to_le_bytes());
        r.extend_from_slice(&(f[1] as u32).to_le_bytes());
        for &v in &f[2..6] {
            r.extend_from_slice(&v.to_le_bytes());
        }
        r.extend_from_slice(b"PK\x06\x07");
        r.extend_from_slice(&(f[6] as u32).to_le_bytes());
        // Where the zip64 record is: 0 (at the start of these records), or anything.
        r.extend_from_slice(&(if honest_offset { 0 } else { f[7] }).to_le_bytes());
        r.extend_from_slice(&(f[8] as u32).to_le_bytes());
        r.extend_from_slice(b"PK\x05\x06");
        r.extend_from_slice(&[0xFF; 16]);
        r.extend_from_slice(&[0, 0]);
        r
    });
    prop_oneof![classic, zip64]
}

/// One change to a file.
#[derive(Clone, Debug)]
enum Mutation {
    Flip {
        at: Index,
        bit: u8,
    },
    Truncate {
        at: Index,
    },
    Overwrite {
        at: Index,
        bytes: Vec<u8>,
    },
    Insert {
        at: Index,
        bytes: Vec<u8>,
    },
    Remove {
        at: Index,
        len: usize,
    },
    /// A field at `offset` after one of the file's zip signatures set to `value`, `width` bytes wide.
    Field {
        signature: Index,
        offset: usize,
        width: usize,
        value: u64,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let bytes = || prop::collection::vec(any::<u8>(), 1..24);
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
        2 => (any::<Index>(), bytes()).prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
        1 => (any::<Index>(), bytes()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => (any::<Index>(), 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        4 => (any::<Index>(), 4usize..56, prop::sample::select(vec![2usize, 4, 8]), extreme())
            .prop_map(|(signature, offset, width, value)| Mutation::Field { signature, offset, width, value }),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    match m {
        Mutation::Flip { at, bit } if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        Mutation::Truncate { at } => bytes.truncate(at.index(bytes.len() + 1)),
        Mutation::Overwrite { at, bytes: new } if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            let n = new.len().min(bytes.len() - i);
            bytes[i..i + n].copy_from_slice(&new[..n]);
        }
        Mutation::Insert { at, bytes: new } => {
            let i = at.index(bytes.len() + 1);
            bytes.splice(i..i, new.iter().copied());
        }
        Mutation::Remove { at, len } if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes.drain(i..(i + len).min(bytes.len()));
        }
        Mutation::Field { signature, offset, width, value } => {
            let signatures: Vec<usize> = (0..bytes.len().saturating_sub(3))
                .filter(|&i| {
                    bytes[i..i + 2] == *b"PK"
                        && matches!(&bytes[i + 2..i + 4], [1, 2] | [3, 4] | [5, 6] | [6, 6] | [6, 7])
                })
                .collect();
            if signatures.is_empty() {
                return;
            }
            let at = signatures[signature.index(signatures.len())] + offset;
            if at + width <= bytes.len() {
                bytes[at..at + width].copy_from_slice(&value.to_le_bytes()[..*width]);
            }
        }
        _ => {}
    }
}

/// Module and global names for GLOBAL and STACK_GLOBAL: the allowed ones, dangerous ones,
/// near misses and anything.
fn global_name() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        prop::sample::select(vec![
            ("collections", "OrderedDict"),
            ("torch._utils", "_rebuild_tensor_v2"),
            ("torch._utils", "_rebuild_parameter"),
            ("torch", "FloatStorage"),
            ("torch", "LongStorage"),
            ("torch", "BoolStorage"),
            ("torch", "Tensor"),
            ("os", "system"),
            ("builtins", "eval"),
            ("builtins", "getattr"),
            ("posix", "system"),
            ("subprocess", "Popen"),
            ("torch", "load"),
            ("collections", "defaultdict"),
        ])
        .prop_map(|(m, n)| (m.to_string(), n.to_string())),
        ("[a-z_.]{0,12}", "[A-Za-z_\n]{0,12}"),
        (".{0,300}", ".{0,4}"),
    ]
}

/// One opcode with small random arguments.
fn opcode() -> impl Strategy<Value = Vec<u8>> {
    use op::*;
    let small_index = || prop_oneof![3 => 0u32..4, 1 => any::<u32>()];
    let plain = prop::sample::select(vec![
        MARK,
        EMPTY_DICT,
        EMPTY_LIST,
        EMPTY_TUPLE,
        TUPLE,
        TUPLE1,
        TUPLE2,
        TUPLE3,
        SETITEM,
        SETITEMS,
        APPEND,
        APPENDS,
        NONE,
        NEWTRUE,
        NEWFALSE,
        STACK_GLOBAL,
        REDUCE,
        BINPERSID,
        MEMOIZE,
        BUILD,
        STOP,
        INST,
    ])
    .prop_map(|c| vec![c]);
    let ints = prop_oneof![
        any::<u8>().prop_map(|b| vec![BININT1, b]),
        any::<u16>().prop_map(|v| [&[BININT2][..], &v.to_le_bytes()].concat()),
        any::<i32>().prop_map(|v| [&[BININT][..], &v.to_le_bytes()].concat()),
        (0u8..12, prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(n, b)| [&[LONG1, n][..], &b].concat()),
        any::<f64>().prop_map(|f| [&[BINFLOAT][..], &f.to_be_bytes()].concat()),
    ];
    let strings = prop_oneof![
        // A length that matches the text, or is a little off, or is anything.
        ("[a-z0-9_]{0,10}", -2i64..3, any::<bool>()).prop_map(|(s, off, honest)| {
            let n = if honest { s.len() as i64 } else { s.len() as i64 + off };
            [&[BINUNICODE][..], &(n.max(0) as u32).to_le_bytes(), s.as_bytes()].concat()
        }),
        (extreme(), "[a-z]{0,8}")
            .prop_map(|(n, s)| [&[BINUNICODE][..], &(n as u32).to_le_bytes(), s.as_bytes()].concat()),
        "[a-z0-9]{0,10}".prop_map(|s| [&[SHORT_BINUNICODE, s.len() as u8][..], s.as_bytes()].concat()),
        (extreme(), "[a-z]{0,8}").prop_map(|(n, s)| [&[BINUNICODE8][..], &n.to_le_bytes(), s.as_bytes()].concat()),
        prop::collection::vec(any::<u8>(), 0..6).prop_map(|b| [&[SHORT_BINUNICODE, b.len() as u8][..], &b].concat()),
    ];
    let globals = prop_oneof![
        global_name().prop_map(|(m, n)| format!("c{m}\n{n}\n").into_bytes()),
        global_name().prop_map(|(m, n)| {
            let (m, n) = (&m.as_bytes()[..m.len().min(255)], &n.as_bytes()[..n.len().min(255)]);
            [&[SHORT_BINUNICODE, m.len() as u8][..], m, &[SHORT_BINUNICODE, n.len() as u8], n, &[STACK_GLOBAL]].concat()
        }),
        global_name().prop_map(|(m, n)| format!("i{m}\n{n}\n").into_bytes()),
    ];
    let memo = prop_oneof![
        small_index().prop_map(|i| vec![BINPUT, i as u8]),
        small_index().prop_map(|i| [&[LONG_BINPUT][..], &i.to_le_bytes()].concat()),
        small_index().prop_map(|i| vec![BINGET, i as u8]),
        small_index().prop_map(|i| [&[LONG_BINGET][..], &i.to_le_bytes()].concat()),
    ];
    let framing = prop_oneof![
        any::<u8>().prop_map(|v| vec![PROTO, v]),
        extreme().prop_map(|n| [&[FRAME][..], &n.to_le_bytes()].concat()),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    let n = || prop_oneof![3 => -2i64..6, 1 => extreme().prop_map(|v| v as i64)];
    let tensor = (
        prop::sample::select(vec!["FloatStorage", "LongStorage", "ByteStorage", "HalfStorage", "Storage"]),
        prop::sample::select(vec!["0", "1", "", "../0", "0\n"]),
        n(),
        n(),
        prop::collection::vec(n(), 0..3),
        prop::collection::vec(n(), 0..3),
    )
        .prop_map(|(storage, key, numel, offset, shape, stride)| {
            let mut p = Pickle::default();
            p.tensor(storage, key, numel, offset, &shape, &stride);
            p.0
        });
    prop_oneof![6 => plain, 2 => ints, 2 => strings, 2 => globals, 3 => memo, 1 => framing, 1 => tensor]
}

/// A stream of opcodes: usually with the protocol header and STOP, sometimes not.
fn opcode_stream() -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), prop::collection::vec(opcode(), 0..48), any::<bool>()).prop_map(|(proto, ops, stop)| {
        let mut p = if proto { vec![op::PROTO, 2] } else { Vec::new() };
        p.extend(ops.concat());
        if stop {
            p.push(op::STOP);
        }
        p
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_are_refused_in_one_line(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        end in prop::option::of(end_records()),
    ) {
        let mut bytes = bytes;
        bytes.extend(end.unwrap_or_default());
        let _ = check(&bytes);
    }

    #[test]
    fn a_mutated_checkpoint_is_refused_in_one_line_or_loads(
        zip64 in any::<bool>(),
        mutations in prop::collection::vec(mutation(), 1..5),
    ) {
        let mut bytes = if zip64 { saved_sample_zip64() } else { saved_sample() }.to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        // A mutation may hit only zip metadata (a timestamp, a comment): then it loads, as some value.
        let _ = check(&bytes);
    }

    #[test]
    fn arbitrary_pickles_are_refused_quickly_in_one_line(
        pickle in opcode_stream(),
        storages in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..3),
    ) {
        let storages: Vec<(String, Vec<u8>)> = storages.into_iter().enumerate().map(|(k, s)| (k.to_string(), s)).collect();
        let storages: Vec<(&str, Vec<u8>)> = storages.iter().map(|(k, s)| (k.as_str(), s.clone())).collect();
        let _ = check(&archive(&pickle, &storages));
    }
}

/// The sample loads, the mutation bases load, and the allocator counts: the properties above
/// would pass vacuously otherwise.
#[test]
fn the_bases_load_and_the_memory_count_is_real() {
    assert_eq!(check(saved_sample()).unwrap(), sample());
    assert_eq!(check(saved_sample_zip64()).unwrap(), sample());
    let (v, peak) = peak_of(|| vec![1u8; 10 << 20]);
    assert!(peak >= 10 << 20, "{peak}");
    drop(v);
    // Loading a checkpoint holds at least its tensors.
    let big = pth::save(
        &Value::Dict(vec![(Value::str("w"), f32_tensor(&[1 << 20], (0..1 << 20).map(|i| i as f32)))]),
        "c",
        Cursor::new(Vec::new()),
    )
    .unwrap()
    .into_inner();
    let (loaded, peak) = peak_of(|| pth::load(Cursor::new(&big)));
    loaded.unwrap();
    assert!((4 << 20..=3 * big.len() as u64).contains(&peak), "{peak} for a file of {}", big.len());
}

// ---------------------------------------------------------------------------------------------
// The corpus.

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/checkpoint")
}

/// Each corpus file: its name, what it is (for the README), and a part of the refusal it must get.
const CORPUS: &[(&str, &str, &str)] = &[
    ("empty.pth", "an empty file", "not a readable zip archive"),
    ("truncated.pth", "a real checkpoint cut in half", "not a readable zip archive"),
    ("zip64-declares-64GiB.pth", "data.pkl's zip64 headers declare 64 GiB", "declares 68719476736 bytes in a file of"),
    ("deflate-bomb.pth", "data.pkl deflated: 8 MiB of zeros in 52 KiB", "is compressed"),
    ("dotdot-entry.pth", "a checkpoint with an extra entry named `../../evil.sh`", "outside its folder"),
    ("memo-bomb.pth", "a list appended to itself through the memo 200 times (2^200 values)", "memo copies included"),
    ("nested-100000-lists.pth", "100,000 lists each appended into the one below", "more than 256 deep"),
    (
        "one-storage-2000-views.pth",
        "one 16 KiB storage viewed whole by 2,000 tensors (32 MiB from a small file)",
        "more than 4 times the file's",
    ),
    ("os-system-global-reduce.pth", "os.system('touch pwned') through GLOBAL and REDUCE", "`os.system`"),
    ("exec-stack-global.pth", "builtins.exec through protocol 4's STACK_GLOBAL", "`builtins.exec`"),
    ("inst-posix-system.pth", "posix.system through INST", "opcode 0x69"),
    (
        "newline-in-global-name.pth",
        "STACK_GLOBAL of `os\\n`.`system` (a refusal quoting it once broke into two lines)",
        "`os\\n.system`",
    ),
    (
        "newline-in-entry-name.pth",
        "an entry named `evil\\nsh` beside x/data.pkl (a refusal quoting it once broke into two lines)",
        "`evil\\nsh` outside its folder",
    ),
    ("negative-tensor-size.pth", "a tensor of shape (-1,)", "a tensor shape is not a non-negative integer"),
    ("negative-tensor-stride.pth", "a tensor of stride (-1,)", "a tensor stride is not a non-negative integer"),
    ("offset-past-end.pth", "a tensor at offset 2^40 of a 4-element storage", "reads past the end of storage 0"),
];

/// The corpus files' bytes, by name.
fn generate(name: &str) -> Vec<u8> {
    match name {
        "empty.pth" => Vec::new(),
        "truncated.pth" => saved_sample()[..saved_sample().len() / 2].to_vec(),
        "zip64-declares-64GiB.pth" => {
            let pickle = Pickle::proto2().op(op::EMPTY_DICT).stop();
            let mut bytes = zip_of("x", &[("data.pkl".into(), pickle.clone())], true);
            // Both sizes (uncompressed, compressed) in each zip64 extra field: 64 GiB.
            let honest = [(pickle.len() as u64).to_le_bytes(), (pickle.len() as u64).to_le_bytes()].concat();
            let hostile = [(64u64 << 30).to_le_bytes(), (64u64 << 30).to_le_bytes()].concat();
            let mut patched = 0;
            for i in 0..bytes.len() - honest.len() {
                if bytes[i..i + honest.len()] == honest[..] {
                    bytes[i..i + honest.len()].copy_from_slice(&hostile);
                    patched += 1;
                }
            }
            assert_eq!(patched, 2, "the local and the central zip64 fields");
            bytes
        }
        "deflate-bomb.pth" => {
            let zeros = 8usize << 20;
            let deflated = deflate_zeros(zeros);
            let mut bytes = archive(&deflated, &[]);
            // Say what the entry is: deflated, 8 MiB uncompressed, with the zeros' CRC.
            let crc = crc32(&vec![0u8; zeros]);
            let name = b"x/data.pkl";
            let mut patched = 0;
            for (signature, method_at, crc_at, name_len_at, name_at) in
                [(*b"PK\x03\x04", 8, 14, 26, 30), (*b"PK\x01\x02", 10, 16, 28, 46)]
            {
                for i in 0..bytes.len() - name_at - name.len() {
                    let len = u16::from_le_bytes([bytes[i + name_len_at], bytes[i + name_len_at + 1]]) as usize;
                    if bytes[i..i + 4] == signature && len == name.len() && bytes[i + name_at..][..len] == name[..] {
                        bytes[i + method_at..][..2].copy_from_slice(&8u16.to_le_bytes());
                        bytes[i + crc_at..][..4].copy_from_slice(&crc.to_le_bytes());
                        bytes[i + crc_at + 8..][..4].copy_from_slice(&(zeros as u32).to_le_bytes());
                        patched += 1;
                    }
                }
            }
            assert_eq!(patched, 2, "the local and the central header");
            bytes
        }
        "dotdot-entry.pth" => {
            let pickle = Pickle::proto2().op(op::EMPTY_DICT).stop();
            zip_of("", &[("x/data.pkl".into(), pickle), ("../../evil.sh".into(), b"rm -rf ~\n".to_vec())], false)
        }
        "memo-bomb.pth" => {
            let mut p = Pickle::proto2();
            p.raw(&[op::EMPTY_LIST, op::BINPUT, 0]);
            for _ in 0..200 {
                p.raw(&[op::BINGET, 0, op::BINGET, 0, op::APPEND, op::BINPUT, 0]);
            }
            archive(&p.stop(), &[])
        }
        "nested-100000-lists.pth" => {
            let mut p = Pickle::proto2();
            p.raw(&vec![op::EMPTY_LIST; 100_000]).raw(&vec![op::APPEND; 99_999]);
            archive(&p.stop(), &[])
        }
        "one-storage-2000-views.pth" => {
            // The first view puts the rebuild function, the storage, the shape and the stride in
            // the memo as it passes them; the others take them from there, a few bytes each.
            let numel = 4096i64;
            let mut p = Pickle::proto2();
            p.op(op::EMPTY_DICT).op(op::MARK).text("t0");
            p.global("torch._utils", "_rebuild_tensor_v2").raw(&[op::BINPUT, 0, op::MARK]);
            p.op(op::MARK).text("storage").global("torch", "FloatStorage").text("0").text("cpu").int(numel);
            p.raw(&[op::TUPLE, op::BINPERSID, op::BINPUT, 1, op::BININT1, 0]);
            p.ints(&[numel]).raw(&[op::BINPUT, 2]).ints(&[1]).raw(&[op::BINPUT, 3]);
            p.raw(&[op::NEWFALSE, op::NONE, op::TUPLE, op::REDUCE]);
            for i in 1..2000 {
                p.text(&format!("t{i}"));
                p.raw(&[op::BINGET, 0, op::MARK, op::BINGET, 1, op::BININT1, 0, op::BINGET, 2, op::BINGET, 3]);
                p.raw(&[op::NEWFALSE, op::NONE, op::TUPLE, op::REDUCE]);
            }
            p.op(op::SETITEMS);
            let storage: Vec<u8> = (0..numel).flat_map(|i| (i as f32).to_le_bytes()).collect();
            archive(&p.stop(), &[("0", storage)])
        }
        "os-system-global-reduce.pth" => archive(
            &Pickle::proto2().global("os", "system").text("touch pwned").op(op::TUPLE1).op(op::REDUCE).stop(),
            &[],
        ),
        "exec-stack-global.pth" => {
            let mut p = Pickle(vec![op::PROTO, 4]);
            p.raw(b"\x8c\x08builtins\x8c\x04exec\x93").text("open('pwned', 'w')").op(op::TUPLE1).op(op::REDUCE);
            archive(&p.stop(), &[])
        }
        "inst-posix-system.pth" => archive(&Pickle::proto2().op(op::MARK).raw(b"iposix\nsystem\n").stop(), &[]),
        "newline-in-global-name.pth" => {
            let mut p = Pickle(vec![op::PROTO, 4]);
            p.raw(b"\x8c\x03os\n\x8c\x06system\x93").text("touch pwned").op(op::TUPLE1).op(op::REDUCE);
            archive(&p.stop(), &[])
        }
        "newline-in-entry-name.pth" => {
            let pickle = Pickle::proto2().op(op::EMPTY_DICT).stop();
            zip_of("", &[("x/data.pkl".into(), pickle), ("evil\nsh".into(), b"rm -rf ~\n".to_vec())], false)
        }
        "negative-tensor-size.pth" => one_tensor(4, 0, &[-1], &[1]),
        "negative-tensor-stride.pth" => one_tensor(4, 0, &[4], &[-1]),
        "offset-past-end.pth" => one_tensor(4, 1 << 40, &[4], &[1]),
        other => panic!("no generator for corpus file {other}"),
    }
}

/// A raw deflate stream (one fixed-Huffman block) of `n` zero bytes: a literal 0, then matches of
/// length 258 at distance 1. About 1,030 to 1, the most deflate gives.
fn deflate_zeros(n: usize) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u32,
        len: u32,
    }
    impl Bits {
        fn put(&mut self, value: u32, len: u32) {
            self.acc |= value << self.len;
            self.len += len;
            while self.len >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.len -= 8;
            }
        }
        /// A Huffman code, most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            let reversed = code.reverse_bits() >> (32 - len);
            self.put(reversed, len);
        }
    }
    let mut b = Bits { out: Vec::new(), acc: 0, len: 0 };
    b.put(1, 1); // final block
    b.put(1, 2); // fixed Huffman codes
    b.code(0x30, 8); // literal 0
    let mut left = n - 1;
    while left > 0 {
        // Length 258 is symbol 285 (8-bit code 0b11000101); shorter lengths for the tail.
        let len = left.min(258);
        if len == 258 {
            b.code(0b1100_0101, 8);
        } else if len >= 3 {
            // Lengths 3..=10 are symbols 257..=264 (7-bit codes 1..=8) with no extra bits;
            // anything longer is split into runs of 10 or less.
            let len = len.min(10);
            b.code(len as u32 - 2, 7);
            b.code(0, 5);
            left -= len;
            continue;
        } else {
            b.code(0x30, 8);
            left -= 1;
            continue;
        }
        b.code(0, 5); // distance 1
        left -= len;
    }
    b.code(0, 7); // end of block
    if b.len > 0 {
        b.out.push(b.acc as u8);
    }
    b.out
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn readme() -> String {
    let mut s = String::from(
        "# Hostile checkpoint files\n\nReplayed by `tests/checkpoint_fuzz.rs` on every run: each must be refused in one line \
         naming the quoted reason, quickly and within the test's memory bound. Written by the generator in that file \
         (`NEURON_REGENERATE_CORPUS=1 cargo test -p neuron-host --test checkpoint_fuzz the_corpus`); do not edit by hand.\n\n",
    );
    for (name, what, answer) in CORPUS {
        s.push_str(&format!("- `{name}`: {what}. Refused: \"{answer}\".\n"));
    }
    s.push_str("- `proptest-regressions.txt`: seeds of inputs the properties once failed on, replayed first.\n");
    s
}

/// Hand-made hostile files kept in the repository, each refused with its own reason.
#[test]
fn the_corpus_is_refused() {
    let dir = corpus_dir();
    if std::env::var("NEURON_REGENERATE_CORPUS").is_ok_and(|v| v == "1") {
        for (name, _, _) in CORPUS {
            std::fs::write(dir.join(name), generate(name)).unwrap();
        }
        std::fs::write(dir.join("README.md"), readme()).unwrap();
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("tests/corpus/checkpoint exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != "README.md" && n != "proptest-regressions.txt")
        .collect();
    let listed: BTreeSet<String> = CORPUS.iter().map(|(n, _, _)| n.to_string()).collect();
    assert_eq!(on_disk, listed, "every corpus file has its expected refusal in CORPUS, and every entry its file");
    assert_eq!(std::fs::read_to_string(dir.join("README.md")).unwrap(), readme(), "README.md is up to date");
    let mut total = 0;
    for (name, _, answer) in CORPUS {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(bytes.len() <= 200 << 10, "{name} is {} bytes", bytes.len());
        assert_eq!(bytes, generate(name), "{name} is what the generator writes");
        total += bytes.len();
        let (result, peak) = check_measured(&bytes);
        eprintln!("{name}: {} bytes, peak {peak} bytes: {result:?}", bytes.len());
        match result {
            Ok(v) => panic!("{name} loaded as {v:?}"),
            Err(e) => assert!(e.contains(answer), "{name}: expected \"{answer}\" in: {e}"),
        }
    }
    assert!(total < 1 << 20, "the corpus is {total} bytes");
}
