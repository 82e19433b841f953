//! The pickle side of a `.pt` file: an interpreter for the subset of pickle opcodes that
//! `torch.save` emits (plus a few harmless others), keeping of each value only what the
//! tensor or an error message needs. Every size is checked; a hostile pickle is a
//! [`PtError::Format`], never a panic or a deep recursion.

use std::collections::HashMap;
use std::rc::Rc;

use super::{PtDtype, PtError, Result, format_err, shape_string, to_usize};

/// Largest number of pickle opcodes executed; bounds the stack, the memo and all values.
pub(super) const MAX_PICKLE_OPS: usize = 1 << 20;
/// Deepest nesting of tuples accepted in the pickle (keeps drops and recursion shallow).
const MAX_TUPLE_DEPTH: u32 = 64;
/// Number of dict keys quoted in error messages.
const MAX_KEYS_SHOWN: usize = 8;

/// Runs the `data.pkl` pickle and returns the tensor at its root, or `NotMatrix` naming
/// what the root is instead.
pub(super) fn tensor(pickle: &[u8]) -> Result<Rc<TensorRef>> {
    match Unpickler::new(pickle).load()? {
        Val::Tensor(t) => Ok(t),
        other => Err(PtError::NotMatrix(format!(
            "{}, not a tensor",
            describe(&other)
        ))),
    }
}

/// `a` or `an` before `word`.
fn article(word: &str) -> &'static str {
    match word.as_bytes().first() {
        Some(b'a' | b'e' | b'i' | b'o') => "an",
        _ => "a",
    }
}

/// A short description of a pickle value for error messages.
fn describe(v: &Val) -> String {
    match v {
        Val::None => "None".into(),
        Val::Bool => "a bool".into(),
        Val::Int(_) | Val::BigInt => "an int".into(),
        Val::Float => "a float".into(),
        Val::Str(_) => "a string".into(),
        Val::Bytes => "a bytes object".into(),
        Val::Tuple(t) => format!("a tuple of {} items", t.items.len()),
        Val::List(n) => format!("a list of {n} items"),
        Val::Set => "a set".into(),
        Val::Dict(d) => {
            if d.keys.is_empty() {
                format!("a dict of {} items", d.len)
            } else {
                let keys: Vec<String> = d.keys.iter().map(|k| format!("'{k}'")).collect();
                let more = if d.len > d.keys.len() { ", ..." } else { "" };
                format!("a dict (keys {}{more})", keys.join(", "))
            }
        }
        Val::Global(g) => format!("a reference to {}.{}", g.module, g.name),
        Val::Storage(_) => "a bare storage".into(),
        Val::Tensor(_) => "a tensor".into(),
        Val::Object(name) => format!("a {name} object"),
    }
}

/// An immutable tuple with its nesting depth.
#[derive(Debug)]
pub(super) struct Tuple {
    items: Vec<Val>,
    depth: u32,
}

/// What we remember about a dict: its length and its first few string keys.
#[derive(Debug, Clone, Default)]
pub(super) struct DictInfo {
    len: usize,
    keys: Vec<String>,
}

/// A reference to a Python global: `module.name`.
#[derive(Debug)]
pub(super) struct Global {
    module: String,
    name: String,
}

/// A `persistent_load(('storage', class, key, location, numel))` result.
#[derive(Debug)]
pub(super) struct StorageRef {
    /// The storage class (`FloatStorage`, `UntypedStorage`, …).
    class: String,
    /// The name of its entry under `{archive}/data/`.
    pub(super) key: String,
    /// Elements for typed storages, bytes for `UntypedStorage`.
    pub(super) numel: u64,
    /// Whether it is an `UntypedStorage` (its size counted in bytes).
    pub(super) untyped: bool,
}

/// The arguments of a `_rebuild_tensor*` call.
#[derive(Debug)]
pub(super) struct TensorRef {
    /// The storage the tensor views.
    pub(super) storage: Rc<StorageRef>,
    /// Element offset of the first element in the storage.
    pub(super) offset: u64,
    /// The shape.
    pub(super) size: Vec<u64>,
    /// The element strides, one per dimension.
    pub(super) stride: Vec<u64>,
    /// The explicit dtype of `_rebuild_tensor_v3` (e.g. `float32`).
    dtype_name: Option<String>,
}

