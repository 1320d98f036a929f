//! The part of Python's pickle that PyTorch state dicts use, and nothing more.
//!
//! The writer emits protocol 2 (what `torch.save` writes): dicts, ordered
//! dicts, lists, tuples, ints, floats, strings, bools, `None`, and tensors
//! as `torch._utils._rebuild_tensor_v2` over persistent-id storages.
//!
//! The reader is a restricted unpickler: a stack machine that understands
//! those opcodes (plus the memo and protocol-4 framing opcodes Python's
//! pickler may emit, and BUILD on an ordered dict: the `_metadata` attribute
//! every `model.state_dict()` carries, which is read and dropped) and calls
//! only an allow-list of globals — ordered dicts,
//! tensor and parameter rebuilders, storage types. Any other global (the way
//! a hostile pickle runs code) or opcode is refused with an error naming it;
//! nothing is ever executed.

use std::collections::HashMap;

use abi_stable::std_types::RVec;
use neuron_plugin_api::DType;

/// A value in a checkpoint.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    #[default]
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    Tuple(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// `collections.OrderedDict` (what `model.state_dict()` is).
    OrderedDict(Vec<(Value, Value)>),
    Tensor(TensorValue),
}

/// A contiguous tensor: little-endian elements, row-major. The bytes are an
/// `RVec` so a plugin's exported tensor moves into a checkpoint without a copy.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorValue {
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub data: RVec<u8>,
}

impl Value {
    pub fn str(s: &str) -> Self {
        Value::Str(s.to_string())
    }

    /// Entries of a dict or ordered dict.
    pub fn entries(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(e) | Value::OrderedDict(e) => Some(e),
            _ => None,
        }
    }

    /// The value under a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries()?.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v)
    }

    /// The value under a string key of a dict, to change or take.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        let (Value::Dict(entries) | Value::OrderedDict(entries)) = self else { return None };
        entries.iter_mut().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|(_, v)| v)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }
}

/// PyTorch's storage class for a dtype.
pub fn storage_name(dtype: DType) -> Option<&'static str> {
    Some(match dtype {
        DType::F32 => "FloatStorage",
        DType::F64 => "DoubleStorage",
        DType::F16 => "HalfStorage",
        DType::BF16 => "BFloat16Storage",
        DType::I64 => "LongStorage",
        DType::I32 => "IntStorage",
        DType::U8 => "ByteStorage",
        DType::BOOL => "BoolStorage",
        _ => return None,
    })
}

fn storage_dtype(name: &str) -> Option<DType> {
    Some(match name {
        "FloatStorage" => DType::F32,
        "DoubleStorage" => DType::F64,
        "HalfStorage" => DType::F16,
        "BFloat16Storage" => DType::BF16,
        "LongStorage" => DType::I64,
        "IntStorage" => DType::I32,
        "ByteStorage" => DType::U8,
        "BoolStorage" => DType::BOOL,
        _ => return None,
    })
}

mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const REDUCE: u8 = b'R';
    pub const BINPERSID: u8 = b'Q';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const MEMOIZE: u8 = 0x94;
    pub const BUILD: u8 = b'b';
}

/// A storage a pickle refers to by persistent id.
#[derive(Clone, Debug, PartialEq)]
pub struct StorageRef {
    pub key: String,
    pub dtype: DType,
    /// Elements in the storage.
    pub numel: u64,
}

/// A tensor as the pickle describes it, before its storage is read.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorRef {
    pub storage: StorageRef,
    pub offset: u64,
    pub shape: Vec<u64>,
    pub stride: Vec<u64>,
}

/// Encodes `value` as a protocol-2 pickle. Tensors are written as storages
/// `0, 1, ...` in the order met; their bytes are returned alongside.
pub fn dump(value: &Value) -> (Vec<u8>, Vec<&[u8]>) {
    let mut w = Writer { out: vec![op::PROTO, 2], storages: Vec::new() };
    w.value(value);
    w.out.push(op::STOP);
    (w.out, w.storages)
}

struct Writer<'a> {
    out: Vec<u8>,
    storages: Vec<&'a [u8]>,
}

