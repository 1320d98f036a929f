//! The PyTorch checkpoint format: what the host writes opens in an
//! independent reader (Python's zipfile + a restricted pickle.Unpickler) and
//! in real `torch.load(weights_only=True)` (the torch venv `cargo xtask test`
//! makes, NEURON_TEST_PYTHON_HF), a file written by PyTorch opens in the
//! host, and hostile or broken files are refused in one line without
//! executing anything.

use std::{io::Cursor, path::PathBuf, process::Command};

use neuron_host::checkpoint::{
    pickle::{TensorValue, Value},
    pth,
};
use neuron_plugin_api::DType;
use rand_core::{Rng as _, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde_json::{json, Map, Value as Json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[path = "common/values.rs"]
mod values;
use values::f32_tensor;

fn sample() -> Value {
    Value::Dict(vec![
        (
            Value::str("model"),
            Value::OrderedDict(vec![
                (Value::str("transformer.wte.weight"), f32_tensor(&[4, 6], (0..24).map(|i| i as f32 / 8.0))),
                (Value::str("transformer.h.0.ln_1.bias"), f32_tensor(&[6], (0..6).map(|i| -(i as f32)))),
                (Value::str("scalar"), f32_tensor(&[], [2.5])),
                (
                    Value::str("ids"),
                    Value::Tensor(TensorValue {
                        dtype: DType::I64,
                        shape: vec![3],
                        data: [5i64, -1, 1 << 40].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    }),
                ),
                (
                    Value::str("mask"),
                    Value::Tensor(TensorValue { dtype: DType::BOOL, shape: vec![2], data: vec![1, 0].into() }),
                ),
            ]),
        ),
        (
            Value::str("optimizer"),
            Value::Dict(vec![(Value::str("transformer.wte.weight.exp_avg"), f32_tensor(&[4, 6], [0.0; 24]))]),
        ),
        (
            Value::str("scheduler"),
            Value::Dict(vec![(Value::str("lr"), Value::Float(6e-4)), (Value::str("warmup_steps"), Value::Int(100))]),
        ),
        (Value::str("global_step"), Value::Int(1234)),
        (
            Value::str("plugin"),
            Value::Dict(vec![(Value::str("name"), Value::str("gpt")), (Value::str("version"), Value::str("0.1.0"))]),
        ),
        (Value::str("scores"), Value::List(vec![Value::Float(0.5), Value::Float(0.25)])),
    ])
}

fn dtype_name(d: DType) -> &'static str {
    d.name()
}

/// The same summary the Python readers produce.
fn summary(v: &Value) -> Json {
    fn walk(prefix: &str, v: &Value, out: &mut Map<String, Json>) {
        match v {
            Value::Dict(e) | Value::OrderedDict(e) => {
                let kind = if matches!(v, Value::OrderedDict(_)) { "ordered" } else { "dict" };
                let keys: Vec<String> = e.iter().map(|(k, _)| key(k)).collect();
                out.insert(format!("{prefix}{{}}"), json!({"kind": kind, "keys": keys}));
                for (k, x) in e {
                    walk(&format!("{prefix}/{}", key(k)), x, out);
                }
            }
            Value::List(items) | Value::Tuple(items) => {
                let kind = if matches!(v, Value::List(_)) { "list" } else { "tuple" };
                out.insert(format!("{prefix}[]"), json!({"kind": kind, "len": items.len()}));
                for (i, x) in items.iter().enumerate() {
                    walk(&format!("{prefix}/{i}"), x, out);
                }
            }
            Value::Tensor(t) => {
                use sha2::Digest;
                out.insert(
                    prefix.to_string(),
                    json!({"dtype": dtype_name(t.dtype), "shape": t.shape, "sha256": hex(&sha2::Sha256::digest(&t.data))}),
                );
            }
            Value::None => {
                out.insert(prefix.to_string(), json!({"value": null}));
            }
            Value::Bool(b) => {
                out.insert(prefix.to_string(), json!({"value": b}));
            }
            Value::Int(i) => {
                out.insert(prefix.to_string(), json!({"value": i}));
            }
            Value::Float(f) => {
                out.insert(prefix.to_string(), json!({"value": f}));
            }
            Value::Str(s) => {
                out.insert(prefix.to_string(), json!({"value": s}));
            }
        }
    }
    fn key(k: &Value) -> String {
        match k {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            other => format!("{other:?}"),
        }
    }
    let mut out = Map::new();
    walk("", v, &mut out);
    Json::Object(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn python_summary(python: &str, script: &str, file: &std::path::Path) -> Json {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("summary.json");
    let out = Command::new(python)
        .arg(repo().join("tests/python").join(script))
        .arg(file)
        .arg(&out_path)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{script} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&std::fs::read(out_path).unwrap()).unwrap()
}

fn write(value: &Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("miner_checkpoint.pth");
    let bytes = pth::save(value, "miner_checkpoint", Cursor::new(Vec::new())).unwrap().into_inner();
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

#[test]
fn files_the_host_writes_open_in_an_independent_reader() {
    let python = std::env::var("NEURON_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`"));
    let (_dir, path) = write(&sample());
    assert_eq!(python_summary(&python, "pth_reader.py", &path), summary(&sample()));
}

/// What the runtime writes for a miner and a validator (keys `model`, `optimizer`,
/// `scheduler`, `global_step`, `data`, `plugin`; `scores`, `uid_stats`, `scorer`, ...)
/// opens in the independent reader with every value equal.
#[test]
fn runtime_checkpoints_open_in_an_independent_reader() {
    use neuron_host::{
        chain::AccountId,
        data::SamplerState,
        runtime::{
            checkpoints::{DataPosition, MinerCheckpoint, ModelState, PluginIdentity, ValidatorCheckpoint},
            schedule::LrSchedule,
        },
        scores::UidStats,
    };
    use neuron_plugin_api::Tensor;
    let python = std::env::var("NEURON_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`"));
    let plugin = PluginIdentity {
        name: "gpt".into(),
        version: "0.1.0".into(),
        architecture: "gpt".into(),
        config: "preset = \"tiny\"\nn_layer = 2\n".into(),
    };
    let model = vec![
        Tensor::f32("transformer.wte.weight", &[4, 3], &(0..12).map(|i| i as f32 / 4.0).collect::<Vec<_>>()),
        Tensor::f32("transformer.ln_f.bias", &[3], &[0.5, -0.5, 1e-7]),
    ];
    let optimizer =
        vec![Tensor::f32("transformer.wte.weight.exp_avg", &[4, 3], &[1e-3; 12]), Tensor::i64_scalar("step", 1234)];
    let data = DataPosition { sampler: SamplerState { seed: u64::MAX, step: 1234 }, noise_state: 99 };
    let miner = MinerCheckpoint {
        plugin: plugin.clone(),
        model: model.clone(),
        optimizer: optimizer.clone(),
        schedule: LrSchedule::default(),
        global_step: 1234,
        data,
    }
    .to_value();
    let (_dir, path) = write(&miner);
    let read = python_summary(&python, "pth_reader.py", &path);
    assert_eq!(read, summary(&miner));
    for key in
        ["/model/transformer.wte.weight", "/optimizer/step", "/scheduler/last_lr", "/global_step", "/plugin/name"]
    {
        assert!(read.get(key).is_some(), "{key} in {read}");
    }
    assert_eq!(read["/model{}"]["kind"], "ordered", "model is a state dict (an OrderedDict)");
    let validator = ValidatorCheckpoint {
        model: Some(ModelState { plugin, model, optimizer }),
        global_step: 77,
        block: 1500,
        epoch: 4,
        hotkeys: vec![AccountId::from_name("a"), AccountId::from_name("b")],
        scores: vec![0.25, 0.0],
        weights: vec![1.0, 0.0],
        stats: vec![UidStats { queried: 3, answered: 2, last_loss: 2.5, ..Default::default() }, UidStats::default()],
        scorer_name: "scoring-loss".into(),
        scorer_state: vec![Tensor::f32("baseline", &[1], &[3.0])],
        data,
    }
    .to_value();
    let (_dir, path) = write(&validator);
    assert_eq!(python_summary(&python, "pth_reader.py", &path), summary(&validator));
}

#[test]
fn pytorch_itself_opens_the_files() {
    // Real torch.load(weights_only=True), from the venv `cargo xtask test` makes for the Hugging
    // Face interop (tests/python/requirements-hf.txt).
    let python = std::env::var("NEURON_TEST_PYTHON_HF").unwrap_or_else(|_| {
        panic!(
            "NEURON_TEST_PYTHON_HF is not set: run the suite with `cargo xtask test` (it makes a venv with torch), \
             or point it at a Python interpreter that has torch installed"
        )
    });
    let (_dir, path) = write(&sample());
    assert_eq!(python_summary(&python, "torch_summary.py", &path), summary(&sample()));
}

#[test]
fn a_file_written_by_pytorch_loads_in_the_host() {
    let path = repo().join("tests/fixtures/checkpoints/torch_written.pth");
    let v = pth::load(std::fs::File::open(&path).unwrap()).unwrap();
    let f32s = |v: &Value| match v {
        Value::Tensor(t) if t.dtype == DType::F32 => {
            t.data.chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect::<Vec<_>>()
        }
        other => panic!("not a float tensor: {other:?}"),
    };
    let model = v.get("model").unwrap();
    assert!(matches!(model, Value::OrderedDict(_)));
    let wte = model.get("transformer.wte.weight").unwrap();
    let Value::Tensor(t) = wte else { panic!() };
    assert_eq!(t.shape, [4, 6]);
    assert_eq!(f32s(wte), (0..24).map(|i| i as f32 / 8.0).collect::<Vec<_>>());
    assert_eq!(f32s(model.get("view.a").unwrap()), [2.0, 3.0, 4.0, 5.0], "a view at an offset into a shared storage");
    assert_eq!(f32s(model.get("view.b").unwrap()), [6.0, 7.0, 8.0, 9.0]);
    let Value::Tensor(counts) = model.get("counts").unwrap() else { panic!() };
    assert_eq!((counts.dtype, counts.data.len()), (DType::I64, 24));
    assert_eq!(i64::from_le_bytes(counts.data[8..16].try_into().unwrap()), -2);
    let Value::Tensor(mask) = model.get("mask").unwrap() else { panic!() };
    assert_eq!((mask.dtype, mask.data.as_slice()), (DType::BOOL, &[1u8, 0, 1][..]));
    let Value::Tensor(half) = model.get("half").unwrap() else { panic!() };
    assert_eq!((half.dtype, half.data.as_slice()), (DType::F16, &[0x00u8, 0x38, 0x00, 0xbd][..]));
    assert_eq!(v.get("global_step").unwrap().as_int(), Some(1234));
    assert_eq!(v.get("scheduler").unwrap().get("lr").unwrap().as_float(), Some(3e-4));
    assert_eq!(v.get("plugin").unwrap().get("name").unwrap().as_str(), Some("gpt"));
    // The independent reader agrees with the host on PyTorch's own file.
    let python = std::env::var("NEURON_TEST_PYTHON")
        .unwrap_or_else(|_| panic!("NEURON_TEST_PYTHON is not set: run the tests with `cargo xtask test`"));
    assert_eq!(python_summary(&python, "pth_reader.py", &path), summary(&v));
}

/// A zip archive holding `pickle` as `x/data.pkl` (and nothing else).
fn archive_with_pickle(pickle: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("x/data.pkl", opts).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap().into_inner()
}

fn refused(bytes: &[u8]) -> String {
    let e = pth::load(Cursor::new(bytes.to_vec())).expect_err("must be refused").to_string();
    assert!(!e.contains('\n'), "one line: {e}");
    e
}

#[test]
fn a_pickle_that_would_run_code_is_refused_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let command = format!("touch {}", marker.display());
    // os.system("touch ...") via GLOBAL + REDUCE.
    let mut p = b"\x80\x02cos\nsystem\n".to_vec();
    p.push(b'X');
    p.extend_from_slice(&(command.len() as u32).to_le_bytes());
    p.extend_from_slice(command.as_bytes());
    p.extend_from_slice(b"\x85R.");
    let e = refused(&archive_with_pickle(&p));
    assert!(e.contains("`os.system`") && e.contains("refusing"), "{e}");
    // builtins.exec via protocol 4's STACK_GLOBAL.
    let mut p = b"\x80\x04\x8c\x08builtins\x8c\x04exec\x93".to_vec();
    let code = format!("open('{}', 'w')", marker.display());
    p.push(0x8c);
    p.push(code.len() as u8);
    p.extend_from_slice(code.as_bytes());
    p.extend_from_slice(b"\x85R.");
    let e = refused(&archive_with_pickle(&p));
    assert!(e.contains("`builtins.exec`"), "{e}");
    // An opcode no state dict uses (INST, which calls a class).
    let e = refused(&archive_with_pickle(b"\x80\x02(iposix\nsystem\n."));
    assert!(e.contains("opcode 0x69"), "{e}");
    // BUILD is taken only for an OrderedDict's `_metadata` (every `state_dict()` has one): not
    // another attribute, nor on anything else.
    let e = refused(&archive_with_pickle(b"\x80\x02ccollections\nOrderedDict\n)R}X\x08\x00\x00\x00__dict__}sb."));
    assert!(e.contains("sets attribute `__dict__`"), "{e}");
    let e = refused(&archive_with_pickle(b"\x80\x02]}X\x09\x00\x00\x00_metadata}sb."));
    assert!(e.contains("not an OrderedDict"), "{e}");
    let ok = b"\x80\x02ccollections\nOrderedDict\n)R}X\x09\x00\x00\x00_metadata}sb.";
    assert_eq!(pth::load(Cursor::new(archive_with_pickle(ok))).unwrap(), Value::OrderedDict(vec![]));
    assert!(!marker.exists(), "nothing was executed");
}