impl TensorRef {
    /// The tensor's element type, or `NotMatrix` naming a non-floating-point one.
    pub(super) fn dtype(&self) -> Result<PtDtype> {
        let t = self;
        let name: &str = match &t.dtype_name {
            Some(name) => name,
            None => match t.storage.class.as_str() {
                "FloatStorage" => return Ok(PtDtype::F32),
                "HalfStorage" => return Ok(PtDtype::F16),
                "BFloat16Storage" => return Ok(PtDtype::BF16),
                "DoubleStorage" => return Ok(PtDtype::F64),
                "LongStorage" => "int64",
                "IntStorage" => "int32",
                "ShortStorage" => "int16",
                "CharStorage" => "int8",
                "ByteStorage" => "uint8",
                "BoolStorage" => "bool",
                "ComplexFloatStorage" => "complex64",
                "ComplexDoubleStorage" => "complex128",
                "ComplexHalfStorage" => "complex32",
                "QInt8Storage" => "qint8",
                "QUInt8Storage" => "quint8",
                "QInt32Storage" => "qint32",
                "QUInt4x2Storage" => "quint4x2",
                "QUInt2x4Storage" => "quint2x4",
                other => other,
            },
        };
        match name {
            "float32" | "float" => Ok(PtDtype::F32),
            "float16" | "half" => Ok(PtDtype::F16),
            "bfloat16" => Ok(PtDtype::BF16),
            "float64" | "double" => Ok(PtDtype::F64),
            _ => {
                let shape = shape_string(&t.size);
                Err(PtError::NotMatrix(format!(
                    "{} {name} tensor of shape {shape}",
                    article(name)
                )))
            }
        }
    }
}

/// A pickle value. Containers other than tuples keep only what error messages need, so no
/// value is ever copied deeply and mutation through the memo is irrelevant.
#[derive(Debug, Clone)]
pub(super) enum Val {
    None,
    Bool,
    Int(i64),
    BigInt,
    Float,
    Str(Rc<str>),
    Bytes,
    Tuple(Rc<Tuple>),
    List(usize),
    Dict(Rc<DictInfo>),
    Set,
    Global(Rc<Global>),
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
    Object(Rc<str>),
}

impl Val {
    /// How deeply tuples nest in this value (0 for any other value).
    fn depth(&self) -> u32 {
        match self {
            Val::Tuple(t) => t.depth,
            _ => 0,
        }
    }
}

/// A tuple of `items`, refused when it nests deeper than [`MAX_TUPLE_DEPTH`].
fn make_tuple(items: Vec<Val>) -> Result<Val> {
    let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
    if depth > MAX_TUPLE_DEPTH {
        return format_err("pickle nests tuples too deeply");
    }
    Ok(Val::Tuple(Rc::new(Tuple { items, depth })))
}

/// The interpreter's state: the pickle, the read position, the stack, the MARKs and the
/// memo.
pub(super) struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Val>,
    marks: Vec<usize>,
    memo: HashMap<u32, Val>,
}

impl<'a> Unpickler<'a> {
    /// An interpreter at the start of `data`.
    pub(super) fn new(data: &'a [u8]) -> Self {
        Unpickler {
            data,
            pos: 0,
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
        }
    }

