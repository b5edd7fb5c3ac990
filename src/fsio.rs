//! File writes that a power cut cannot leave half done.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Replaces `path` with `bytes` so that a reader sees the old or the new content, never a mix:
/// write a temporary file beside it, fsync, rename over it, fsync the folder.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

/// A private temporary folder, removed with everything in it when dropped.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `<system temp>/<prefix>-<16 random hex digits>`.
    pub fn new(prefix: &str) -> anyhow::Result<TempDir> {
        use anyhow::Context;
        let mut rnd = [0u8; 8];
        getrandom::getrandom(&mut rnd).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let path = std::env::temp_dir().join(format!("{prefix}-{}", hex::encode(rnd)));
        std::fs::create_dir(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Opens `path` for reading only if it is a regular file (after following symlinks), so that a
/// FIFO, a device (`/dev/zero`) or a directory given where a file belongs is refused at once
/// instead of blocking or reading forever. The open itself does not block on a FIFO (Linux:
/// `O_NONBLOCK`, which has no effect on regular files); the type is checked on the opened file.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK is 0o4000 on every Linux architecture lanewatch targets (x86_64, aarch64, armv7).
        const O_NONBLOCK: i32 = 0o4000;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path)?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("it is {}, not a regular file", describe_type(&kind)),
        ));
    }
    Ok(file)
}

fn describe_type(kind: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if kind.is_char_device() {
            return "a character device";
        }
        if kind.is_block_device() {
            return "a block device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Reads a regular file of at most `max` bytes whole ([`open_regular`], then a read capped at
/// `max + 1` bytes, so a file that grows while being read is still bounded). The error says what
/// is wrong; callers add the path.
pub fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let file = open_regular(path)?;
    let len = file.metadata()?.len();
    if len > max {
        return Err(too_large(len, max));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64, max));
    }
    Ok(bytes)
}

fn too_large(len: u64, max: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("it is {len} bytes or more, over the {max}-byte limit for this file"),
    )
}

/// Like [`read_regular`], as UTF-8 text.
pub fn read_regular_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_regular(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "it is not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_directories_and_fifos_and_caps_size() {
        let dir = TempDir::new("fsio").unwrap();
        let err = read_regular(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
        let err = read_regular(dir.path(), 1024).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        #[cfg(target_os = "linux")]
        {
            let fifo = dir.path().join("fifo");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: mkfifo with a valid NUL-terminated path.
            let rc = unsafe { mkfifo(c.as_ptr(), 0o600) };
            assert_eq!(rc, 0);
            // Would block forever without O_NONBLOCK (no writer).
            let err = read_regular(&fifo, 1024).unwrap_err();
            assert!(err.to_string().contains("FIFO"), "{err}");
        }
        let file = dir.path().join("f");
        std::fs::write(&file, [1u8; 100]).unwrap();
        assert_eq!(read_regular(&file, 100).unwrap().len(), 100);
        let err = read_regular(&file, 99).unwrap_err();
        assert!(err.to_string().contains("99-byte limit"), "{err}");
    }

    #[cfg(target_os = "linux")]
    unsafe extern "C" {
        fn mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }
}
