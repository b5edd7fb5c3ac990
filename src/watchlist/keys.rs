//! Signing keys: ed25519 key files written by `lanewatch keygen`, key ids, and the set of public
//! keys a box trusts.
//!
//! Key files are one line of text so that a technician can read, copy and compare them:
//! `lanewatch-ed25519-public <64 hex digits>` and `lanewatch-ed25519-secret <64 hex digits>`.

use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

const PUBLIC_TAG: &str = "lanewatch-ed25519-public";
const SECRET_TAG: &str = "lanewatch-ed25519-secret";
/// A key file is one short line; anything longer is not one of ours and is not read whole.
const MAX_KEY_FILE: u64 = 256;

/// First 8 bytes of sha256(public key): names the key in a watchlist header.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    pub fn of(key: &VerifyingKey) -> KeyId {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({self})")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "key file {path} already exists; keygen never overwrites a key (choose another --out or move the old one away)"
    )]
    Exists { path: PathBuf },
    #[error("{path} is not a lanewatch {kind} key file: {why}")]
    Malformed {
        path: PathBuf,
        kind: &'static str,
        why: String,
    },
    #[error(
        "secret key file {path} can be read by other users (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("the operating system could not supply randomness for a new key: {0}")]
    Random(String),
}

/// Reads a whole key file, refusing anything larger than a key line.
fn read_small(path: &Path) -> Result<String, KeyError> {
    use std::io::Read;
    let read_err = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    // Regular files only: a FIFO or device given as a key is refused, not waited on.
    let file = crate::fsio::open_regular(path).map_err(read_err)?;
    let mut text = String::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_string(&mut text)
        .map_err(read_err)?;
    if text.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::Malformed {
            path: path.to_path_buf(),
            kind: "key",
            why: format!("it is longer than {MAX_KEY_FILE} bytes"),
        });
    }
    Ok(text)
}

/// Parses `TAG <64 hex>` with an optional final newline, and nothing else.
fn parse_line(
    path: &Path,
    text: &str,
    tag: &str,
    kind: &'static str,
) -> Result<[u8; 32], KeyError> {
    let malformed = |why: String| KeyError::Malformed {
        path: path.to_path_buf(),
        kind,
        why,
    };
    let line = text.strip_suffix('\n').unwrap_or(text);
    let Some(hex_part) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) else {
        return Err(malformed(format!("it does not start with `{tag} `")));
    };
    let bytes =
        hex::decode(hex_part).map_err(|e| malformed(format!("the key is not valid hex ({e})")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| malformed(format!("the key is {} bytes, expected 32", b.len())))
}

pub fn read_public_key(path: &Path) -> Result<VerifyingKey, KeyError> {
    let text = read_small(path)?;
    let bytes = parse_line(path, &text, PUBLIC_TAG, "public")?;
    let malformed = |why: &str| KeyError::Malformed {
        path: path.to_path_buf(),
        kind: "public",
        why: why.into(),
    };
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| malformed("the bytes are not a valid ed25519 point"))?;
    // A small-order key would accept forged signatures under non-strict verification.
    if key.is_weak() {
        return Err(malformed("it is a weak (small-order) ed25519 key"));
    }
    Ok(key)
}

pub fn read_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let text = read_small(path)?;
    let seed = parse_line(path, &text, SECRET_TAG, "secret")?;
    Ok(SigningKey::from_bytes(&seed))
}

pub fn public_key_line(key: &VerifyingKey) -> String {
    format!("{PUBLIC_TAG} {}\n", hex::encode(key.as_bytes()))
}

/// Where `keygen --out NAME` puts the public half.
pub fn public_path_for(secret: &Path) -> PathBuf {
    let mut name = secret.as_os_str().to_os_string();
    name.push(".pub");
    PathBuf::from(name)
}

/// Creates a new key pair: the secret at `secret` (mode 0600, never overwritten) and the public key
/// beside it at `<secret>.pub`.
pub fn generate(secret: &Path) -> Result<(VerifyingKey, PathBuf), KeyError> {
    let public = public_path_for(secret);
    for p in [secret, public.as_path()] {
        if p.exists() {
            return Err(KeyError::Exists {
                path: p.to_path_buf(),
            });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);

    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Write { path, source }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Created with 0600 from the start: no window in which the secret is readable by others.
        options.mode(0o600);
    }
    let mut file = options.open(secret).map_err(write_err(secret))?;
    file.write_all(format!("{SECRET_TAG} {}\n", hex::encode(key.to_bytes())).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err(secret))?;

    let verifying = key.verifying_key();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    let mut file = options.open(&public).map_err(write_err(&public))?;
    file.write_all(public_key_line(&verifying).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_err(&public))?;
    Ok((verifying, public))
}

/// The public keys a box accepts watchlists from, by key id.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl TrustedKeys {
    pub fn new() -> TrustedKeys {
        TrustedKeys::default()
    }

    pub fn with(mut self, key: VerifyingKey) -> TrustedKeys {
        self.add(key);
        self
    }

    pub fn add(&mut self, key: VerifyingKey) {
        let id = KeyId::of(&key);
        if !self.keys.iter().any(|(k, _)| *k == id) {
            self.keys.push((id, key));
        }
    }

    pub fn from_files(paths: &[PathBuf]) -> Result<TrustedKeys, KeyError> {
        let mut keys = TrustedKeys::new();
        for p in paths {
            keys.add(read_public_key(p)?);
        }
        Ok(keys)
    }

    pub fn get(&self, id: KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(k, _)| *k == id).map(|(_, v)| v)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|(k, _)| *k)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("lanewatch-keys-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn generated_keys_read_back_and_secret_is_private() {
        let dir = scratch("gen");
        let secret = dir.join("signer");
        let (public, public_path) = generate(&secret).unwrap();
        assert_eq!(read_public_key(&public_path).unwrap(), public);
        assert_eq!(read_signing_key(&secret).unwrap().verifying_key(), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        assert!(matches!(generate(&secret), Err(KeyError::Exists { .. })));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn rejects_malformed_public_keys() {
        let dir = scratch("bad");
        let good = public_key_line(&SigningKey::from_bytes(&[7; 32]).verifying_key());
        let cases = [
            String::new(),
            good.replace(PUBLIC_TAG, SECRET_TAG),
            good.replace('\n', "00\n"),
            good.replace('\n', " \n"),
            format!("{PUBLIC_TAG} {}\n", "zz".repeat(32)),
            // The identity point has small order: a weak key.
            format!("{PUBLIC_TAG} 01{}\n", "00".repeat(31)),
            "x".repeat(1000),
        ];
        for (i, text) in cases.iter().enumerate() {
            let p = dir.join(format!("k{i}.pub"));
            std::fs::write(&p, text).unwrap();
            assert!(
                matches!(read_public_key(&p), Err(KeyError::Malformed { .. })),
                "case {i}: {text:?}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn key_id_is_sha256_prefix_of_public_key() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let digest = Sha256::digest(key.as_bytes());
        assert_eq!(KeyId::of(&key).0, digest[..8]);
    }
}
