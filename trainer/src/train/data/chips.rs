//! Every training image detected and aligned once, through the box's own chip path
//! ([`FaceChipper`]: MTCNN → mapped dlib box → dlib 5-point landmarks → face chip), and cached in
//! the run folder.
//!
//! The cache (`chips-SIZE-PADDING.bin`) is keyed by each image's sha256 and the chip geometry, so a
//! renamed or re-ordered dataset reuses it and an edited photo is aligned again. It is a cache: a
//! damaged file is reported and rebuilt, never trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lanewatch::vision::align::ChipSpec;
use lanewatch::vision::chipper::FaceChipper;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::faces::FaceModels;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"LWCHIPS1";

/// One image's chip: packed RGB, `spec.size` squared times 3 bytes; `None` when no face was found.
pub type Chip = Option<Vec<u8>>;

/// Chips for a list of images, in the same order.
pub struct Chips {
    pub spec: ChipSpec,
    pub chips: Vec<Chip>,
    /// How many came from the cache and how many were aligned in this call.
    pub cached: usize,
    pub aligned: usize,
}

impl Chips {
    pub fn without_face(&self) -> usize {
        self.chips.iter().filter(|c| c.is_none()).count()
    }
}

/// The cache file for a chip geometry inside a run folder.
pub fn cache_path(run: &Path, spec: ChipSpec) -> PathBuf {
    run.join(format!("chips-{}-{}.bin", spec.size, spec.padding))
}

/// Detects the main face of every image (largest, centre-weighted, as `lanewatch enroll` and
/// `trainer eval lfw` do) and cuts its chip. Images already in `cache` are not decoded again;
/// the cache is rewritten (atomically) when anything new was aligned.
pub fn align_all(
    images: &[PathBuf],
    models_dir: &Path,
    spec: ChipSpec,
    cache: Option<&Path>,
    threads: usize,
) -> anyhow::Result<Chips> {
    let mut known = match cache {
        Some(path) => read_cache(path, spec),
        None => HashMap::new(),
    };
    // Hash first (cheap) so that cached images are never decoded.
    let mut hashes = Vec::with_capacity(images.len());
    for path in images {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read image {}", path.display()))?;
        hashes.push(<[u8; 32]>::from(Sha256::digest(&bytes)));
    }
    let todo: Vec<usize> = (0..images.len())
        .filter(|&i| !known.contains_key(&hashes[i]))
        .collect();
    let cached = images.len() - todo.len();
    if !todo.is_empty() {
        let fresh = align_parallel(images, &todo, models_dir, spec, threads)?;
        for (i, chip) in todo.iter().zip(fresh) {
            known.insert(hashes[*i], chip);
        }
        if let Some(path) = cache {
            write_cache(path, spec, &known)
                .with_context(|| format!("cannot write the chip cache {}", path.display()))?;
        }
    }
    Ok(Chips {
        spec,
        chips: hashes.iter().map(|h| known[h].clone()).collect(),
        cached,
        aligned: todo.len(),
    })
}

fn align_parallel(
    images: &[PathBuf],
    todo: &[usize],
    models_dir: &Path,
    spec: ChipSpec,
    threads: usize,
) -> anyhow::Result<Vec<Chip>> {
    let models = FaceModels::in_dir(models_dir);
    // Planned for LFW's 250x250; the chipper re-plans for other sizes.
    crate::pool::map_with(
        todo,
        threads,
        || FaceChipper::open(&models, spec, 250, 250, DetectorConfig::default()),
        |chipper, _, &i| {
            let path = &images[i];
            let rgb = lanewatch::vision::faces::read_rgb(path)?;
            let chip = chipper
                .main_face_chip(&rgb)
                .with_context(|| format!("aligning {}", path.display()))?;
            Ok(chip.map(|c| c.data))
        },
        |n| {
            if n.is_multiple_of(500) {
                eprintln!("trainer: aligned {n}/{} images", todo.len());
            }
        },
    )
}

fn header(spec: ChipSpec) -> Vec<u8> {
    let mut h = MAGIC.to_vec();
    h.extend((spec.size as u32).to_le_bytes());
    h.extend(spec.padding.to_le_bytes());
    h
}

fn write_cache(
    path: &Path,
    spec: ChipSpec,
    known: &HashMap<[u8; 32], Chip>,
) -> std::io::Result<()> {
    let mut body = header(spec);
    let mut keys: Vec<&[u8; 32]> = known.keys().collect();
    keys.sort();
    body.extend((keys.len() as u64).to_le_bytes());
    for k in keys {
        body.extend(k);
        match &known[k] {
            Some(chip) => {
                body.push(1);
                body.extend(chip);
            }
            None => body.push(0),
        }
    }
    let digest = Sha256::digest(&body);
    body.extend(digest);
    lanewatch::fsio::write_atomically(path, &body)
}

/// The cached chips for `spec`; an absent, damaged or other-geometry cache gives none (reported).
fn read_cache(path: &Path, spec: ChipSpec) -> HashMap<[u8; 32], Chip> {
    let Ok(bytes) = std::fs::read(path) else {
        return HashMap::new();
    };
    match parse_cache(&bytes, spec) {
        Some(map) => map,
        None => {
            eprintln!(
                "trainer: the chip cache {} is damaged or for another chip geometry; aligning again",
                path.display()
            );
            HashMap::new()
        }
    }
}

fn parse_cache(bytes: &[u8], spec: ChipSpec) -> Option<HashMap<[u8; 32], Chip>> {
    let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if Sha256::digest(body).as_slice() != digest {
        return None;
    }
    let head = header(spec);
    let mut rest = body.strip_prefix(head.as_slice())?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = rest.split_at_checked(n)?;
        rest = b;
        Some(a)
    };
    let count = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let chip_len = spec.size * spec.size * 3;
    let mut map = HashMap::new();
    for _ in 0..count {
        let key: [u8; 32] = take(32)?.try_into().ok()?;
        let chip = match take(1)?[0] {
            0 => None,
            1 => Some(take(chip_len)?.to_vec()),
            _ => return None,
        };
        map.insert(key, chip);
    }
    rest.is_empty().then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_round_trips_and_refuses_damage() {
        let spec = ChipSpec {
            size: 4,
            padding: 0.25,
        };
        let mut known = HashMap::new();
        known.insert([1u8; 32], Some(vec![7u8; 48]));
        known.insert([2u8; 32], None);
        let path = std::env::temp_dir().join(format!("lw-chips-{}.bin", std::process::id()));
        write_cache(&path, spec, &known).unwrap();
        assert_eq!(read_cache(&path, spec), known);
        let other = ChipSpec { size: 5, ..spec };
        assert!(read_cache(&path, other).is_empty());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read_cache(&path, spec).is_empty());
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(read_cache(&path, spec).is_empty());
        std::fs::remove_file(&path).unwrap();
    }
}
