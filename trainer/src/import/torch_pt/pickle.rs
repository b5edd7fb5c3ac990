//! A small, strict interpreter for the pickle opcodes `torch.save` emits for a state_dict.
//!
//! Objects live in an arena and refer to each other by index: no recursion when building or
//! dropping them (a hostile file cannot overflow the stack), and shared references (memo, BUILD)
//! behave as in Python. Only three callables are known: `collections.OrderedDict`,
//! `torch._utils._rebuild_tensor_v2` and `torch._utils._rebuild_parameter`; anything else is an
//! error, never code execution. Every length is checked against the bytes that remain before
//! anything is allocated from it.

use std::collections::HashMap;

/// Index of an object in [`Machine::objects`].
pub type Id = usize;

/// Most objects one pickle may create; a state dict of a few hundred tensors needs a few thousand.
const MAX_OBJECTS: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    None,
    Bool(bool),
    Int(i64),
    /// A LONG1 wider than 64 bits (torch's legacy magic number), little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Tuple(Vec<Id>),
    List(Vec<Id>),
    /// Insertion-ordered, as both `dict` and `OrderedDict` are.
    Dict(Vec<(Id, Id)>),
    /// A `module.name` reference pushed by GLOBAL, only usable as a REDUCE callable or storage type.
    Global(String, String),
    /// A storage reference from BINPERSID: `('storage', torch.FloatStorage, key, location, numel, ..)`.
    Storage {
        dtype: String,
        key: String,
        numel: u64,
    },
    /// A tensor view into a storage, from `_rebuild_tensor_v2`.
    Tensor {
        storage: Id,
        offset: u64,
        size: Vec<u64>,
        stride: Vec<u64>,
    },
}

/// What went wrong, with the byte position of the opcode; the caller adds the file name.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    pub pos: usize,
    pub what: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.pos, self.what)
    }
}

/// The arena shared by the consecutive pickles of one file (legacy torch files hold five).
#[derive(Default)]
pub struct Machine {
    pub objects: Vec<Object>,
}

enum Slot {
    Mark,
    Obj(Id),
}

struct Run<'a, 'm> {
    m: &'m mut Machine,
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    stack: Vec<Slot>,
    memo: HashMap<u32, Id>,
}

impl Machine {
    pub fn get(&self, id: Id) -> &Object {
        &self.objects[id]
    }

    /// Runs one pickle starting at `data[start..]`; returns the result and the position after STOP.
    pub fn load(&mut self, data: &[u8], start: usize) -> Result<(Id, usize), PickleError> {
        let mut run = Run {
            m: self,
            data,
            pos: start,
            op_pos: start,
            stack: Vec::new(),
            memo: HashMap::new(),
        };
        let result = run.exec()?;
        Ok((result, run.pos))
    }