    /// The next `n` bytes of the pickle.
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let data: &'a [u8] = self.data;
        let bytes = self
            .pos
            .checked_add(n)
            .and_then(|end| data.get(self.pos..end))
            .ok_or_else(|| PtError::Format("data.pkl is truncated".into()))?;
        self.pos += n;
        Ok(bytes)
    }

    /// The next `N` bytes, as an array.
    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// The next byte.
    fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    /// The next little-endian `u32`.
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A length written as a little-endian `u32`.
    fn len_u32(&mut self) -> Result<usize> {
        let n = self.u32()?;
        to_usize(u64::from(n), "pickle length")
    }

    /// A length written as a little-endian `u64`.
    fn len_u64(&mut self) -> Result<usize> {
        let n = u64::from_le_bytes(self.array()?);
        to_usize(n, "pickle length")
    }

    /// A length written as a little-endian `i32` (negative ones refused).
    fn len_i32(&mut self) -> Result<usize> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).or_else(|_| format_err("negative length in data.pkl"))
    }

    /// A `\n`-terminated line (GLOBAL arguments).
    fn line(&mut self) -> Result<String> {
        let rest = self.data.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| PtError::Format("data.pkl is truncated".into()))?;
        let line = self.take(n)?;
        self.pos += 1;
        Ok(String::from_utf8_lossy(line).into_owned())
    }

    /// The next `n` bytes as a string (invalid UTF-8 replaced).
    fn string(&mut self, n: usize) -> Result<Val> {
        let bytes = self.take(n)?;
        Ok(Val::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref())))
    }

    /// Pushes `v` on the stack.
    fn push(&mut self, v: Val) {
        // The stack cannot outgrow MAX_PICKLE_OPS: every opcode pushes at most one value.
        self.stack.push(v);
    }

    /// The stack height at the last MARK: values below it belong to an outer frame.
    fn floor(&self) -> usize {
        self.marks.last().copied().unwrap_or(0)
    }

    /// Pops the top value above the last MARK.
    fn pop(&mut self) -> Result<Val> {
        if self.stack.len() <= self.floor() {
            return format_err("data.pkl pops from an empty stack");
        }
        self.stack
            .pop()
            .ok_or_else(|| PtError::Format("data.pkl pops from an empty stack".into()))
    }

    /// The top value above the last MARK.
    fn top(&mut self) -> Result<&mut Val> {
        if self.stack.len() <= self.floor() {
            return format_err("data.pkl uses an empty stack");
        }
        self.stack
            .last_mut()
            .ok_or_else(|| PtError::Format("data.pkl uses an empty stack".into()))
    }

    /// Pops the values above the last MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Val>> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| PtError::Format("data.pkl has no MARK to pop to".into()))?;
        if mark > self.stack.len() {
            return format_err("data.pkl has an invalid MARK");
        }
        Ok(self.stack.split_off(mark))
    }

    /// Stores the top value in the memo under `key`.
    fn memo_put(&mut self, key: u32) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    /// Pushes the memo's value under `key`.
    fn memo_get(&mut self, key: u32) -> Result<()> {
        let v =
            self.memo.get(&key).cloned().ok_or_else(|| {
                PtError::Format(format!("data.pkl reads missing memo entry {key}"))
            })?;
        self.push(v);
        Ok(())
    }

    /// A little-endian two's complement integer of `bytes` (beyond 8 bytes, a big int).
    fn int(&mut self, bytes: &[u8]) -> Val {
        if bytes.len() > 8 {
            return Val::BigInt;
        }
        let negative = bytes.last().is_some_and(|&b| b & 0x80 != 0);
        let mut le = if negative { [0xff; 8] } else { [0; 8] };
        le[..bytes.len()].copy_from_slice(bytes);
        Val::Int(i64::from_le_bytes(le))
    }

    /// Runs the pickle to its STOP opcode and returns the root value.
    pub(super) fn load(mut self) -> Result<Val> {
        for _ in 0..MAX_PICKLE_OPS {
            let op = self.u8()?;
            if op == b'.' {
                return self.pop(); // STOP
            }
            self.step(op)?;
        }
        format_err("data.pkl is too complex")
    }

    /// Runs one opcode other than STOP.
    fn step(&mut self, op: u8) -> Result<()> {
        match op {
            0x80 => self.proto()?,
            0x95 => {
                self.take(8)?; // FRAME
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop()?;
            }
            b'1' => {
                self.pop_mark()?;
            }
            b'2' => {
                let v = self.top()?.clone();
                self.push(v);
            }
            b'c' => {
                let module = self.line()?;
                let name = self.line()?;
                self.push(Val::Global(Rc::new(Global { module, name })));
            }
            0x93 => self.stack_global()?,
            // SHORT_BINUNICODE, SHORT_BINSTRING, BINUNICODE, BINUNICODE8, BINSTRING
            0x8c | b'U' | b'X' | 0x8d | b'T' => self.text(op)?,
            // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8
            b'C' | b'B' | 0x8e | 0x96 => self.bytes(op)?,
            // EMPTY_TUPLE, TUPLE, TUPLE1, TUPLE2, TUPLE3
            b')' | b't' | 0x85..=0x87 => self.tuple(op)?,
            // EMPTY_LIST, LIST, APPEND, APPENDS
            b']' | b'l' | b'a' | b'e' => self.list(op)?,
            // EMPTY_DICT, DICT, SETITEM, SETITEMS
            b'}' | b'd' | b's' | b'u' => self.dict(op)?,
            0x8f => self.push(Val::Set), // EMPTY_SET
            0x90 => {
                // ADDITEMS
                self.pop_mark()?;
                self.top()?;
            }
            0x91 => {
                // FROZENSET
                self.pop_mark()?;
                self.push(Val::Set);
            }
            // BININT, BININT1, BININT2, LONG1, LONG4
            b'J' | b'K' | b'M' | 0x8a | 0x8b => self.integer(op)?,
            b'G' => {
                self.take(8)?;
                self.push(Val::Float);
            }
            0x88 | 0x89 => self.push(Val::Bool), // NEWTRUE, NEWFALSE
            b'N' => self.push(Val::None),
            // BINPERSID, REDUCE, BUILD, NEWOBJ, NEWOBJ_EX
            b'Q' | b'R' | b'b' | 0x81 | 0x92 => self.object(op)?,
            // BINPUT, LONG_BINPUT, MEMOIZE, BINGET, LONG_BINGET
            b'q' | b'r' | 0x94 | b'h' | b'j' => self.memo(op)?,
            other => return unsupported(other),
        }
        Ok(())
    }

    /// PROTO: the protocol version, at most 5.
    fn proto(&mut self) -> Result<()> {
        let proto = self.u8()?;
        if proto > 5 {
            return format_err(format!("unsupported pickle protocol {proto}"));
        }
        Ok(())
    }

    /// STACK_GLOBAL: a global named by the two strings on the stack.
    fn stack_global(&mut self) -> Result<()> {
        let name = self.pop()?;
        let module = self.pop()?;
        let (Val::Str(module), Val::Str(name)) = (module, name) else {
            return format_err("STACK_GLOBAL arguments are not strings in data.pkl");
        };
        self.push(Val::Global(Rc::new(Global {
            module: module.to_string(),
            name: name.to_string(),
        })));
        Ok(())
    }

    /// The string opcodes: a length (of the width `op` says), then the text.
    fn text(&mut self, op: u8) -> Result<()> {
        let n = match op {
            b'X' => self.len_u32()?,
            0x8d => self.len_u64()?,
            b'T' => self.len_i32()?,
            _ => usize::from(self.u8()?),
        };
        let v = self.string(n)?;
        self.push(v);
        Ok(())
    }

    /// The bytes opcodes: a length (of the width `op` says), then bytes that are skipped.
    fn bytes(&mut self, op: u8) -> Result<()> {
        let n = match op {
            b'B' => self.len_u32()?,
            0x8e | 0x96 => self.len_u64()?,
            _ => usize::from(self.u8()?),
        };
        self.take(n)?;
        self.push(Val::Bytes);
        Ok(())
    }

    /// The tuple opcodes: empty, from the MARK, or of the top 1 to 3 values.
    fn tuple(&mut self, op: u8) -> Result<()> {
        let items = match op {
            b')' => Vec::new(),
            b't' => self.pop_mark()?,
            _ => {
                let n = usize::from(op - 0x84);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.pop()?);
                }
                items.reverse();
                items
            }
        };
        self.push(make_tuple(items)?);
        Ok(())
    }

    /// The list opcodes: a list is kept as its length.
    fn list(&mut self, op: u8) -> Result<()> {
        match op {
            b']' => self.push(Val::List(0)),
            b'l' => {
                let n = self.pop_mark()?.len();
                self.push(Val::List(n));
            }
            b'a' => {
                self.pop()?;
                if let Val::List(n) = self.top()? {
                    *n += 1;
                }
            }
            _ => {
                let k = self.pop_mark()?.len();
                if let Val::List(n) = self.top()? {
                    *n += k;
                }
            }
        }
        Ok(())
    }

    /// The dict opcodes: a dict is kept as its length and first string keys.
    fn dict(&mut self, op: u8) -> Result<()> {
        match op {
            b'}' => self.push(Val::Dict(Rc::default())),
            b'd' => {
                let items = self.pop_mark()?;
                let mut dict = DictInfo::default();
                add_items(&mut dict, &items)?;
                self.push(Val::Dict(Rc::new(dict)));
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                if let Val::Dict(d) = self.top()? {
                    add_items(Rc::make_mut(d), &[key, value])?;
                }
            }
            _ => {
                let items = self.pop_mark()?;
                if let Val::Dict(d) = self.top()? {
                    add_items(Rc::make_mut(d), &items)?;
                } else if !items.len().is_multiple_of(2) {
                    return format_err("SETITEMS with an odd number of items in data.pkl");
                }
            }
        }
        Ok(())
    }

    /// The integer opcodes: 4, 1 or 2 bytes, or a little-endian two's complement number of
    /// a given length.
    fn integer(&mut self, op: u8) -> Result<()> {
        let v = match op {
            b'J' => Val::Int(i64::from(i32::from_le_bytes(self.array()?))),
            b'K' => Val::Int(i64::from(self.u8()?)),
            b'M' => Val::Int(i64::from(u16::from_le_bytes(self.array()?))),
            _ => {
                let n = if op == 0x8a {
                    usize::from(self.u8()?)
                } else {
                    self.len_i32()?
                };
                let bytes = self.take(n)?;
                self.int(bytes)
            }
        };
        self.push(v);
        Ok(())
    }

    /// The opcodes that make objects: a persistent storage, a call, a BUILD (whose state is
    /// not needed), a `cls.__new__`.
    fn object(&mut self, op: u8) -> Result<()> {
        match op {
            b'Q' => {
                let pid = self.pop()?;
                let storage = persistent_load(&pid)?;
                self.push(storage);
            }
            b'R' => {
                let args = self.pop()?;
                let callable = self.pop()?;
                let v = reduce(&callable, &args, 0)?;
                self.push(v);
            }
            b'b' => {
                self.pop()?;
                self.top()?;
            }
            _ => {
                // NEWOBJ pops (cls, args), NEWOBJ_EX (cls, args, kwargs).
                self.pop()?;
                if op == 0x92 {
                    self.pop()?;
                }
                let cls = self.pop()?;
                self.push(new_object(&cls));
            }
        }
        Ok(())
    }

    /// The memo opcodes: store the top under a 1- or 4-byte key or the next free one, or
    /// push a stored value.
    fn memo(&mut self, op: u8) -> Result<()> {
        match op {
            b'q' => {
                let key = self.u8()?;
                self.memo_put(u32::from(key))
            }
            b'r' => {
                let key = self.u32()?;
                self.memo_put(key)
            }
            0x94 => {
                let key = u32::try_from(self.memo.len())
                    .or_else(|_| format_err("data.pkl memo is too large"))?;
                self.memo_put(key)
            }
            b'h' => {
                let key = self.u8()?;
                self.memo_get(u32::from(key))
            }
            _ => {
                let key = self.u32()?;
                self.memo_get(key)
            }
        }
    }
}

