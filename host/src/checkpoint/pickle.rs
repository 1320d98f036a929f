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

/// The pickle opcodes this module reads and writes (INST only to name it in a refusal).
pub mod op {
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
    /// Refused: it names a class to call.
    pub const INST: u8 = b'i';
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
/// Containers within containers. A state dict nests four deep; anything deeper than this is
/// refused before it is built, so reading, converting and dropping a value never recurse far.
pub const MAX_DEPTH: u32 = 256;
/// Values a pickle may build, the copies memo lookups make included (a "memo bomb" copies a value
/// into itself over and over). A state dict of ten thousand tensors builds well under a million.
pub const MAX_VALUES: u64 = 4_000_000;
/// Bytes of text a pickle may build, memo copies included.
pub const MAX_TEXT_BYTES: u64 = 256 << 20;

/// The size of a value on the stack: how deep it nests, how many values and bytes of text it
/// holds. Kept beside each value so every limit is checked in O(1) as the value is built.
#[derive(Clone, Copy, Debug, Default)]
struct Shape {
    depth: u32,
    values: u64,
    text: u64,
}

impl Shape {
    fn leaf(o: &Obj) -> Shape {
        Shape { depth: 0, values: 1, text: if let Obj::Str(s) = o { s.len() as u64 } else { 0 } }
    }

    /// `self` (a container) with `item` put in it.
    fn holding(self, item: Shape) -> Result<Shape, PickleError> {
        let depth = self.depth.max(item.depth + 1);
        if depth > MAX_DEPTH {
            return err(format!("the pickle nests containers more than {MAX_DEPTH} deep; a checkpoint nests a few"));
        }
        Ok(Shape { depth, values: self.values + item.values, text: self.text + item.text })
    }
}

/// What the pickle has built so far, against [`MAX_VALUES`] and [`MAX_TEXT_BYTES`].
#[derive(Default)]
struct Budget {
    values: u64,
    text: u64,
}

impl Budget {
    /// Counts `built` new values and text (a new leaf, or a whole copy from the memo).
    fn spend(&mut self, built: Shape) -> Result<(), PickleError> {
        self.values += built.values;
        self.text += built.text;
        if self.values > MAX_VALUES {
            return err(format!(
                "the pickle builds more than {MAX_VALUES} values (memo copies included); refusing the file"
            ));
        }
        if self.text > MAX_TEXT_BYTES {
            return err(format!(
                "the pickle builds more than {MAX_TEXT_BYTES} bytes of text (memo copies included); refusing the file"
            ));
        }
        Ok(())
    }
}

enum Slot {
    Mark,
    Obj(Obj, Shape),
}

/// The value stack, each value with its [`Shape`], and the budget every new value is paid from.
#[derive(Default)]
struct Machine {
    stack: Vec<Slot>,
    memo: HashMap<u32, (Obj, Shape)>,
    budget: Budget,
}

impl Machine {
    /// Pushes a new value that holds nothing (a scalar, a string, an empty container).
    fn push_leaf(&mut self, o: Obj) -> Result<(), PickleError> {
        let shape = Shape::leaf(&o);
        self.budget.spend(shape)?;
        self.stack.push(Slot::Obj(o, shape));
        Ok(())
    }

    /// Pushes a new container holding `items` (already paid for).
    fn push_container(&mut self, o: Obj, items: &[Shape]) -> Result<(), PickleError> {
        let mut shape = Shape::leaf(&o);
        self.budget.spend(shape)?;
        for &item in items {
            shape = shape.holding(item)?;
        }
        self.stack.push(Slot::Obj(o, shape));
        Ok(())
    }

    /// Pushes a value derived from popped ones (already paid for), as deep as they were.
    fn push_derived(&mut self, o: Obj, from: &[Shape]) -> Result<(), PickleError> {
        let mut shape = Shape::leaf(&o);
        self.budget.spend(shape)?;
        shape.depth = from.iter().map(|s| s.depth).max().unwrap_or(0);
        self.stack.push(Slot::Obj(o, shape));
        Ok(())
    }

