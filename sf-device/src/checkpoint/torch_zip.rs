//! Storage check of a `torch.save` ZIP checkpoint, without reading any tensor: every storage the
//! pickle declares has its `data/<key>` entry, and that entry holds at least the declared bytes
//! and lies inside the file. It runs before the file is handed to `burn::store`, and also
//! refuses what would make a pickle machine allocate far beyond the file's size: a `data.pkl`
//! that inflates more than [`MAX_PICKLE_EXPANSION`] times the file, a stack deeper than
//! [`MAX_STACK`], a memo larger than [`MAX_MEMO`]. The pickle reader (`burn::store`) already checks at open that each
//! tensor fits the storage the pickle declares for it; together, a tensor whose bytes the file
//! does not hold is found at load time instead of when it is first read.
//!
//! The pickle is run on a small stack machine that knows only what the storage ids need
//! (strings, integers, tuples, globals, the memo); every other value is opaque. Values are shared,
//! never copied, so the work and memory are linear in the pickle's length.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use zip::ZipArchive;

/// The largest `data.pkl` read (the pickle reader's own limit).
const MAX_PICKLE_BYTES: u64 = 100 * 1024 * 1024;

/// The deepest tuple nesting accepted (the pickle reader's limit).
const MAX_DEPTH: u32 = 1000;

/// The most values and marks the pickle's stack may hold at once. `pickle` writes containers
/// in batches of 1000 items, so a real checkpoint stays in the low thousands; the limit keeps
/// the memory of both pickle machines (this one and burn::store's) bounded by a constant
/// instead of a multiple of the pickle's length.
const MAX_STACK: usize = 1 << 16;

/// The most objects the pickle may memoize (about 5 000 tensors' worth; the Wan, umT5 and
/// Self-Forcing checkpoints need a few thousand): bounds the memo of both machines.
const MAX_MEMO: usize = 1 << 16;

/// How many times the file's size a compressed `data.pkl` may expand to (`torch.save` stores
/// it uncompressed): more is refused before it is inflated.
const MAX_PICKLE_EXPANSION: u64 = 16;

/// Checks the storages of the ZIP checkpoint at `path`; `Err` says which storage is short.
pub fn check_storages(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut archive =
        ZipArchive::new(BufReader::new(file)).map_err(|e| format!("not a readable ZIP: {e}"))?;
    let root = archive
        .file_names()
        .filter_map(Result::ok)
        .filter_map(|n| n.strip_suffix("data.pkl").map(str::to_string))
        .filter(|r| r.is_empty() || r.ends_with('/'))
        .min_by_key(String::len)
        .ok_or("the archive has no data.pkl entry")?;
    let pickle = {
        let mut entry = archive
            .by_name(&format!("{root}data.pkl"))
            .map_err(|e| format!("cannot read data.pkl: {e}"))?;
        let limit = MAX_PICKLE_BYTES.min(MAX_PICKLE_EXPANSION * file_len + (1 << 20));
        if entry.size() > limit {
            return Err(format!(
                "data.pkl claims {} bytes in a file of {file_len}: refused (the limit is {limit})",
                entry.size()
            ));
        }
        let mut bytes = Vec::with_capacity(entry.size().min(file_len) as usize);
        entry
            .by_ref()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read data.pkl: {e}"))?;
        bytes
    };
    for (key, needed) in declared_storages(&pickle)? {
        let name = format!("{root}data/{key}");
        let index = archive.index_for_name(&name).ok_or_else(|| {
            format!("storage '{key}' ({needed} bytes) has no entry {name} in the archive")
        })?;
        let entry = archive
            .by_index_raw(index)
            .map_err(|e| format!("entry {name}: {e}"))?;
        if entry.size() < needed {
            return Err(format!(
                "storage '{key}' needs {needed} bytes but its entry {name} holds {}: the file is \
                 truncated or corrupt (download it again)",
                entry.size()
            ));
        }
        let stored_end = entry
            .data_start()
            .and_then(|start| start.checked_add(entry.compressed_size()));
        if stored_end.is_none_or(|end| end > file_len) {
            return Err(format!(
                "entry {name} reaches past the end of the file: the file is truncated"
            ));
        }
    }
    Ok(())
}

/// A value on the stack, as far as storage ids need one.
#[derive(Clone, Debug)]
enum V {
    Str(Rc<str>),
    Int(i64),
    /// The items and the nesting depth.
    Tuple(Rc<[V]>, u32),
    Global(Rc<str>),
    Other,
}