/// The error for an opcode the interpreter does not run.
fn unsupported<T>(op: u8) -> Result<T> {
    let shown = if op.is_ascii_graphic() {
        format!(" ('{}')", char::from(op))
    } else {
        String::new()
    };
    format_err(format!(
        "unsupported pickle opcode 0x{op:02x}{shown} in data.pkl"
    ))
}

/// Records `key, value` pairs into a dict summary.
fn add_items(dict: &mut DictInfo, items: &[Val]) -> Result<()> {
    if !items.len().is_multiple_of(2) {
        return format_err("dict with an odd number of items in data.pkl");
    }
    for pair in items.chunks_exact(2) {
        dict.len += 1;
        if dict.keys.len() < MAX_KEYS_SHOWN
            && let Val::Str(key) = &pair[0]
        {
            let key: String = key.chars().take(64).collect();
            dict.keys.push(key);
        }
    }
    Ok(())
}

/// An opaque object of class `cls`.
fn new_object(cls: &Val) -> Val {
    match cls {
        Val::Global(g) => Val::Object(Rc::from(format!("{}.{}", g.module, g.name).as_str())),
        _ => Val::Object(Rc::from("python")),
    }
}

/// `persistent_load(('storage', class, key, location, numel))`.
fn persistent_load(pid: &Val) -> Result<Val> {
    let Val::Tuple(t) = pid else {
        return format_err("persistent id in data.pkl is not a tuple");
    };
    let items = &t.items;
    match items.first() {
        Some(Val::Str(s)) if &**s == "storage" => {}
        _ => return format_err("unsupported persistent id in data.pkl"),
    }
    let (Some(Val::Global(class)), Some(key), Some(Val::Int(numel))) =
        (items.get(1), items.get(2), items.get(4))
    else {
        return format_err("malformed storage reference in data.pkl");
    };
    let key = match key {
        Val::Str(s) => s.to_string(),
        Val::Int(i) => i.to_string(),
        _ => return format_err("malformed storage key in data.pkl"),
    };
    let numel =
        u64::try_from(*numel).or_else(|_| format_err("negative storage size in data.pkl"))?;
    Ok(Val::Storage(Rc::new(StorageRef {
        class: class.name.clone(),
        key,
        numel,
        untyped: class.name == "UntypedStorage",
    })))
}