impl<'a> Writer<'a> {
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(op::GLOBAL);
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }

    fn string(&mut self, s: &str) {
        self.out.push(op::BINUNICODE);
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, i: i64) {
        if (0..=0xff).contains(&i) {
            self.out.extend_from_slice(&[op::BININT1, i as u8]);
        } else if (0..=0xffff).contains(&i) {
            self.out.push(op::BININT2);
            self.out.extend_from_slice(&(i as u16).to_le_bytes());
        } else if i32::try_from(i).is_ok() {
            self.out.push(op::BININT);
            self.out.extend_from_slice(&(i as i32).to_le_bytes());
        } else {
            // LONG1: minimal two's-complement little-endian bytes.
            let bytes = i.to_le_bytes();
            let mut n = 8;
            while n > 1
                && ((bytes[n - 1] == 0 && bytes[n - 2] & 0x80 == 0)
                    || (bytes[n - 1] == 0xff && bytes[n - 2] & 0x80 != 0))
            {
                n -= 1;
            }
            self.out.extend_from_slice(&[op::LONG1, n as u8]);
            self.out.extend_from_slice(&bytes[..n]);
        }
    }

    fn tuple(&mut self, items: &'a [Value]) {
        match items.len() {
            0 => self.out.push(op::EMPTY_TUPLE),
            1..=3 => {
                for v in items {
                    self.value(v);
                }
                self.out.push([op::TUPLE1, op::TUPLE2, op::TUPLE3][items.len() - 1]);
            }
            _ => {
                self.out.push(op::MARK);
                for v in items {
                    self.value(v);
                }
                self.out.push(op::TUPLE);
            }
        }
    }

    fn ints_tuple(&mut self, items: &[u64]) {
        let values: Vec<Value> = items.iter().map(|&i| Value::Int(i as i64)).collect();
        // Small: encode inline without borrowing from `self`'s lifetime.
        let mut inner = Writer { out: Vec::new(), storages: Vec::new() };
        inner.tuple(&values);
        self.out.extend_from_slice(&inner.out);
    }

    fn items(&mut self, entries: &'a [(Value, Value)]) {
        for chunk in entries.chunks(1000) {
            self.out.push(op::MARK);
            for (k, v) in chunk {
                self.value(k);
                self.value(v);
            }
            self.out.push(op::SETITEMS);
        }
    }

    fn value(&mut self, v: &'a Value) {
        match v {
            Value::None => self.out.push(op::NONE),
            Value::Bool(b) => self.out.push(if *b { op::NEWTRUE } else { op::NEWFALSE }),
            Value::Int(i) => self.int(*i),
            Value::Float(f) => {
                self.out.push(op::BINFLOAT);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Str(s) => self.string(s),
            Value::Tuple(items) => self.tuple(items),
            Value::List(items) => {
                self.out.push(op::EMPTY_LIST);
                for chunk in items.chunks(1000) {
                    self.out.push(op::MARK);
                    for item in chunk {
                        self.value(item);
                    }
                    self.out.push(op::APPENDS);
                }
            }
            Value::Dict(entries) => {
                self.out.push(op::EMPTY_DICT);
                self.items(entries);
            }
            Value::OrderedDict(entries) => {
                self.global("collections", "OrderedDict");
                self.out.push(op::EMPTY_TUPLE);
                self.out.push(op::REDUCE);
                self.items(entries);
            }
            Value::Tensor(t) => {
                let key = self.storages.len().to_string();
                self.storages.push(&t.data);
                let numel: u64 = t.shape.iter().product();
                let mut stride = vec![1u64; t.shape.len()];
                for i in (0..t.shape.len().saturating_sub(1)).rev() {
                    stride[i] = stride[i + 1] * t.shape[i + 1];
                }
                self.global("torch._utils", "_rebuild_tensor_v2");
                self.out.push(op::MARK);
                // Persistent id: ('storage', storage type, key, location, numel).
                self.out.push(op::MARK);
                self.string("storage");
                self.global("torch", storage_name(t.dtype).expect("dtypes written are known"));
                self.string(&key);
                self.string("cpu");
                self.int(numel as i64);
                self.out.push(op::TUPLE);
                self.out.push(op::BINPERSID);
                self.int(0);
                self.ints_tuple(&t.shape);
                self.ints_tuple(&stride);
                self.out.push(op::NEWFALSE);
                self.global("collections", "OrderedDict");
                self.out.push(op::EMPTY_TUPLE);
                self.out.push(op::REDUCE);
                self.out.push(op::TUPLE);
                self.out.push(op::REDUCE);
            }
        }
    }
}

