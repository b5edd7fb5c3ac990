//! Training data: a folder per identity (LFW's `DIR/NAME/NAME_0001.jpg`, VGGFace2's
//! `DIR/n000002/0001_01.jpg`), aligned once through the box's own detect → align code into a chip
//! cache ([`chips`]), then augmented per draw ([`augment`]).

pub mod augment;
pub mod chips;

use std::path::{Path, PathBuf};

/// Why a dataset folder cannot be trained on. Each message names the folder and what to do.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error(
        "dataset folder {0} does not exist (--data must be a folder with one sub-folder per identity)"
    )]
    Missing(PathBuf),
    #[error("{0} is not a folder (--data must be a folder with one sub-folder per identity)")]
    NotADirectory(PathBuf),
    #[error("cannot read dataset folder {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "dataset folder {0} holds no images: expected DIR/IDENTITY/IMAGE.jpg (LFW or VGGFace2 layout; .jpg, .jpeg or .png)"
    )]
    Empty(PathBuf),
    #[error(
        "dataset folder {path} has {identities} identities with {images} images, but none with at least 2 images: triplets need two photos of one person"
    )]
    NoPairs {
        path: PathBuf,
        identities: usize,
        images: usize,
    },
}

/// One identity's images, sorted by file name.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub name: String,
    pub images: Vec<PathBuf>,
}

/// A scanned folder-per-identity dataset. Identities and images are sorted so that a seed means
/// the same draws on every machine.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    pub root: PathBuf,
    pub identities: Vec<Identity>,
}

fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["jpg", "jpeg", "png"].contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        // Hidden files and folders (.DS_Store, .git) are never identities or images.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

impl Dataset {
    /// Reads `root/IDENTITY/IMAGE`; files directly in `root` and non-image files are ignored.
    /// Refuses a folder with no image or with no identity that has two images.
    pub fn scan(root: &Path) -> Result<Dataset, DatasetError> {
        if !root.exists() {
            return Err(DatasetError::Missing(root.to_path_buf()));
        }
        if !root.is_dir() {
            return Err(DatasetError::NotADirectory(root.to_path_buf()));
        }
        let mut identities = Vec::new();
        for dir in sorted_entries(root)? {
            if !dir.is_dir() {
                continue;
            }
            let images: Vec<PathBuf> = sorted_entries(&dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if images.is_empty() {
                continue;
            }
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            identities.push(Identity { name, images });
        }
        let images: usize = identities.iter().map(|i| i.images.len()).sum();
        if images == 0 {
            return Err(DatasetError::Empty(root.to_path_buf()));
        }
        if identities.iter().all(|i| i.images.len() < 2) {
            return Err(DatasetError::NoPairs {
                path: root.to_path_buf(),
                identities: identities.len(),
                images,
            });
        }
        Ok(Dataset {
            root: root.to_path_buf(),
            identities,
        })
    }

    pub fn num_images(&self) -> usize {
        self.identities.iter().map(|i| i.images.len()).sum()
    }

    /// Every image path, identity by identity (the order the chip cache is built in).
    pub fn images(&self) -> Vec<PathBuf> {
        self.identities
            .iter()
            .flat_map(|i| i.images.iter().cloned())
            .collect()
    }

    /// Splits by identity: a deterministic `held_out` share (by seed) of the identities with at least
    /// two images goes to the second dataset, for verification on people never trained on.
    pub fn split_identities(&self, held_out: f64, seed: u64) -> (Dataset, Dataset) {
        let mut eligible: Vec<usize> = (0..self.identities.len())
            .filter(|&i| self.identities[i].images.len() >= 2)
            .collect();
        super::rng::Rng::for_step(seed, 0x5911_7000, 0).shuffle(&mut eligible);
        let n_held = ((eligible.len() as f64 * held_out).round() as usize).min(eligible.len());
        let held: std::collections::BTreeSet<usize> = eligible[..n_held].iter().copied().collect();
        let pick = |keep: bool| Dataset {
            root: self.root.clone(),
            identities: (0..self.identities.len())
                .filter(|i| held.contains(i) != keep)
                .map(|i| self.identities[i].clone())
                .collect(),
        };
        (pick(true), pick(false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn scans_identities_and_refuses_unusable_folders() {
        let dir = std::env::temp_dir().join(format!("lw-dataset-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(matches!(Dataset::scan(&dir), Err(DatasetError::Missing(_))));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(Dataset::scan(&dir), Err(DatasetError::Empty(_))));
        touch(&dir.join("b/b_0001.jpg"));
        touch(&dir.join("a/a_0001.JPG"));
        touch(&dir.join("a/notes.txt"));
        let err = Dataset::scan(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                DatasetError::NoPairs {
                    identities: 2,
                    images: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("at least 2 images"));
        touch(&dir.join("a/a_0002.png"));
        let ds = Dataset::scan(&dir).unwrap();
        assert_eq!(ds.identities.len(), 2);
        assert_eq!(ds.identities[0].name, "a");
        assert_eq!(ds.identities[0].images.len(), 2);
        assert_eq!(ds.num_images(), 3);
        let (train, held) = ds.split_identities(1.0, 1);
        assert_eq!(held.identities.len(), 1);
        assert_eq!(train.identities.len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