    /// A copy of the top value for the memo (paid for: the copy is real memory).
    fn put(&mut self, idx: u32, at: usize) -> Result<(), PickleError> {
        let Some(Slot::Obj(o, shape)) = self.stack.last() else {
            return err(format!("PUT at byte {at} without a value"));
        };
        let copy = (o.clone(), *shape);
        self.budget.spend(copy.1)?;
        self.memo.insert(idx, copy);
        Ok(())
    }

    /// A copy of memo entry `idx` pushed (paid for before it is made).
    fn get(&mut self, idx: u32, at: usize) -> Result<(), PickleError> {
        let Some((_, shape)) = self.memo.get(&idx) else {
            return err(format!("GET of unknown memo {idx} at byte {at}"));
        };
        let shape = *shape;
        self.budget.spend(shape)?;
        let o = self.memo[&idx].0.clone();
        self.stack.push(Slot::Obj(o, shape));
        Ok(())
    }

    fn pop_str(&mut self) -> Result<String, PickleError> {
        match self.stack.pop() {
            Some(Slot::Obj(Obj::Str(s), _)) => Ok(s),
            _ => err("STACK_GLOBAL without two strings"),
        }
    }

    fn pop_n(&mut self, n: usize, at: usize) -> Result<Vec<(Obj, Shape)>, PickleError> {
        if self.stack.len() < n {
            return err(format!("an opcode at byte {at} needs {n} values on the stack"));
        }
        self.stack
            .split_off(self.stack.len() - n)
            .into_iter()
            .map(|s| match s {
                Slot::Obj(o, shape) => Ok((o, shape)),
                Slot::Mark => err(format!("an opcode at byte {at} met a MARK where it needed a value")),
            })
            .collect()
    }

    fn pop_mark(&mut self) -> Result<Vec<(Obj, Shape)>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return err("an opcode needs a MARK that is not there");
        };
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items
            .into_iter()
            .map(|s| match s {
                Slot::Obj(o, shape) => (o, shape),
                Slot::Mark => unreachable!("the last mark was found above"),
            })
            .collect())
    }

    /// Puts `items` into the container on top of the stack, if `fits` accepts it.
    fn extend_top(
        &mut self,
        items: Vec<(Obj, Shape)>,
        fits: impl FnOnce(&mut Obj, Vec<Obj>) -> bool,
    ) -> Result<bool, PickleError> {
        let Some(Slot::Obj(container, shape)) = self.stack.last_mut() else { return Ok(false) };
        let mut grown = *shape;
        for (_, s) in &items {
            grown = grown.holding(*s)?;
        }
        if !fits(container, items.into_iter().map(|(o, _)| o).collect()) {
            return Ok(false);
        }
        *shape = grown;
        Ok(true)
    }
}

/// Reads a pickle with the restricted machine described in the module docs. A refusal is one
/// line, whatever the pickle put in it.
pub fn load(data: &[u8]) -> Result<Loaded, PickleError> {
    run(data).map_err(|e| PickleError(one_line(&e.0)))
}

/// `message`, which may quote names and keys a file chose, with its control characters (line
/// breaks among them) and Unicode line separators escaped, so it stays one line.
pub(crate) fn one_line(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// At most the first `max` characters of a name a file chose, for a message.
fn clip(name: &str, max: usize) -> String {
    match name.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &name[..end]),
        None => name.to_string(),
    }
}