#[test]
fn truncated_bit_flipped_and_empty_files_are_refused_in_one_line() {
    let bytes = pth::save(&sample(), "c", Cursor::new(Vec::new())).unwrap().into_inner();
    refused(&[]);
    for cut in (0..bytes.len()).step_by(37) {
        refused(&bytes[..cut]);
    }
    // Every flip is either refused or changes nothing the checkpoint holds
    // (zip metadata such as timestamps is not content).
    let original = pth::load(Cursor::new(bytes.clone())).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let mut refusals = 0;
    for _ in 0..400 {
        let mut flipped = bytes.clone();
        let at = (rng.next_u64() % bytes.len() as u64) as usize;
        flipped[at] ^= 1 << (rng.next_u64() % 8);
        match pth::load(Cursor::new(flipped)) {
            Ok(v) => assert_eq!(v, original, "a flip at byte {at} changed the content without being noticed"),
            Err(e) => {
                assert!(!e.to_string().contains('\n'));
                refusals += 1;
            }
        }
    }
    assert!(refusals > 200, "most flips must be noticed ({refusals} of 400)");
}

#[test]
fn tensors_that_do_not_fit_their_storage_are_refused() {
    // A tensor claiming 4x6 elements over a storage of 24 bytes (6 floats).
    let mut value = sample();
    if let Value::Dict(e) = &mut value {
        if let Value::OrderedDict(m) = &mut e[0].1 {
            if let Value::Tensor(t) = &mut m[0].1 {
                t.data.truncate(24);
            }
        }
    }
    let bytes = pth::save(&value, "c", Cursor::new(Vec::new())).unwrap().into_inner();
    let e = refused(&bytes);
    assert!(e.contains("storage 0 holds 24 bytes but declares 24 elements"), "{e}");
}