/// An object during unpickling: plain values, and the few callables and
/// references the allow-list admits (which may sit inside tuples until a
/// REDUCE or BINPERSID consumes them).
#[derive(Clone, Debug)]
enum Obj {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Obj>),
    Tuple(Vec<Obj>),
    Dict(Vec<(Obj, Obj)>),
    OrderedDict(Vec<(Obj, Obj)>),
    OrderedDictType,
    RebuildTensor,
    RebuildParameter,
    StorageType(DType),
    Storage(StorageRef),
    Tensor(TensorRef),
}

/// Why a pickle was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PickleError(pub String);

fn err<T>(message: impl Into<String>) -> Result<T, PickleError> {
    Err(PickleError(message.into()))
}

/// What the reader produced: the value, with tensors still as references to
/// storages (the caller reads and checks those).
#[derive(Clone, Debug, PartialEq)]
pub enum Loaded {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Loaded>),
    Tuple(Vec<Loaded>),
    Dict(Vec<(Loaded, Loaded)>),
    OrderedDict(Vec<(Loaded, Loaded)>),
    Tensor(TensorRef),
}

/// Opcodes a pickle may run before it is refused (a hostile file must not
/// spin or exhaust memory).
const MAX_OPS: usize = 50_000_000;

enum Slot {
    Mark,
    Obj(Obj),
}