/// Applies `callable(*args)` for the callables that matter; anything else is an opaque object.
fn reduce(callable: &Val, args: &Val, depth: u32) -> Result<Val> {
    let Val::Tuple(args) = args else {
        return format_err("REDUCE arguments in data.pkl are not a tuple");
    };
    let Val::Global(g) = callable else {
        return Ok(Val::Object(Rc::from("python")));
    };
    let args = &args.items;
    match (g.module.as_str(), g.name.as_str()) {
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            rebuild_tensor(args, g.name == "_rebuild_tensor_v3")
        }
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => args
            .first()
            .cloned()
            .ok_or_else(|| PtError::Format("parameter without data in data.pkl".into())),
        ("torch._tensor", "_rebuild_from_type_v2") if depth < 4 => {
            // (func, new_type, args, state): a tensor subclass; rebuild the plain tensor.
            match (args.first(), args.get(2)) {
                (Some(func), Some(inner)) => reduce(func, inner, depth + 1),
                _ => format_err("malformed tensor subclass in data.pkl"),
            }
        }
        ("collections", "OrderedDict") | ("builtins" | "__builtin__", "dict") => {
            Ok(Val::Dict(Rc::default()))
        }
        ("builtins" | "__builtin__", "list") => Ok(Val::List(0)),
        ("builtins" | "__builtin__", "set" | "frozenset") => Ok(Val::Set),
        (module, name) => Ok(Val::Object(Rc::from(format!("{module}.{name}").as_str()))),
    }
}