fn run(data: &[u8]) -> Result<Loaded, PickleError> {
    let mut m = Machine::default();
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
                return match (m.stack.pop(), m.stack.is_empty()) {
                    (Some(Slot::Obj(o, _)), true) => finish(o),
                    _ => err("the pickle does not end with exactly one value"),
                };
            }
            op::MARK => m.stack.push(Slot::Mark),
            op::EMPTY_DICT => m.push_leaf(Obj::Dict(Vec::new()))?,
            op::EMPTY_LIST => m.push_leaf(Obj::List(Vec::new()))?,
            op::EMPTY_TUPLE => m.push_leaf(Obj::Tuple(Vec::new()))?,
            op::NONE => m.push_leaf(Obj::None)?,
            op::NEWTRUE => m.push_leaf(Obj::Bool(true))?,
            op::NEWFALSE => m.push_leaf(Obj::Bool(false))?,
            op::BININT1 => m.push_leaf(Obj::Int(i64::from(take(data, &mut pos, 1)?[0])))?,
            op::BININT2 => {
                let b = take(data, &mut pos, 2)?;
                m.push_leaf(Obj::Int(i64::from(u16::from_le_bytes([b[0], b[1]]))))?;
            }
            op::BININT => {
                let b = take(data, &mut pos, 4)?;
                m.push_leaf(Obj::Int(i64::from(i32::from_le_bytes(b.try_into().expect("4 bytes")))))?;
            }
            op::LONG1 => {
                let n = take(data, &mut pos, 1)?[0] as usize;
                if n > 8 {
                    return err(format!("an integer of {n} bytes at byte {at} does not fit in 64 bits"));
                }
                let b = take(data, &mut pos, n)?;
                let mut bytes = if b.last().is_some_and(|x| x & 0x80 != 0) { [0xffu8; 8] } else { [0u8; 8] };
                bytes[..n].copy_from_slice(b);
                m.push_leaf(Obj::Int(i64::from_le_bytes(bytes)))?;
            }
            op::BINFLOAT => {
                let b = take(data, &mut pos, 8)?;
                m.push_leaf(Obj::Float(f64::from_be_bytes(b.try_into().expect("8 bytes"))))?;
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
                m.push_leaf(Obj::Str(s.to_string()))?;
            }
            op::GLOBAL => {
                let module = read_line(data, &mut pos)?;
                let name = read_line(data, &mut pos)?;
                m.push_leaf(global(&module, &name)?)?;
            }
            op::STACK_GLOBAL => {
                let name = m.pop_str()?;
                let module = m.pop_str()?;
                m.push_leaf(global(&module, &name)?)?;
            }
            op::TUPLE | op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let items = match code {
                    op::TUPLE => m.pop_mark()?,
                    _ => m.pop_n((code - op::TUPLE1 + 1) as usize, at)?,
                };
                let shapes: Vec<Shape> = items.iter().map(|(_, s)| *s).collect();
                m.push_container(Obj::Tuple(items.into_iter().map(|(o, _)| o).collect()), &shapes)?;
            }
            op::SETITEM | op::SETITEMS => {
                let items = if code == op::SETITEM { m.pop_n(2, at)? } else { m.pop_mark()? };
                if items.len() % 2 != 0 {
                    return err(format!("SETITEMS at byte {at} with an odd number of items"));
                }
                let set = m.extend_top(items, |container, objs| match container {
                    Obj::Dict(e) | Obj::OrderedDict(e) => {
                        let mut it = objs.into_iter();
                        while let (Some(k), Some(v)) = (it.next(), it.next()) {
                            e.push((k, v));
                        }
                        true
                    }
                    _ => false,
                })?;
                if !set {
                    return err(format!("SETITEMS at byte {at} on something that is not a dict"));
                }
            }
            op::APPEND | op::APPENDS => {
                let items = if code == op::APPEND { m.pop_n(1, at)? } else { m.pop_mark()? };
                let appended = m.extend_top(items, |container, objs| match container {
                    Obj::List(l) => {
                        l.extend(objs);
                        true
                    }
                    _ => false,
                })?;
                if !appended {
                    return err(format!("APPENDS at byte {at} on something that is not a list"));
                }
            }
            op::BINPERSID => {
                let (pid, _) = m.pop_n(1, at)?.pop().expect("one item");
                let storage = storage_ref(pid).map_err(|e| PickleError(format!("{} (at byte {at})", e.0)))?;
                m.push_leaf(Obj::Storage(storage))?;
            }
            op::REDUCE => {
                let mut pair = m.pop_n(2, at)?;
                let (args, args_shape) = pair.pop().expect("two items");
                let (callable, _) = pair.pop().expect("two items");
                let result = reduce(callable, args).map_err(|e| PickleError(format!("{} (at byte {at})", e.0)))?;
                m.push_derived(result, &[args_shape])?;
            }
            // `OrderedDict.__reduce__` sets instance attributes with BUILD; a
            // state dict's only one is `_metadata` (module versions), which the
            // host does not need. Anything else is refused.
            op::BUILD => {
                let (state, _) = m.pop_n(1, at)?.pop().expect("one item");
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
                if !matches!(m.stack.last(), Some(Slot::Obj(Obj::OrderedDict(_), _))) {
                    return err(format!("BUILD at byte {at} on something that is not an OrderedDict"));
                }
            }
            op::BINPUT | op::LONG_BINPUT => {
                let idx = if code == op::BINPUT {
                    u32::from(take(data, &mut pos, 1)?[0])
                } else {
                    u32::from_le_bytes(take(data, &mut pos, 4)?.try_into().expect("4 bytes"))
                };
                m.put(idx, at)?;
            }
            op::MEMOIZE => {
                let idx = m.memo.len() as u32;
                m.put(idx, at)?;
            }
            op::BINGET | op::LONG_BINGET => {
                let idx = if code == op::BINGET {
                    u32::from(take(data, &mut pos, 1)?[0])
                } else {
                    u32::from_le_bytes(take(data, &mut pos, 4)?.try_into().expect("4 bytes"))
                };
                m.get(idx, at)?;
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

fn global(module: &str, name: &str) -> Result<Obj, PickleError> {
    Ok(match (module, name) {
        ("collections", "OrderedDict") => Obj::OrderedDictType,
        ("torch._utils", "_rebuild_tensor_v2") => Obj::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Obj::RebuildParameter,
        ("torch", storage) if storage_dtype(storage).is_some() => Obj::StorageType(storage_dtype(storage).expect("checked")),
        _ => {
            return err(format!(
                "the pickle names the global `{}.{}`, which a checkpoint never needs; refusing the file (loading it could run code)",
                clip(module, 100),
                clip(name, 100)
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn pickle(body: &[u8]) -> Vec<u8> {
        let mut p = vec![op::PROTO, 2];
        p.extend_from_slice(body);
        p.push(op::STOP);
        p
    }

    #[test]
    fn a_memo_bomb_is_refused_before_it_grows() {
        // memo[0] = []; then again and again: two copies of memo[0], one appended to the other,
        // the result put back as memo[0]: every round doubles what a lookup copies (1 KiB of
        // pickle asks for 2^200 values). The budget counts copies, so it stops at once.
        let mut body = vec![op::EMPTY_LIST, op::BINPUT, 0];
        for _ in 0..200 {
            body.extend_from_slice(&[op::BINGET, 0, op::BINGET, 0, op::APPEND, op::BINPUT, 0]);
        }
        let started = Instant::now();
        let e = load(&pickle(&body)).unwrap_err().to_string();
        assert!(e.contains("more than 4000000 values") && e.contains("memo"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "refused quickly: {:?}", started.elapsed());
    }

    #[test]
    fn text_copied_by_the_memo_counts_too() {
        // One 1 MiB string, looked up 300 times: 300 MiB of text from a 1 MiB pickle.
        let mut body = vec![op::BINUNICODE];
        body.extend_from_slice(&(1u32 << 20).to_le_bytes());
        body.extend(std::iter::repeat_n(b'a', 1 << 20));
        body.extend_from_slice(&[op::BINPUT, 0, op::MARK]);
        for _ in 0..300 {
            body.extend_from_slice(&[op::BINGET, 0]);
        }
        body.push(op::TUPLE);
        let e = load(&pickle(&body)).unwrap_err().to_string();
        assert!(e.contains("bytes of text"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        // 100,000 lists, each appended into the one below it.
        let depth = 100_000;
        let mut body = vec![op::EMPTY_LIST; depth];
        body.extend(std::iter::repeat_n(op::APPEND, depth - 1));
        let e = load(&pickle(&body)).unwrap_err().to_string();
        assert!(e.contains(&format!("more than {MAX_DEPTH} deep")), "{e}");
        // Just inside the bound is a value.
        let depth = MAX_DEPTH as usize + 1;
        let mut body = vec![op::EMPTY_LIST; depth];
        body.extend(std::iter::repeat_n(op::APPEND, depth - 1));
        assert!(load(&pickle(&body)).is_ok());
    }
}