/// Reads a pickle with the restricted machine described in the module docs.
pub fn load(data: &[u8]) -> Result<Loaded, PickleError> {
    let mut stack: Vec<Slot> = Vec::new();
    let mut memo: HashMap<u32, Obj> = HashMap::new();
    let mut pos = 0usize;
    for _ in 0..MAX_OPS {
        let at = pos;
        let code = take(data, &mut pos, 1)?[0];
        match code {
            op::PROTO => {
                let v = take(data, &mut pos, 1)?[0];
                if v > 5 {
                    return err(format!("pickle protocol {v} is newer than any PyTorch writes"));
                }
            }
            op::FRAME => {
                take(data, &mut pos, 8)?;
            }
            op::STOP => {
                return match (stack.pop(), stack.is_empty()) {
                    (Some(Slot::Obj(o)), true) => finish(o),
                    _ => err("the pickle does not end with exactly one value"),
                };
            }
            op::MARK => stack.push(Slot::Mark),
            op::EMPTY_DICT => stack.push(Slot::Obj(Obj::Dict(Vec::new()))),
            op::EMPTY_LIST => stack.push(Slot::Obj(Obj::List(Vec::new()))),
            op::EMPTY_TUPLE => stack.push(Slot::Obj(Obj::Tuple(Vec::new()))),
            op::NONE => stack.push(Slot::Obj(Obj::None)),
            op::NEWTRUE => stack.push(Slot::Obj(Obj::Bool(true))),
            op::NEWFALSE => stack.push(Slot::Obj(Obj::Bool(false))),
            op::BININT1 => stack.push(Slot::Obj(Obj::Int(i64::from(take(data, &mut pos, 1)?[0])))),
            op::BININT2 => {
                let b = take(data, &mut pos, 2)?;
                stack.push(Slot::Obj(Obj::Int(i64::from(u16::from_le_bytes([b[0], b[1]])))));
            }
            op::BININT => {
                let b = take(data, &mut pos, 4)?;
                stack.push(Slot::Obj(Obj::Int(i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes"))))));
            }
            op::LONG1 => {
                let n = take(data, &mut pos, 1)?[0] as usize;
                if n > 8 {
                    return err(format!("an integer of {n} bytes at byte {at} does not fit in 64 bits"));
                }
                let b = take(data, &mut pos, n)?;
                let mut bytes = if b.last().is_some_and(|x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                bytes[..n].copy_from_slice(b);
                stack.push(Slot::Obj(Obj::Int(i64::from_le_bytes(bytes))));
            }
            op::BINFLOAT => {
                let b = take(data, &mut pos, 8)?;
                stack.push(Slot::Obj(Obj::Float(f64::from_be_bytes(b.try_into().expect("8 bytes")))));
            }
            op::BINUNICODE | op::SHORT_BINUNICODE | op::BINUNICODE8 => {
                let n = match code {
                    op::SHORT_BINUNICODE => take(data, &mut pos, 1)?[0] as usize,
                    op::BINUNICODE => u32::from_le_bytes(take(data, &mut pos, 4)?.try_into().expect("4 bytes")) as usize,
                    _ => usize::try_from(u64::from_le_bytes(take(data, &mut pos, 8)?.try_into().expect("8 bytes")))
                        .map_err(|_| PickleError("a string longer than memory".into()))?,
                };
                let text = take(data, &mut pos, n)?;
                let s = std::str::from_utf8(text).map_err(|_| PickleError(format!("a string at byte {at} is not UTF-8")))?;
                stack.push(Slot::Obj(Obj::Str(s.to_string())));
            }
            op::GLOBAL => {
                let module = read_line(data, &mut pos)?;
                let name = read_line(data, &mut pos)?;
                stack.push(Slot::Obj(global(&module, &name)?));
            }
            op::STACK_GLOBAL => {
                let name = pop_str(&mut stack)?;
                let module = pop_str(&mut stack)?;
                stack.push(Slot::Obj(global(&module, &name)?));
            }
            op::TUPLE => {
                let items = pop_mark(&mut stack)?;
                stack.push(Slot::Obj(Obj::Tuple(items)));
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                let items = pop_n(&mut stack, n, at)?;
                stack.push(Slot::Obj(Obj::Tuple(items)));
            }
            op::SETITEM | op::SETITEMS => {
                let items = if code == op::SETITEM { pop_n(&mut stack, 2, at)? } else { pop_mark(&mut stack)? };
                if items.len() % 2 != 0 {
                    return err(format!("SETITEMS at byte {at} with an odd number of items"));
                }
                let mut it = items.into_iter();
                let mut pairs = Vec::new();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((k, v));
                }
                match stack.last_mut() {
                    Some(Slot::Obj(Obj::Dict(e) | Obj::OrderedDict(e))) => e.extend(pairs),
                    _ => return err(format!("SETITEMS at byte {at} on something that is not a dict")),
                }
            }
            op::APPEND | op::APPENDS => {
                let items = if code == op::APPEND { pop_n(&mut stack, 1, at)? } else { pop_mark(&mut stack)? };
                match stack.last_mut() {
                    Some(Slot::Obj(Obj::List(l))) => l.extend(items),
                    _ => return err(format!("APPENDS at byte {at} on something that is not a list")),
                }
            }
            op::BINPERSID => {
                let pid = pop_n(&mut stack, 1, at)?.pop().expect("one item");
                stack.push(Slot::Obj(Obj::Storage(storage_ref(pid).map_err(|e| PickleError(format!("{} (at byte {at})", e.0)))?)));
            }
            op::REDUCE => {
                let mut pair = pop_n(&mut stack, 2, at)?;
                let args = pair.pop().expect("two items");
                let callable = pair.pop().expect("two items");
                let result = reduce(callable, args).map_err(|e| PickleError(format!("{} (at byte {at})", e.0)))?;
                stack.push(Slot::Obj(result));
            }
            // `OrderedDict.__reduce__` sets instance attributes with BUILD; a
            // state dict's only one is `_metadata` (module versions), which the
            // host does not need. Anything else is refused.
            op::BUILD => {
                let state = pop_n(&mut stack, 1, at)?.pop().expect("one item");
                let Obj::Dict(attributes) = state else {
                    return err(format!("BUILD at byte {at} with a state that is not a dict of attributes"));
                };
                if let Some((name, _)) = attributes.iter().find(|(k, _)| !matches!(k, Obj::Str(s) if s == "_metadata")) {
                    let name = match name {
                        Obj::Str(s) => s.clone(),
                        _ => "a non-string key".into(),
                    };
                    return err(format!("BUILD at byte {at} sets attribute `{name}`; a state dict carries only `_metadata`"));
                }
                if !matches!(stack.last(), Some(Slot::Obj(Obj::OrderedDict(_)))) {
                    return err(format!("BUILD at byte {at} on something that is not an OrderedDict"));
                }
            }
            op::BINPUT | op::LONG_BINPUT => {
                let idx = if code == op::BINPUT {
                    u32::from(take(data, &mut pos, 1)?[0])
                } else {
                    u32::from_le_bytes(take(data, &mut pos, 4)?.try_into().expect("4 bytes"))
                };
                match stack.last() {
                    Some(Slot::Obj(o)) => memo.insert(idx, o.clone()),
                    _ => return err(format!("PUT at byte {at} without a value")),
                };
            }
            op::MEMOIZE => {
                let idx = memo.len() as u32;
                match stack.last() {
                    Some(Slot::Obj(o)) => memo.insert(idx, o.clone()),
                    _ => return err(format!("MEMOIZE at byte {at} without a value")),
                };
            }
            op::BINGET | op::LONG_BINGET => {
                let idx = if code == op::BINGET {
                    u32::from(take(data, &mut pos, 1)?[0])
                } else {
                    u32::from_le_bytes(take(data, &mut pos, 4)?.try_into().expect("4 bytes"))
                };
                let obj = memo.get(&idx).cloned().ok_or_else(|| PickleError(format!("GET of unknown memo {idx} at byte {at}")))?;
                stack.push(Slot::Obj(obj));
            }
            other => {
                return err(format!(
                    "pickle opcode 0x{other:02x} at byte {at} is not one a state dict uses; refusing the file (it may run code)"
                ))
            }
        }
    }
    err("the pickle runs more than fifty million opcodes")
}

fn take<'d>(data: &'d [u8], pos: &mut usize, n: usize) -> Result<&'d [u8], PickleError> {
    match pos.checked_add(n).filter(|&e| e <= data.len()) {
        Some(end) => {
            let s = &data[*pos..end];
            *pos = end;
            Ok(s)
        }
        None => err(format!("the pickle is truncated at byte {}", *pos)),
    }
}

fn read_line(data: &[u8], pos: &mut usize) -> Result<String, PickleError> {
    let rest = &data[*pos..];
    let Some(end) = rest.iter().take(257).position(|&b| b == b'\n') else {
        return err("a GLOBAL name is not terminated within 256 bytes");
    };
    let s = std::str::from_utf8(&rest[..end]).map_err(|_| PickleError("a GLOBAL name is not UTF-8".into()))?;
    *pos += end + 1;
    Ok(s.to_string())
}

fn pop_str(stack: &mut Vec<Slot>) -> Result<String, PickleError> {
    match stack.pop() {
        Some(Slot::Obj(Obj::Str(s))) => Ok(s),
        _ => err("STACK_GLOBAL without two strings"),
    }
}

fn pop_n(stack: &mut Vec<Slot>, n: usize, at: usize) -> Result<Vec<Obj>, PickleError> {
    if stack.len() < n {
        return err(format!("an opcode at byte {at} needs {n} values on the stack"));
    }
    stack
        .split_off(stack.len() - n)
        .into_iter()
        .map(|s| match s {
            Slot::Obj(o) => Ok(o),
            Slot::Mark => err(format!("an opcode at byte {at} met a MARK where it needed a value")),
        })
        .collect()
}

fn pop_mark(stack: &mut Vec<Slot>) -> Result<Vec<Obj>, PickleError> {
    let Some(mark) = stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
        return err("an opcode needs a MARK that is not there");
    };
    let items = stack.split_off(mark + 1);
    stack.pop();
    items
        .into_iter()
        .map(|s| match s {
            Slot::Obj(o) => Ok(o),
            Slot::Mark => unreachable!("the last mark was found above"),
        })
        .collect()
}

