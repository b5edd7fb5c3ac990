//! Reads PyTorch `.pt` files that hold a state_dict of float32 tensors, without Python.
//!
//! Two containers exist:
//! - the zip format (torch >= 1.6): `<name>/data.pkl` plus one file `<name>/data/<key>` per storage;
//! - the legacy format (what facenet-pytorch 2.6.0 ships): five pickles back to back (magic number,
//!   protocol version 1001, system info, the state dict, the list of storage keys), then each storage
//!   in that order as an int64 element count followed by its raw little-endian bytes.
//!
//! Both run the same strict pickle interpreter ([`pickle`]). Tensors come back contiguous and
//! row-major, with shape, strides and storage offset honoured.

mod pickle;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use pickle::{Id, Machine, Object};

/// Largest file we read (weights for the nets we import are a few MB).
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Largest tensor we materialise, in elements.
const MAX_TENSOR_ELEMS: u64 = 1 << 28;

const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const LEGACY_PROTOCOL: i64 = 1001;

#[derive(Debug, thiserror::Error)]
#[error("cannot load PyTorch weights {path}: {what}")]
pub struct PtError {
    pub path: PathBuf,
    pub what: String,
}

/// A dense float32 tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The tensors of a state_dict, in file order.
#[derive(Debug)]
pub struct StateDict {
    pub path: PathBuf,
    pub tensors: Vec<(String, Tensor)>,
}

impl StateDict {
    pub fn open(path: &Path) -> Result<StateDict, PtError> {
        let err = |what: String| PtError {
            path: path.to_path_buf(),
            what,
        };
        let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let len = file.metadata().map_err(|e| err(e.to_string()))?.len();
        if len > MAX_FILE_BYTES {
            return Err(err(format!(
                "the file is {len} bytes, more than the {MAX_FILE_BYTES} this reader accepts"
            )));
        }
        let mut bytes = Vec::with_capacity(len as usize);
        file.take(MAX_FILE_BYTES)
            .read_to_end(&mut bytes)
            .map_err(|e| err(e.to_string()))?;
        Self::from_bytes(path, &bytes)
    }

    /// `path` only names the file in errors.
    pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<StateDict, PtError> {
        let tensors = if bytes.starts_with(b"PK\x03\x04") {
            read_zip(bytes)
        } else if bytes.starts_with(&[0x80, 0x02, 0x8a, 0x0a]) {
            read_legacy(bytes)
        } else {
            Err(
                "not a PyTorch file (neither a zip archive nor a legacy torch.save pickle)"
                    .to_string(),
            )
        }
        .map_err(|what| PtError {
            path: path.to_path_buf(),
            what,
        })?;
        Ok(StateDict {
            path: path.to_path_buf(),
            tensors,
        })
    }

    /// The tensor `name`, which must have exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, PtError> {
        let err = |what: String| PtError {
            path: self.path.clone(),
            what,
        };
        let t = self
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t)
            .ok_or_else(|| {
                err(format!(
                    "the state dict has no tensor `{name}` (is this the right weights file?)"
                ))
            })?;
        if t.shape != shape {
            return Err(err(format!(
                "tensor `{name}` has shape {:?}, expected {shape:?}",
                t.shape
            )));
        }
        Ok(t)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.iter().map(|(n, _)| n.as_str())
    }
}

/// Raw storages by key, each as little-endian bytes.
type Storages<'a> = HashMap<String, std::borrow::Cow<'a, [u8]>>;