/// A tuple of non-negative ints (a tensor's size or stride, named `what`).
fn uint_tuple(v: Option<&Val>, what: &str) -> Result<Vec<u64>> {
    let Some(Val::Tuple(t)) = v else {
        return format_err(format!("tensor {what} in data.pkl is not a tuple"));
    };
    t.items
        .iter()
        .map(|item| match item {
            Val::Int(i) => u64::try_from(*i).ok(),
            _ => None,
        })
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| PtError::Format(format!("bad tensor {what} in data.pkl")))
}

/// `_rebuild_tensor_v2(storage, storage_offset, size, stride, ...)`.
fn rebuild_tensor(args: &[Val], v3: bool) -> Result<Val> {
    let Some(Val::Storage(storage)) = args.first() else {
        return format_err("tensor in data.pkl is not built from a storage");
    };
    let offset = match args.get(1) {
        Some(Val::Int(i)) => u64::try_from(*i).ok(),
        _ => None,
    }
    .ok_or_else(|| PtError::Format("bad tensor storage offset in data.pkl".into()))?;
    let size = uint_tuple(args.get(2), "size")?;
    let stride = uint_tuple(args.get(3), "stride")?;
    if size.len() != stride.len() {
        return format_err("tensor size and stride differ in length in data.pkl");
    }
    let dtype_name = if v3 {
        match args.get(6) {
            Some(Val::Global(g)) => Some(g.name.clone()),
            _ => return format_err("tensor without a dtype in data.pkl"),
        }
    } else {
        None
    };
    Ok(Val::Tensor(Rc::new(TensorRef {
        storage: Rc::clone(storage),
        offset,
        size,
        stride,
        dtype_name,
    })))
}