fn global(module: &str, name: &str) -> Result<Obj, PickleError> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Obj::OrderedDictType,
        ("torch._utils", "_rebuild_tensor_v2") => Obj::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Obj::RebuildParameter,
        ("torch", storage) if storage_dtype(storage).is_some() => Obj::StorageType(storage_dtype(storage).expect("checked")),
        _ => {
            return err(format!(
                "the pickle names the global `{module}.{name}`, which a checkpoint never needs; refusing the file (loading it could run code)"
            ))
        }
    })
}

fn non_negative(o: &Obj, what: &str) -> Result<u64, PickleError> {
    match o {
        Obj::Int(i) if *i >= 0 => Ok(*i as u64),
        _ => err(format!("{what} is not a non-negative integer")),
    }
}

fn int_tuple(o: &Obj, what: &str) -> Result<Vec<u64>, PickleError> {
    match o {
        Obj::Tuple(items) => items.iter().map(|i| non_negative(i, what)).collect(),
        _ => err(format!("{what} is not a tuple of integers")),
    }
}

/// ('storage', <storage type>, key, location, numel) -> a storage reference.
fn storage_ref(pid: Obj) -> Result<StorageRef, PickleError> {
    let Obj::Tuple(items) = pid else { return err("a persistent id is not a tuple") };
    match items.as_slice() {
        [Obj::Str(kind), Obj::StorageType(dtype), Obj::Str(key), Obj::Str(_location), numel] if kind == "storage" => {
            if key.is_empty() || key.len() > 64 || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return err(format!("storage key `{key}` is not a plain name"));
            }
            Ok(StorageRef { key: key.clone(), dtype: *dtype, numel: non_negative(numel, "a storage size")? })
        }
        _ => err("a persistent id is not ('storage', type, key, location, size)"),
    }
}