fn read_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut m = Machine::default();
    let mut pos = 0;
    let mut next = |m: &mut Machine, what: &str| -> Result<Id, String> {
        let (id, end) = m
            .load(bytes, pos)
            .map_err(|e| format!("in the {what}: {e}"))?;
        pos = end;
        Ok(id)
    };
    let magic = next(&mut m, "magic number")?;
    if m.get(magic) != &Object::BigInt(LEGACY_MAGIC.to_vec()) {
        return Err("wrong magic number: not a torch.save file".into());
    }
    let proto = next(&mut m, "protocol version")?;
    if m.as_int(proto) != Some(LEGACY_PROTOCOL) {
        return Err(format!(
            "legacy protocol version {:?}, only {LEGACY_PROTOCOL} is known",
            m.get(proto)
        ));
    }
    let sys = next(&mut m, "system info")?;
    if dict_lookup(&m, sys, "little_endian").map(|id| m.get(id)) != Some(&Object::Bool(true)) {
        return Err("the file was written on a big-endian machine: not supported".into());
    }
    let root = next(&mut m, "state dict")?;
    let keys = next(&mut m, "storage key list")?;
    let Object::List(keys) = m.get(keys) else {
        return Err("the storage key list is not a list".into());
    };
    let declared = declared_storages(&m)?;
    let mut storages: Storages = HashMap::new();
    for key in keys {
        let key = m
            .as_str(*key)
            .ok_or("a storage key is not a string")?
            .to_string();
        let elem = declared
            .get(&key)
            .ok_or_else(|| format!("storage {key} is listed but no tensor refers to it"))?
            .1;
        let count = bytes
            .get(pos..pos + 8)
            .ok_or_else(|| format!("the file ends before storage {key}: it is truncated"))?;
        let count = u64::from_le_bytes(count.try_into().expect("8 bytes"));
        pos += 8;
        let len = count
            .checked_mul(elem)
            .filter(|n| *n <= (bytes.len() - pos) as u64)
            .ok_or_else(|| {
                format!(
                    "storage {key} claims {count} elements, more than the file holds: it is truncated"
                )
            })? as usize;
        if storages
            .insert(key.clone(), bytes[pos..pos + len].into())
            .is_some()
        {
            return Err(format!("storage {key} is listed twice"));
        }
        pos += len;
    }
    if pos != bytes.len() {
        return Err(format!(
            "{} unexpected bytes after the last storage",
            bytes.len() - pos
        ));
    }
    collect_tensors(&m, root, &storages)
}

fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("broken zip archive: {e}"))?;
    let pkl_name = zip
        .file_names()
        .filter_map(Result::ok)
        .find(|n| n.ends_with("/data.pkl") && n.matches('/').count() == 1)
        .map(|n| n.to_string())
        .ok_or("the zip archive has no <name>/data.pkl: not a torch.save file")?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let mut read_entry = |name: &str| -> Result<Option<Vec<u8>>, String> {
        let mut f = match zip.by_name(name) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(format!("zip entry {name}: {e}")),
        };
        // The declared size only sizes the buffer when it is plausible; reading is capped anyway.
        let declared = f.size();
        if declared > bytes.len() as u64 * 1032 || declared > MAX_FILE_BYTES {
            return Err(format!(
                "zip entry {name} declares an implausible size {declared}"
            ));
        }
        let mut out = Vec::new();
        (&mut f)
            .take(declared + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("zip entry {name}: {e}"))?;
        if out.len() as u64 != declared {
            return Err(format!(
                "zip entry {name} does not hold its declared {declared} bytes"
            ));
        }
        Ok(Some(out))
    };
    if let Some(order) = read_entry(&format!("{prefix}byteorder"))?
        && order != b"little"
    {
        return Err("the file was written on a big-endian machine: not supported".into());
    }
    let pkl = read_entry(&pkl_name)?.ok_or("data.pkl vanished")?;
    let mut m = Machine::default();
    let (root, end) = m.load(&pkl, 0).map_err(|e| format!("in data.pkl: {e}"))?;
    if end != pkl.len() {
        return Err("data.pkl has bytes after its STOP opcode".into());
    }
    let mut storages: Storages = HashMap::new();
    for key in declared_storages(&m)?.into_keys() {
        let data = read_entry(&format!("{prefix}data/{key}"))?.ok_or_else(|| {
            format!("storage {key} is referenced but the archive has no data/{key}")
        })?;
        storages.insert(key, data.into());
    }
    collect_tensors(&m, root, &storages)
}

