//! Embeddings kept between `trainer eval` runs (`--cache FILE`). A full-LFW run embeds 13,233 images,
//! tens of minutes on a small machine; the 1:N table or a second pairs file should not redo that.
//!
//! The file is keyed by everything that changes an embedding: the sha256 of the five model files, the
//! detector settings and the descriptor views (`--jitter`, `--mirror`). A file made with anything else is not reused (and is overwritten). It is
//! written atomically, so a run killed half-way leaves the previous file whole.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use lanewatch::fsio::write_atomically;
use lanewatch::vision::detect::DetectorConfig;
use lanewatch::vision::faces::{Augmentation, FaceModels};
use sha2::{Digest, Sha256};

const FORMAT: &str = "lanewatch-eval-embeddings/1";

type Entries = BTreeMap<PathBuf, Option<Vec<f32>>>;

pub struct EmbeddingCache {
    /// Where it is saved; `None` keeps it in memory only.
    file: Option<PathBuf>,
    root: PathBuf,
    key: String,
    entries: Entries,
    dirty: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Stored {
    /// (path relative to the images folder, embedding or `null` when no face was found)
    entries: Vec<(String, Option<Vec<f32>>)>,
}

/// A cache file as written: its format, the key of what made it, and the payload's fields.
#[derive(serde::Serialize, serde::Deserialize)]
struct Keyed<T> {
    format: String,
    key: String,
    #[serde(flatten)]
    payload: T,
}

/// Reads a cache file made by [`write_keyed`] with the same `format` and `key`. A missing file is
/// `None`; an unreadable-as-JSON, foreign or stale one is reported on stderr (`what` names it)
/// and is `None` too, to be replaced at the next save, never half-used.
pub(crate) fn read_keyed<T: serde::de::DeserializeOwned>(
    file: &Path,
    format: &str,
    key: &str,
    what: &str,
) -> anyhow::Result<Option<T>> {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {what} {}", file.display()));
        }
    };
    match serde_json::from_slice::<Keyed<T>>(&bytes) {
        Ok(k) if k.format == format && k.key == key => return Ok(Some(k.payload)),
        Ok(_) => eprintln!(
            "trainer eval: {} was made with other models or settings; it will be replaced",
            file.display()
        ),
        Err(e) => eprintln!(
            "trainer eval: {} is not a {what} ({e}); it will be replaced",
            file.display()
        ),
    }
    Ok(None)
}

/// Writes `payload` atomically under `format` and `key` (a run killed half-way leaves the
/// previous file whole).
pub(crate) fn write_keyed<T: serde::Serialize>(
    file: &Path,
    format: &str,
    key: &str,
    what: &str,
    payload: &T,
) -> anyhow::Result<()> {
    let keyed = Keyed {
        format: format.to_string(),
        key: key.to_string(),
        payload,
    };
    let bytes = serde_json::to_vec(&keyed).expect("plain data serialises");
    write_atomically(file, &bytes)
        .with_context(|| format!("cannot write {what} {}", file.display()))
}

/// sha256 over the model files' contents, the detector settings and the descriptor views.
pub(crate) fn pipeline_key(
    models: &FaceModels,
    config: &DetectorConfig,
    augmentation: Augmentation,
) -> anyhow::Result<String> {
    let mut h = Sha256::new();
    for path in [
        &models.pnet,
        &models.rnet,
        &models.onet,
        &models.landmarks,
        &models.embedder,
    ] {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read model file {}", path.display()))?;
        h.update(Sha256::digest(&bytes));
    }
    // Written so that files made before --mirror existed keep their keys.
    let mirror = if augmentation.mirror { " mirror" } else { "" };
    h.update(
        format!(
            "{} jitter={}{mirror}",
            config.cache_key(),
            augmentation.jitter
        )
        .as_bytes(),
    );
    Ok(hex::encode(h.finalize()))
}

impl EmbeddingCache {
    pub fn in_memory() -> EmbeddingCache {
        EmbeddingCache {
            file: None,
            root: PathBuf::new(),
            key: String::new(),
            entries: Entries::new(),
            dirty: false,
        }
    }