fn reduce(callable: Obj, args: Obj) -> Result<Obj, PickleError> {
    let Obj::Tuple(args) = args else { return err("REDUCE without an argument tuple") };
    match callable {
        Obj::OrderedDictType if args.is_empty() => Ok(Obj::OrderedDict(Vec::new())),
        Obj::OrderedDictType => err("OrderedDict called with arguments"),
        // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])
        Obj::RebuildTensor if (6..=7).contains(&args.len()) => {
            let Obj::Storage(storage) = args[0].clone() else { return err("_rebuild_tensor_v2 without a storage") };
            Ok(Obj::Tensor(TensorRef {
                storage,
                offset: non_negative(&args[1], "a tensor offset")?,
                shape: int_tuple(&args[2], "a tensor shape")?,
                stride: int_tuple(&args[3], "a tensor stride")?,
            }))
        }
        Obj::RebuildTensor => err(format!("_rebuild_tensor_v2 called with {} arguments", args.len())),
        // _rebuild_parameter(tensor, requires_grad, hooks): keep the tensor.
        Obj::RebuildParameter => match args.into_iter().next() {
            Some(t @ Obj::Tensor(_)) => Ok(t),
            _ => err("_rebuild_parameter without a tensor"),
        },
        other => err(format!("{} is not callable", describe(&other))),
    }
}

fn describe(o: &Obj) -> &'static str {
    match o {
        Obj::StorageType(_) => "a storage type",
        Obj::Storage(_) => "a storage",
        Obj::Tensor(_) => "a tensor",
        _ => "a plain value",
    }
}

/// The finished object as a [`Loaded`] value; references that never became
/// tensors are refused.
fn finish(o: Obj) -> Result<Loaded, PickleError> {
    let pairs = |e: Vec<(Obj, Obj)>| -> Result<Vec<(Loaded, Loaded)>, PickleError> {
        e.into_iter().map(|(k, v)| Ok((finish(k)?, finish(v)?))).collect()
    };
    Ok(match o {
        Obj::None => Loaded::None,
        Obj::Bool(b) => Loaded::Bool(b),
        Obj::Int(i) => Loaded::Int(i),
        Obj::Float(f) => Loaded::Float(f),
        Obj::Str(s) => Loaded::Str(s),
        Obj::List(l) => Loaded::List(l.into_iter().map(finish).collect::<Result<_, _>>()?),
        Obj::Tuple(l) => Loaded::Tuple(l.into_iter().map(finish).collect::<Result<_, _>>()?),
        Obj::Dict(e) => Loaded::Dict(pairs(e)?),
        Obj::OrderedDict(e) => Loaded::OrderedDict(pairs(e)?),
        Obj::Tensor(t) => Loaded::Tensor(t),
        other => return err(format!("{} left over where a value belongs", describe(&other))),
    })
}