    pub fn as_str(&self, id: Id) -> Option<&str> {
        match self.get(id) {
            Object::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self, id: Id) -> Option<i64> {
        match self.get(id) {
            Object::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl Run<'_, '_> {
    fn err<T>(&self, what: impl Into<String>) -> Result<T, PickleError> {
        Err(PickleError {
            pos: self.op_pos,
            what: what.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        match self.pos.checked_add(n) {
            Some(end) if end <= self.data.len() => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            _ => self.err(format!(
                "the file ends inside an opcode argument ({n} bytes needed, {} left): it is truncated",
                self.data.len().saturating_sub(self.pos)
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, PickleError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, PickleError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A newline-terminated ASCII line (GLOBAL's arguments).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos.min(self.data.len())..];
        let Some(n) = rest.iter().take(256).position(|b| *b == b'\n') else {
            return self.err("GLOBAL name is not terminated by a newline within 256 bytes");
        };
        let s = std::str::from_utf8(&rest[..n])
            .ok()
            .filter(|s| s.is_ascii())
            .map(str::to_string);
        self.pos += n + 1;
        match s {
            Some(s) => Ok(s),
            None => self.err("GLOBAL name is not ASCII"),
        }
    }

    fn utf8(&mut self, n: usize) -> Result<String, PickleError> {
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.err("string is not valid UTF-8"),
        }
    }

    fn alloc(&mut self, o: Object) -> Result<Id, PickleError> {
        if self.m.objects.len() >= MAX_OBJECTS {
            return self.err(format!("more than {MAX_OBJECTS} objects: not a state dict"));
        }
        self.m.objects.push(o);
        Ok(self.m.objects.len() - 1)
    }

    fn push(&mut self, o: Object) -> Result<(), PickleError> {
        let id = self.alloc(o)?;
        self.stack.push(Slot::Obj(id));
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        match self.stack.pop() {
            Some(Slot::Obj(id)) => Ok(id),
            Some(Slot::Mark) => self.err("an object was expected but a MARK was found"),
            None => self.err("the stack is empty"),
        }
    }

    fn top(&self) -> Result<Id, PickleError> {
        match self.stack.last() {
            Some(Slot::Obj(id)) => Ok(*id),
            Some(Slot::Mark) => self.err("an object was expected but a MARK was found"),
            None => self.err("the stack is empty"),
        }
    }

    /// Pops everything above the topmost MARK, and the MARK.
    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let Some(mark) = self.stack.iter().rposition(|s| matches!(s, Slot::Mark)) else {
            return self.err("no MARK on the stack");
        };
        let items = self
            .stack
            .drain(mark..)
            .skip(1)
            .map(|s| match s {
                Slot::Obj(id) => id,
                Slot::Mark => unreachable!("rposition found the topmost mark"),
            })
            .collect();
        Ok(items)
    }

    fn memo_get(&mut self, key: u32) -> Result<(), PickleError> {
        match self.memo.get(&key) {
            Some(id) => {
                let id = *id;
                self.stack.push(Slot::Obj(id));
                Ok(())
            }
            None => self.err(format!("memo entry {key} is read before it is written")),
        }
    }

    fn memo_put(&mut self, key: u32) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo.insert(key, id);
        Ok(())
    }

    fn set_items(&mut self, dict: Id, items: &[Id]) -> Result<(), PickleError> {
        if !items.len().is_multiple_of(2) {
            return self.err("SETITEMS with an odd number of items");
        }
        let pairs: Vec<(Id, Id)> = items.chunks_exact(2).map(|p| (p[0], p[1])).collect();
        for (k, _) in &pairs {
            if !matches!(
                self.m.get(*k),
                Object::Str(_) | Object::Int(_) | Object::Bool(_) | Object::None
            ) {
                return self.err("a dict key is not a string, integer, bool or None");
            }
        }
        let keys_equal = |m: &Machine, a: Id, b: Id| m.get(a) == m.get(b);
        for (k, v) in pairs {
            let existing = match self.m.get(dict) {
                Object::Dict(entries) => entries
                    .iter()
                    .position(|(ek, _)| keys_equal(self.m, *ek, k)),
                _ => return self.err("SETITEM(S) on an object that is not a dict"),
            };
            let Object::Dict(entries) = &mut self.m.objects[dict] else {
                unreachable!("checked above")
            };
            match existing {
                Some(i) => entries[i].1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(())
    }

    fn append(&mut self, list: Id, items: Vec<Id>) -> Result<(), PickleError> {
        match &mut self.m.objects[list] {
            Object::List(v) => {
                v.extend(items);
                Ok(())
            }
            _ => self.err("APPEND(S) on an object that is not a list"),
        }
    }

    fn exec(&mut self) -> Result<Id, PickleError> {
        loop {
            self.op_pos = self.pos;
            let op = self.u8()?;
            match op {
                // PROTO: protocols 2..=5 use only the opcodes below.
                0x80 => {
                    let v = self.u8()?;
                    if !(2..=5).contains(&v) {
                        return self.err(format!("unsupported pickle protocol {v}"));
                    }
                }
                // FRAME (protocol 4+): a length hint; check it and carry on.
                0x95 => {
                    let n = self.u64()?;
                    if n > (self.data.len() - self.pos) as u64 {
                        return self.err("FRAME is longer than the rest of the file: truncated");
                    }
                }
                b'.' => {
                    let result = self.pop()?;
                    if !self.stack.is_empty() {
                        return self.err("objects or MARKs are left on the stack at STOP");
                    }
                    return Ok(result);
                }
                b'(' => self.stack.push(Slot::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(Slot::Obj(id));
                }
                b'N' => self.push(Object::None)?,
                0x88 => self.push(Object::Bool(true))?,
                0x89 => self.push(Object::Bool(false))?,
                b'K' => {
                    let v = self.u8()?;
                    self.push(Object::Int(v.into()))?
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Object::Int(v.into()))?
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    self.push(Object::Int(v.into()))?
                }
                // LONG1: little-endian two's complement of n bytes.
                0x8a => {
                    let n = self.u8()? as usize;
                    let bytes = self.take(n)?.to_vec();
                    let o = if n <= 8 {
                        let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
                            0xff
                        } else {
                            0
                        };
                        let mut b = [fill; 8];
                        b[..n].copy_from_slice(&bytes);
                        Object::Int(i64::from_le_bytes(b))
                    } else {
                        Object::BigInt(bytes)
                    };
                    self.push(o)?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.push(Object::Float(v))?
                }
                b'X' => {
                    let n = self.u32()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Object::Str(s))?
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.utf8(n)?;
                    self.push(Object::Str(s))?
                }
                0x8d => {
                    let n = self.u64()?;
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    let s = self.utf8(n)?;
                    self.push(Object::Str(s))?
                }
                b')' => self.push(Object::Tuple(Vec::new()))?,
                b']' => self.push(Object::List(Vec::new()))?,
                b'}' => self.push(Object::Dict(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Object::Tuple(items))?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Object::Tuple(items))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Object::List(items))?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let id = self.alloc(Object::Dict(Vec::new()))?;
                    self.set_items(id, &items)?;
                    self.stack.push(Slot::Obj(id));
                }
                b'a' => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.append(list, vec![item])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.append(list, items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let dict = self.top()?;
                    self.set_items(dict, &[k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.set_items(dict, &items)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k)?
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Object::Global(module, name))?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (self.m.get(module), self.m.get(name)) {
                        (Object::Str(m), Object::Str(n)) => {
                            let o = Object::Global(m.clone(), n.clone());
                            self.push(o)?
                        }
                        _ => return self.err("STACK_GLOBAL needs two strings"),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let storage = self.persistent_load(pid)?;
                    self.push(storage)?
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let o = self.reduce(callable, args)?;
                    match o {
                        Reduced::New(o) => self.push(o)?,
                        Reduced::Existing(id) => self.stack.push(Slot::Obj(id)),
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    let target = self.top()?;
                    // torch stores a module's `_metadata` (versions) as the OrderedDict's attribute
                    // dict; it carries no weights, so it is checked for shape and dropped.
                    match (self.m.get(target), self.m.get(state)) {
                        (Object::Dict(_), Object::Dict(_) | Object::None) => {}
                        _ => {
                            return self.err("BUILD is only supported on a dict with a dict state");
                        }
                    }
                }
                other => {
                    return self.err(format!(
                        "unsupported pickle opcode 0x{other:02x}: this reader only knows what torch.save writes for a state dict"
                    ));
                }
            }
        }
    }

    fn persistent_load(&mut self, pid: Id) -> Result<Object, PickleError> {
        let Object::Tuple(items) = self.m.get(pid) else {
            return self.err("persistent id is not a tuple");
        };
        let items = items.clone();
        if items.len() < 5 || self.m.as_str(items[0]) != Some("storage") {
            return self.err("persistent id is not a ('storage', type, key, location, size) tuple");
        }
        let dtype = match self.m.get(items[1]) {
            Object::Global(module, name) if module == "torch" => name.clone(),
            _ => return self.err("storage type is not a torch.*Storage class"),
        };
        let key = match self.m.get(items[2]) {
            Object::Str(s) => s.clone(),
            Object::Int(i) => i.to_string(),
            _ => return self.err("storage key is not a string"),
        };
        let numel = match self.m.as_int(items[4]) {
            Some(n) if n >= 0 => n as u64,
            _ => return self.err("storage size is not a non-negative integer"),
        };
        // Legacy files may describe a view into another storage; state dicts from
        // `torch.save(model.state_dict())` never do, and we do not guess at it.
        if items.len() > 5 && !matches!(self.m.get(items[5]), Object::None) {
            return self.err(format!(
                "storage {key} is a view of another storage (legacy view metadata): not supported"
            ));
        }
        Ok(Object::Storage { dtype, key, numel })
    }

    fn int_tuple(&self, id: Id, what: &str) -> Result<Vec<u64>, PickleError> {
        let Object::Tuple(items) = self.m.get(id) else {
            return self.err(format!("tensor {what} is not a tuple"));
        };
        if items.len() > 8 {
            return self.err(format!(
                "tensor {what} has {} dimensions (at most 8)",
                items.len()
            ));
        }
        items
            .iter()
            .map(|i| match self.m.as_int(*i) {
                Some(v) if v >= 0 => Ok(v as u64),
                _ => self.err(format!(
                    "tensor {what} holds a value that is not a non-negative integer"
                )),
            })
            .collect()
    }

    fn reduce(&mut self, callable: Id, args: Id) -> Result<Reduced, PickleError> {
        let Object::Global(module, name) = self.m.get(callable) else {
            return self.err("REDUCE on an object that is not a GLOBAL");
        };
        let Object::Tuple(args) = self.m.get(args) else {
            return self.err("REDUCE arguments are not a tuple");
        };
        let args = args.clone();
        match (module.as_str(), name.as_str()) {
            ("collections", "OrderedDict") => {
                if !args.is_empty() {
                    return self.err("OrderedDict built with arguments: not supported");
                }
                Ok(Reduced::New(Object::Dict(Vec::new())))
            }
            // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
            ("torch._utils", "_rebuild_tensor_v2") => {
                if !(6..=7).contains(&args.len()) {
                    return self.err(format!(
                        "_rebuild_tensor_v2 takes 6 or 7 arguments, got {}",
                        args.len()
                    ));
                }
                if !matches!(self.m.get(args[0]), Object::Storage { .. }) {
                    return self.err("_rebuild_tensor_v2's first argument is not a storage");
                }
                let offset = match self.m.as_int(args[1]) {
                    Some(o) if o >= 0 => o as u64,
                    _ => return self.err("tensor storage offset is not a non-negative integer"),
                };
                let size = self.int_tuple(args[2], "size")?;
                let stride = self.int_tuple(args[3], "stride")?;
                if size.len() != stride.len() {
                    return self.err("tensor size and stride have different lengths");
                }
                Ok(Reduced::New(Object::Tensor {
                    storage: args[0],
                    offset,
                    size,
                    stride,
                }))
            }
            // (tensor, requires_grad, backward_hooks): an nn.Parameter is its tensor for us.
            ("torch._utils", "_rebuild_parameter") => match args.first() {
                Some(t) if matches!(self.m.get(*t), Object::Tensor { .. }) => {
                    Ok(Reduced::Existing(*t))
                }
                _ => self.err("_rebuild_parameter's first argument is not a tensor"),
            },
            (m, n) => self.err(format!(
                "unsupported callable {m}.{n}: this reader only loads state dicts of tensors"
            )),
        }
    }
}

enum Reduced {
    New(Object),
    Existing(Id),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(bytes: &[u8]) -> Result<(Machine, Id), PickleError> {
        let mut m = Machine::default();
        let (id, end) = m.load(bytes, 0)?;
        assert_eq!(end, bytes.len());
        Ok((m, id))
    }

    #[test]
    fn builds_dict_with_memo_and_setitems() {
        // {'a': 1, 'b': (2, 'a')} with the key 'a' memoised and reused.
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend(b"X\x01\x00\x00\x00a");
        p.extend([b'q', 1, b'K', 1]);
        p.extend(b"X\x01\x00\x00\x00b");
        p.extend([b'K', 2, b'h', 1, 0x86, b'u', b'.']);
        let (m, id) = load(&p).unwrap();
        let Object::Dict(entries) = m.get(id) else {
            panic!("not a dict: {:?}", m.get(id))
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(m.as_str(entries[0].0), Some("a"));
        assert_eq!(m.as_int(entries[0].1), Some(1));
        let Object::Tuple(t) = m.get(entries[1].1) else {
            panic!()
        };
        assert_eq!(m.as_int(t[0]), Some(2));
        assert_eq!(m.as_str(t[1]), Some("a"));
    }

    #[test]
    fn long1_small_and_big() {
        let (m, id) = load(&[0x80, 2, 0x8a, 2, 0xff, 0xff, b'.']).unwrap();
        assert_eq!(m.as_int(id), Some(-1));
        let (m, id) = load(&[0x80, 2, 0x8a, 1, 0x7f, b'.']).unwrap();
        assert_eq!(m.as_int(id), Some(127));
        let big = [0x80, 2, 0x8a, 10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, b'.'];
        let (m, id) = load(&big).unwrap();
        assert_eq!(m.get(id), &Object::BigInt((1..=10).collect()));
    }

    #[test]
    fn rejects_unknown_opcode_and_callable() {
        let e = load(&[0x80, 2, b'S', b'.']).err().unwrap();
        assert!(e.what.contains("unsupported pickle opcode 0x53"), "{e}");
        assert_eq!(e.pos, 2);
        let mut p = vec![0x80, 2];
        p.extend(b"cos\nsystem\n)R.");
        let e = load(&p).err().unwrap();
        assert!(e.what.contains("unsupported callable os.system"), "{e}");
    }

    #[test]
    fn rejects_stack_and_memo_misuse() {
        for (bytes, needle) in [
            (&b"\x80\x02."[..], "stack is empty"),
            (b"\x80\x02h\x05.", "memo entry 5"),
            (b"\x80\x02K\x01u.", "no MARK"),
            (b"\x80\x02(K\x01.", "left on the stack"),
            (b"\x80\x02(.", "MARK was found"),
            (b"\x80\x02(K\x01K\x02K\x03d.", "odd number"),
            (b"\x80\x02K\x01K\x02a.", "not a list"),
            (b"\x80\x09.", "protocol 9"),
        ] {
            let e = load(bytes).err().unwrap();
            assert!(e.what.contains(needle), "{bytes:?}: {e}");
        }
    }

    #[test]
    fn length_fields_are_checked_before_allocating() {
        // BINUNICODE claiming 4 GiB, BINUNICODE8 claiming 2^64-1 bytes.
        let e = load(b"\x80\x02X\xff\xff\xff\xffab.").err().unwrap();
        assert!(e.what.contains("truncated"), "{e}");
        let e = load(b"\x80\x04\x8d\xff\xff\xff\xff\xff\xff\xff\xffab.")
            .err()
            .unwrap();
        assert!(e.what.contains("truncated"), "{e}");
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut p = vec![0x80, 2, b'}', b'q', 0, b'('];
        p.extend(b"X\x03\x00\x00\x00key");
        p.extend([b'J', 1, 2, 3, 4, b'u', b'.']);
        load(&p).unwrap();
        for cut in 0..p.len() {
            assert!(load(&p[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow_the_stack() {
        let mut p = vec![0x80, 2, b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 200_000));
        p.push(b'.');
        let (m, _) = load(&p).unwrap();
        drop(m);
    }
}