    /// Opens (or starts) the cache at `file` for images under `root`. An unreadable, foreign or stale
    /// file is reported on stderr and replaced at the next save, never half-used.
    pub fn open(
        file: &Path,
        root: &Path,
        models: &FaceModels,
        config: &DetectorConfig,
        augmentation: Augmentation,
    ) -> anyhow::Result<EmbeddingCache> {
        let key = pipeline_key(models, config, augmentation)?;
        let mut cache = EmbeddingCache {
            file: Some(file.to_path_buf()),
            root: root.to_path_buf(),
            key,
            entries: Entries::new(),
            dirty: false,
        };
        if let Some(s) = read_keyed::<Stored>(file, FORMAT, &cache.key, "embeddings cache")? {
            cache.entries = s
                .entries
                .into_iter()
                .map(|(rel, e)| (root.join(rel), e))
                .collect();
            eprintln!(
                "trainer eval: {} embeddings reused from {}",
                cache.entries.len(),
                file.display()
            );
        }
        Ok(cache)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, image: &Path) -> bool {
        self.entries.contains_key(image)
    }

    pub fn get(&self, image: &Path) -> Option<&Option<Vec<f32>>> {
        self.entries.get(image)
    }

    pub fn extend(&mut self, fresh: impl IntoIterator<Item = (PathBuf, Option<Vec<f32>>)>) {
        for (k, v) in fresh {
            self.entries.insert(k, v);
            self.dirty = true;
        }
    }

    /// Writes the file when anything was added (no-op in memory).
    pub fn save(&mut self) -> anyhow::Result<()> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        if !self.dirty {
            return Ok(());
        }
        let mut entries = Vec::with_capacity(self.entries.len());
        for (path, e) in &self.entries {
            let rel = path.strip_prefix(&self.root).with_context(|| {
                format!("{} is not under {}", path.display(), self.root.display())
            })?;
            entries.push((rel.to_string_lossy().into_owned(), e.clone()));
        }
        write_keyed(
            file,
            FORMAT,
            &self.key,
            "embeddings cache",
            &Stored { entries },
        )?;
        self.dirty = false;
        Ok(())
    }
}

/// What the caches' tests share: the bundled models and plain views.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::Path;

    use lanewatch::vision::faces::{Augmentation, FaceModels};

    pub const PLAIN: Augmentation = Augmentation {
        jitter: 0,
        mirror: false,
    };

    pub fn models() -> FaceModels {
        FaceModels::in_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{PLAIN, models};
    use super::*;
    use lanewatch::fsio::TempDir;

    #[test]
    fn reused_only_with_the_same_models_and_settings() {
        let tmp = TempDir::new("eval-cache").unwrap();
        let file = tmp.path().join("e.json");
        let root = Path::new("/lfw");
        let config = DetectorConfig::default();
        let mut c = EmbeddingCache::open(&file, root, &models(), &config, PLAIN).unwrap();
        assert!(c.is_empty());
        c.extend([
            (root.join("A/A_0001.jpg"), Some(vec![0.5, -0.25])),
            (root.join("B/B_0001.jpg"), None),
        ]);
        c.save().unwrap();

        let same = EmbeddingCache::open(&file, root, &models(), &config, PLAIN).unwrap();
        assert_eq!(same.len(), 2);
        assert_eq!(
            same.get(&root.join("A/A_0001.jpg")),
            Some(&Some(vec![0.5, -0.25]))
        );
        assert_eq!(same.get(&root.join("B/B_0001.jpg")), Some(&None));

        let other_settings = DetectorConfig {
            min_face: config.min_face + 1.0,
            ..config.clone()
        };
        assert!(
            EmbeddingCache::open(&file, root, &models(), &other_settings, PLAIN)
                .unwrap()
                .is_empty()
        );
        for other in [
            Augmentation {
                jitter: 10,
                mirror: false,
            },
            Augmentation {
                jitter: 0,
                mirror: true,
            },
        ] {
            assert!(
                EmbeddingCache::open(&file, root, &models(), &config, other)
                    .unwrap()
                    .is_empty()
            );
        }
        let mut other_model = models();
        other_model.embedder = other_model
            .embedder
            .with_file_name("dlib_resnet_v1_int8.onnx");
        assert!(
            EmbeddingCache::open(&file, root, &other_model, &config, PLAIN)
                .unwrap()
                .is_empty()
        );

        // A damaged file is replaced, not half-read.
        std::fs::write(
            &file,
            b"{\"format\": \"lanewatch-eval-embeddings/1\", \"key\"",
        )
        .unwrap();
        assert!(
            EmbeddingCache::open(&file, root, &models(), &config, PLAIN)
                .unwrap()
                .is_empty()
        );
        // A missing model file is an error naming it.
        let mut missing = models();
        missing.embedder = tmp.path().join("nope.onnx");
        let err = EmbeddingCache::open(&file, root, &missing, &config, PLAIN)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("nope.onnx"), "{err:#}");
    }
}