/// Every storage the pickle refers to: key -> (declared element count, element size in bytes).
fn declared_storages(m: &Machine) -> Result<HashMap<String, (u64, u64)>, String> {
    let mut out: HashMap<String, (u64, u64)> = HashMap::new();
    for o in &m.objects {
        if let Object::Storage { dtype, key, numel } = o {
            let elem = match dtype.as_str() {
                "FloatStorage" => 4,
                other => {
                    return Err(format!(
                        "storage {key} is a torch.{other}: only float32 (FloatStorage) weights are supported"
                    ));
                }
            };
            if let Some(prev) = out.insert(key.clone(), (*numel, elem))
                && prev != (*numel, elem)
            {
                return Err(format!(
                    "storage {key} is declared with two different sizes"
                ));
            }
        }
    }
    Ok(out)
}

fn dict_lookup(m: &Machine, dict: Id, key: &str) -> Option<Id> {
    match m.get(dict) {
        Object::Dict(entries) => entries
            .iter()
            .find(|(k, _)| m.as_str(*k) == Some(key))
            .map(|(_, v)| *v),
        _ => None,
    }
}

fn collect_tensors(
    m: &Machine,
    root: Id,
    storages: &Storages,
) -> Result<Vec<(String, Tensor)>, String> {
    let Object::Dict(entries) = m.get(root) else {
        return Err(
            "the pickled object is not a dict: save `model.state_dict()`, not the model".into(),
        );
    };
    let mut out = Vec::with_capacity(entries.len().min(4096));
    for (k, v) in entries {
        let name = m.as_str(*k).ok_or("a state dict key is not a string")?;
        let t = tensor(m, *v, storages).map_err(|e| format!("tensor `{name}`: {e}"))?;
        out.push((name.to_string(), t));
    }
    Ok(out)
}