/// Bytes per element of a `torch.*Storage` class (`UntypedStorage` counts bytes).
fn storage_element_size(class: &str) -> Option<u64> {
    Some(match class {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "CharStorage" | "ByteStorage" | "BoolStorage" | "UntypedStorage" => 1,
        _ => return None,
    })
}

/// Every `('storage', type, key, location, numel, ...)` id of the pickle: key -> bytes needed.
fn declared_storages(pickle: &[u8]) -> Result<BTreeMap<String, u64>, String> {
    let mut m = Machine {
        data: pickle,
        at: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        storages: BTreeMap::new(),
    };
    m.run()
        .map_err(|e| format!("data.pkl: {e} (at byte {})", m.at))?;
    Ok(m.storages)
}

struct Machine<'a> {
    data: &'a [u8],
    at: usize,
    stack: Vec<V>,
    marks: Vec<usize>,
    memo: HashMap<u64, V>,
    storages: BTreeMap<String, u64>,
}

impl Machine<'_> {
    fn take(&mut self, n: u64) -> Result<&[u8], String> {
        let n = usize::try_from(n).map_err(|_| "length overflows".to_string())?;
        let end = self.at.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or("the pickle ends inside an opcode")?;
        let bytes = &self.data[self.at..end];
        self.at = end;
        Ok(bytes)
    }

    fn le(&mut self, n: u64) -> Result<u64, String> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<V, String> {
        if self.stack.len() <= self.marks.last().copied().unwrap_or(0) && !self.marks.is_empty() {
            return Err("pop across a mark".into());
        }
        self.stack.pop().ok_or_else(|| "stack underflow".into())
    }

    fn pop_mark(&mut self) -> Result<Vec<V>, String> {
        let mark = self.marks.pop().ok_or("no mark on the stack")?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&self) -> Result<V, String> {
        self.stack
            .last()
            .cloned()
            .ok_or_else(|| "empty stack".into())
    }

    /// Pushes a tuple of `items`, refusing nesting deeper than the pickle reader allows (a
    /// deeper value could not even be dropped without exhausting the stack).
    fn push_tuple(&mut self, items: Vec<V>) -> Result<(), String> {
        let depth = 1 + items
            .iter()
            .map(|v| match v {
                V::Tuple(_, d) => *d,
                _ => 0,
            })
            .max()
            .unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!("tuples nested deeper than {MAX_DEPTH} levels"));
        }
        self.stack.push(V::Tuple(items.into(), depth));
        Ok(())
    }

    fn string(bytes: &[u8]) -> V {
        V::Str(String::from_utf8_lossy(bytes).into())
    }

    fn run(&mut self) -> Result<(), String> {
        loop {
            if self.stack.len() + self.marks.len() > MAX_STACK {
                return Err(format!(
                    "the pickle's stack grows past {MAX_STACK} entries (no checkpoint needs that)"
                ));
            }
            let op = *self.take(1)?.first().unwrap_or(&0);
            match op {
                b'.' => return Ok(()),
                0x80 => drop(self.take(1)?),
                0x95 => drop(self.take(8)?),
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    if self.stack.len() > self.marks.last().copied().unwrap_or(0)
                        || self.marks.is_empty()
                    {
                        self.pop()?;
                    } else {
                        self.pop_mark()?;
                    }
                }
                b'1' => drop(self.pop_mark()?),
                b'2' => self.stack.push(self.top()?),
                b'J' => {
                    let v = self.le(4)? as u32 as i32 as i64;
                    self.stack.push(V::Int(v));
                }
                b'K' => {
                    let v = self.le(1)? as i64;
                    self.stack.push(V::Int(v));
                }
                b'M' => {
                    let v = self.le(2)? as i64;
                    self.stack.push(V::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a { self.le(1)? } else { self.le(4)? };
                    let v = long(self.take(n)?);
                    self.stack.push(v);
                }
                b'I' | b'L' => {
                    let line = self.line()?;
                    let v = line.trim_end_matches('L').parse::<i64>();
                    self.stack.push(v.map_or(V::Other, V::Int));
                }
                b'F' | b'P' => {
                    self.line()?;
                    self.stack.push(V::Other);
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(V::Other);
                }
                b'V' | b'S' => {
                    let line = self.line()?;
                    let text = line.trim_matches(|c| c == '\'' || c == '"');
                    self.stack.push(V::Str(text.into()));
                }
                b'X' | b'T' | 0x8c | b'U' | 0x8d => {
                    let n = match op {
                        b'X' | b'T' => self.le(4)?,
                        0x8d => self.le(8)?,
                        _ => self.le(1)?,
                    };
                    let v = Self::string(self.take(n)?);
                    self.stack.push(v);
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.le(4)?,
                        b'C' => self.le(1)?,
                        _ => self.le(8)?,
                    };
                    self.take(n)?;
                    self.stack.push(V::Other);
                }
                b'N' | 0x88 | 0x89 | b']' | b'}' | 0x8f | 0x97 => self.stack.push(V::Other),
                0x98 => {}
                b')' => self.stack.push(V::Tuple(Rc::from(Vec::new()), 1)),
                b't' => {
                    let items = self.pop_mark()?;
                    self.push_tuple(items)?;
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push_tuple(items)?;
                }
                b'l' | b'd' | 0x91 | b'o' => {
                    self.pop_mark()?;
                    self.stack.push(V::Other);
                }
                b'a' => drop(self.pop()?),
                b's' => {
                    self.pop()?;
                    self.pop()?;
                }
                b'e' | b'u' | 0x90 => drop(self.pop_mark()?),
                b'c' | b'i' => {
                    self.line()?;
                    let name = self.line()?;
                    if op == b'i' {
                        self.pop_mark()?;
                        self.stack.push(V::Other);
                    } else {
                        self.stack.push(V::Global(name.into()));
                    }
                }
                0x93 => {
                    let name = self.pop()?;
                    self.pop()?;
                    self.stack.push(match name {
                        V::Str(s) => V::Global(s),
                        _ => V::Other,
                    });
                }
                b'R' | 0x81 => {
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(V::Other);
                }
                0x92 => {
                    self.pop()?;
                    self.pop()?;
                    self.pop()?;
                    self.stack.push(V::Other);
                }
                b'b' => drop(self.pop()?),
                b'p' | b'q' | b'r' | 0x94 => {
                    let index = match op {
                        b'p' => self.line()?.parse::<u64>().map_err(|e| e.to_string())?,
                        b'q' => self.le(1)?,
                        b'r' => self.le(4)?,
                        _ => self.memo.len() as u64,
                    };
                    let top = self.top()?;
                    self.memo.insert(index, top);
                    if self.memo.len() > MAX_MEMO {
                        return Err(format!(
                            "the pickle memoizes more than {MAX_MEMO} objects (no checkpoint of \
                             these models needs that)"
                        ));
                    }
                }
                b'g' | b'h' | b'j' => {
                    let index = match op {
                        b'g' => self.line()?.parse::<u64>().map_err(|e| e.to_string())?,
                        b'h' => self.le(1)?,
                        _ => self.le(4)?,
                    };
                    let v = self.memo.get(&index).cloned();
                    self.stack
                        .push(v.ok_or_else(|| format!("memo {index} is empty"))?);
                }
                0x82..=0x84 => {
                    self.take(1 << (op - 0x82))?;
                    self.stack.push(V::Other);
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.declare(&pid)?;
                    self.stack.push(V::Other);
                }
                other => return Err(format!("unknown opcode 0x{other:02x}")),
            }
        }
    }

    /// Records a storage persistent id.
    fn declare(&mut self, pid: &V) -> Result<(), String> {
        let V::Tuple(items, _) = pid else {
            return Ok(());
        };
        let [V::Str(tag), class, key, _location, numel, ..] = &items[..] else {
            return Ok(());
        };
        if &**tag != "storage" {
            return Ok(());
        }
        let class = match class {
            V::Global(name) | V::Str(name) => name.clone(),
            _ => return Err("a storage id without a storage type".into()),
        };
        let size = storage_element_size(&class)
            .ok_or_else(|| format!("unknown storage type '{class}'"))?;
        let key = match key {
            V::Str(s) => s.to_string(),
            V::Int(i) => i.to_string(),
            _ => return Err("a storage id without a key".into()),
        };
        let numel = match numel {
            V::Int(n) if *n >= 0 => *n as u64,
            _ => return Err(format!("storage '{key}' has no valid element count")),
        };
        let bytes = numel
            .checked_mul(size)
            .ok_or_else(|| format!("storage '{key}' declares more bytes than fit in 64 bits"))?;
        let slot = self.storages.entry(key).or_default();
        *slot = (*slot).max(bytes);
        Ok(())
    }
}

/// A little-endian two's-complement integer (`LONG1` / `LONG4`).
fn long(bytes: &[u8]) -> V {
    if bytes.is_empty() {
        return V::Int(0);
    }
    if bytes.len() > 8 {
        return V::Other;
    }
    let negative = bytes[bytes.len() - 1] & 0x80 != 0;
    let mut buf = [if negative { 0xff } else { 0 }; 8];
    buf[..bytes.len()].copy_from_slice(bytes);
    V::Int(i64::from_le_bytes(buf))
}

#[cfg(test)]
#[path = "torch_zip_tests.rs"]
mod tests;
