//! `neuron-host checkpoint inspect PATH`: what a checkpoint holds — its role,
//! plugin, step, and every key with the dtype and shape of each tensor —
//! read through the same restricted reader resuming uses. A file that reader
//! refuses is reported in one line (non-zero exit); nothing in it is run.

use std::path::Path;

use crate::{
    checkpoint::{pickle::Value, writer::load_file},
    error::{Error, Result},
};

pub fn inspect(path: &Path) -> Result<()> {
    let value = load_file(path).map_err(Error::Config)?;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    print!("{}", describe(&value, path, size));
    Ok(())
}

/// The report `inspect` prints.
pub fn describe(value: &Value, path: &Path, size: u64) -> String {
    let mut out = String::new();
    let int = |k: &str| value.get(k).and_then(Value::as_int);
    out.push_str(&format!("file         {} ({size} bytes)\n", path.display()));
    if let Some(role) = value.get("role").and_then(Value::as_str) {
        out.push_str(&format!("role         {role}\n"));
    }
    if let Some(p) = value.get("plugin") {
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        out.push_str(&format!("plugin       {} {} (architecture {})\n", s("name"), s("version"), s("architecture")));
    }
    if let Some(step) = int("global_step") {
        out.push_str(&format!("global_step  {step}\n"));
    }
    if let Some(block) = int("block") {
        out.push_str(&format!("block        {block} (epoch {})\n", int("epoch").unwrap_or(0)));
    }
    if let Some(s) = value.get("scheduler") {
        let f = |k: &str| s.get(k).and_then(Value::as_float).unwrap_or(f64::NAN);
        out.push_str(&format!(
            "scheduler    lr {:e}, min_lr {:e}, warm-up {}, decay {}, last lr {:e}\n",
            f("lr"),
            f("min_lr"),
            s.get("warmup_steps").and_then(Value::as_int).unwrap_or(0),
            s.get("decay_steps").and_then(Value::as_int).unwrap_or(0),
            f("last_lr")
        ));
    }
    let (mut tensors, mut elements, mut bytes) = (0u64, 0u64, 0u64);
    let mut keys = String::new();
    walk(value, "", &mut keys, &mut |t| {
        tensors += 1;
        elements += t.shape.iter().product::<u64>();
        bytes += t.data.len() as u64;
    });
    out.push_str(&format!("tensors      {tensors} ({elements} elements, {bytes} bytes)\n"));
    out.push_str("keys\n");
    out.push_str(&keys);
    out
}

fn walk(v: &Value, prefix: &str, out: &mut String, count: &mut dyn FnMut(&crate::checkpoint::pickle::TensorValue)) {
    match v {
        Value::Dict(entries) | Value::OrderedDict(entries) => {
            for (k, v) in entries {
                let key = match k {
                    Value::Str(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    other => format!("{other:?}"),
                };
                let name = if prefix.is_empty() { key } else { format!("{prefix}.{key}") };
                match v {
                    Value::Dict(_) | Value::OrderedDict(_) => walk(v, &name, out, count),
                    _ => {
                        out.push_str(&format!("  {name}  {}\n", leaf(v)));
                        if let Value::Tensor(t) = v {
                            count(t);
                        }
                    }
                }
            }
        }
        other => out.push_str(&format!("  (top level)  {}\n", leaf(other))),
    }
}

fn leaf(v: &Value) -> String {
    match v {
        Value::Tensor(t) => format!("{} {:?}", t.dtype.name(), t.shape),
        Value::Str(s) if s.contains('\n') || s.len() > 60 => {
            format!("str ({} bytes: {:?}...)", s.len(), s.chars().take(40).collect::<String>())
        }
        Value::Str(s) => format!("{s:?}"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => format!("{f:e}"),
        Value::Bool(b) => b.to_string(),
        Value::None => "None".into(),
        Value::List(items) | Value::Tuple(items) => format!("list of {}", items.len()),
        Value::Dict(_) | Value::OrderedDict(_) => "dict".into(),
    }
}