fn tensor(m: &Machine, id: Id, storages: &Storages) -> Result<Tensor, String> {
    let Object::Tensor {
        storage,
        offset,
        size,
        stride,
    } = m.get(id)
    else {
        return Err("the value is not a tensor".into());
    };
    let Object::Storage { key, numel, .. } = m.get(*storage) else {
        return Err("the tensor's storage is not a storage".into());
    };
    let raw = storages
        .get(key)
        .ok_or_else(|| format!("storage {key} is missing from the file"))?;
    if raw.len() as u64 != numel * 4 {
        return Err(format!(
            "storage {key} holds {} bytes but is declared with {numel} float32 elements",
            raw.len()
        ));
    }
    let count = size
        .iter()
        .try_fold(1u64, |acc, s| acc.checked_mul(*s))
        .filter(|n| *n <= MAX_TENSOR_ELEMS)
        .ok_or_else(|| format!("shape {size:?} is too large"))?;
    if count > 0 {
        // The last element the view touches must lie inside the storage.
        let last = size
            .iter()
            .zip(stride)
            .try_fold(*offset, |acc, (s, st)| {
                acc.checked_add((s - 1).checked_mul(*st)?)
            })
            .ok_or_else(|| format!("shape {size:?} with strides {stride:?} overflows"))?;
        if last >= *numel {
            return Err(format!(
                "shape {size:?}, strides {stride:?} and offset {offset} reach element {last} of a storage of {numel}"
            ));
        }
    }
    let value = |i: u64| {
        let i = i as usize * 4;
        f32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]])
    };
    let mut data = Vec::with_capacity(count as usize);
    // Walk the multi-index in row-major order (an odometer), adding strides.
    let mut index = vec![0u64; size.len()];
    for _ in 0..count {
        let at = offset + index.iter().zip(stride).map(|(i, s)| i * s).sum::<u64>();
        data.push(value(at));
        for d in (0..size.len()).rev() {
            index[d] += 1;
            if index[d] < size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Ok(Tensor {
        shape: size.iter().map(|s| *s as usize).collect(),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Pickle bytes for a state dict {name: tensor} in torch.save's style (protocol 2), each tensor a
    /// view `(key, offset, size, stride)` into a FloatStorage of `numel` elements.
    /// (name, storage key, storage numel, offset, size, stride)
    type Entry<'a> = (&'a str, &'a str, u64, u64, &'a [u64], &'a [u64]);

    fn state_dict_pickle(entries: &[Entry]) -> Vec<u8> {
        let mut p = vec![0x80, 2];
        p.extend(b"ccollections\nOrderedDict\n)R(");
        let str_op = |p: &mut Vec<u8>, s: &str| {
            p.push(b'X');
            p.extend((s.len() as u32).to_le_bytes());
            p.extend(s.as_bytes());
        };
        let int_op = |p: &mut Vec<u8>, v: u64| {
            p.push(b'J');
            p.extend((v as u32).to_le_bytes());
        };
        for (name, key, numel, offset, size, stride) in entries {
            str_op(&mut p, name);
            p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
            str_op(&mut p, "storage");
            p.extend(b"ctorch\nFloatStorage\n");
            str_op(&mut p, key);
            str_op(&mut p, "cpu");
            int_op(&mut p, *numel);
            p.extend(b"NtQ");
            int_op(&mut p, *offset);
            p.push(b'(');
            for s in *size {
                int_op(&mut p, *s);
            }
            p.extend(b"t(");
            for s in *stride {
                int_op(&mut p, *s);
            }
            p.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
        }
        p.extend(b"u}b.");
        p
    }

    fn legacy_file(pickle: &[u8], storages: &[(&str, Vec<f32>)]) -> Vec<u8> {
        let mut f = vec![0x80, 2, 0x8a, 10];
        f.extend(LEGACY_MAGIC);
        f.push(b'.');
        f.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
        f.extend([0x80, 2, b'}', b'(']);
        f.extend(b"X\x0d\x00\x00\x00little_endian\x88u.");
        f.extend(pickle);
        f.extend([0x80, 2, b']', b'(']);
        for (k, _) in storages {
            f.push(b'X');
            f.extend((k.len() as u32).to_le_bytes());
            f.extend(k.as_bytes());
        }
        f.extend(b"e.");
        for (_, v) in storages {
            f.extend((v.len() as u64).to_le_bytes());
            for x in v {
                f.extend(x.to_le_bytes());
            }
        }
        f
    }

    fn zip_file(pickle: &[u8], storages: &[(&str, Vec<f32>)], deflate: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let opts = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file("archive/data.pkl", opts).unwrap();
        w.write_all(pickle).unwrap();
        w.start_file("archive/byteorder", opts).unwrap();
        w.write_all(b"little").unwrap();
        for (k, v) in storages {
            w.start_file(format!("archive/data/{k}"), opts).unwrap();
            for x in v {
                w.write_all(&x.to_le_bytes()).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn seq(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32 * 0.5 - 1.0).collect()
    }

    /// A contiguous 2x3 weight, a bias at offset 6 of the same storage, and a transposed (3x2 view
    /// with strides (1,3)) tensor sharing a second storage.
    fn sample() -> Vec<u8> {
        state_dict_pickle(&[
            ("w", "0", 8, 0, &[2, 3], &[3, 1]),
            ("b", "0", 8, 6, &[2], &[1]),
            ("t", "1", 6, 0, &[3, 2], &[1, 3]),
        ])
    }

    fn check_sample(sd: &StateDict) {
        let s0 = seq(8);
        let s1 = seq(6);
        assert_eq!(sd.names().collect::<Vec<_>>(), ["w", "b", "t"]);
        assert_eq!(sd.get("w", &[2, 3]).unwrap().data, s0[..6]);
        assert_eq!(sd.get("b", &[2]).unwrap().data, s0[6..8]);
        let t = sd.get("t", &[3, 2]).unwrap();
        // Element (i, j) = storage[i + 3 j].
        assert_eq!(t.data, [s1[0], s1[3], s1[1], s1[4], s1[2], s1[5]]);
    }

    #[test]
    fn reads_legacy_and_zip_containers() {
        let storages = [("0", seq(8)), ("1", seq(6))];
        let p = Path::new("x.pt");
        check_sample(&StateDict::from_bytes(p, &legacy_file(&sample(), &storages)).unwrap());
        for deflate in [false, true] {
            check_sample(
                &StateDict::from_bytes(p, &zip_file(&sample(), &storages, deflate)).unwrap(),
            );
        }
    }

    #[test]
    fn shape_mismatch_and_missing_names_are_reported() {
        let storages = [("0", seq(8)), ("1", seq(6))];
        let sd =
            StateDict::from_bytes(Path::new("w.pt"), &legacy_file(&sample(), &storages)).unwrap();
        let e = sd.get("w", &[3, 2]).unwrap_err().to_string();
        assert!(e.contains("w.pt") && e.contains("[2, 3]"), "{e}");
        let e = sd.get("nope", &[1]).unwrap_err().to_string();
        assert!(e.contains("no tensor `nope`"), "{e}");
    }

    fn load_err(bytes: &[u8]) -> String {
        match StateDict::from_bytes(Path::new("bad.pt"), bytes) {
            Ok(_) => panic!("loaded but should not have"),
            Err(e) => {
                let s = e.to_string();
                assert!(s.contains("bad.pt"), "{s}");
                s
            }
        }
    }

    #[test]
    fn views_outside_their_storage_are_refused() {
        // 2x3 view at offset 3 needs 9 elements; the storage has 8.
        let p = state_dict_pickle(&[("w", "0", 8, 3, &[2, 3], &[3, 1])]);
        let e = load_err(&legacy_file(&p, &[("0", seq(8))]));
        assert!(e.contains("reach element 8 of a storage of 8"), "{e}");
        // Storage declared with 8 elements but 7 written.
        let p = state_dict_pickle(&[("w", "0", 8, 0, &[2], &[1])]);
        let e = load_err(&zip_file(&p, &[("0", seq(7))], false));
        assert!(e.contains("declared with 8"), "{e}");
        // Referenced storage missing from the archive.
        let e = load_err(&zip_file(&p, &[], false));
        assert!(e.contains("no data/0"), "{e}");
    }

    #[test]
    fn other_dtypes_are_refused() {
        let p = state_dict_pickle(&[("n", "0", 1, 0, &[], &[])]);
        let at = p.windows(12).position(|w| w == b"FloatStorage").unwrap();
        let p = [&p[..at], b"LongStorage", &p[at + 12..]].concat();
        let e = load_err(&legacy_file(&p, &[("0", seq(1))]));
        assert!(e.contains("torch.LongStorage"), "{e}");
    }

    #[test]
    fn truncated_files_fail_cleanly_at_every_length() {
        let storages = [("0", seq(8)), ("1", seq(6))];
        for file in [
            legacy_file(&sample(), &storages),
            zip_file(&sample(), &storages, true),
        ] {
            for cut in 0..file.len() {
                load_err(&file[..cut]);
            }
        }
    }

    #[test]
    fn garbage_is_refused() {
        let e = load_err(b"hello, not a torch file");
        assert!(e.contains("not a PyTorch file"), "{e}");
        let mut f = legacy_file(&sample(), &[("0", seq(8)), ("1", seq(6))]);
        f.extend(b"junk");
        let e = load_err(&f);
        assert!(e.contains("unexpected bytes"), "{e}");
        // Flip every byte of the pickles in turn: errors or (rarely) a different valid dict, no panic.
        let f = legacy_file(&sample(), &[("0", seq(8)), ("1", seq(6))]);
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0xa5;
            let _ = StateDict::from_bytes(Path::new("flip.pt"), &g);
        }
    }

    #[test]
    fn huge_storage_count_is_not_allocated() {
        let p = state_dict_pickle(&[("w", "0", 2, 0, &[2], &[1])]);
        let mut f = legacy_file(&p, &[("0", seq(2))]);
        let at = f.len() - 8 - 8;
        f[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let e = load_err(&f);
        assert!(e.contains("truncated"), "{e}");
    }
}
