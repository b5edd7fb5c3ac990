//! `lanewatch watchlist …`: what a technician does with watchlist files: inspect, verify, diff,
//! install on a box, and roll back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::watchlist::format::{Body, Entry, Header, decode_unverified};
use crate::watchlist::store::{Installed, Store, read_capped};
use crate::watchlist::verify::{EmbedderId, Verifier, unix_now};
use crate::watchlist::{TrustedKeys, WatchlistError};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Subcommand)]
pub enum Command {
    /// Show a watchlist's header and contents (signature checked only with --pubkey).
    Inspect {
        file: PathBuf,
        /// Check the signature against these public keys first.
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
        /// List every entry, not just the counts.
        #[arg(long)]
        entries: bool,
    },
    /// Run every check a box runs (except the installed sequence); exit non-zero if any fails.
    Verify {
        file: PathBuf,
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
        /// The box's embedder ONNX file: also check the watchlist was made by it.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Show what changed between two watchlists (signatures not checked).
    Diff { old: PathBuf, new: PathBuf },
    /// Verify a watchlist and make it the active one in a box's state directory.
    Install {
        file: PathBuf,
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Make the previous watchlist active again (the current one becomes the previous).
    Rollback {
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        model: Option<PathBuf>,
        /// Required when the previous list has a lower sequence (always, after a normal install).
        #[arg(long)]
        allow_lower_sequence: bool,
    },
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Inspect {
            file,
            pubkeys,
            entries,
        } => inspect(&file, &pubkeys, entries),
        Command::Verify {
            file,
            pubkeys,
            model,
        } => {
            let verifier = verifier(&pubkeys, model.as_deref())?;
            let bytes = read(&file)?;
            let v = verifier.verify(&bytes, &file.display().to_string())?;
            println!(
                "{}: OK (sequence {}, {} entries, key {}, expires {}{})",
                file.display(),
                v.body.sequence,
                v.body.entries.len(),
                v.header.key_id,
                utc(v.body.expires_at),
                if model.is_some() {
                    ", made by the given model"
                } else {
                    "; model binding not checked (no --model)"
                }
            );
            Ok(())
        }
        Command::Diff { old, new } => diff(&old, &new),
        Command::Install {
            file,
            pubkeys,
            dir,
            model,
        } => {
            let verifier = verifier(&pubkeys, model.as_deref())?;
            let bytes = read(&file)?;
            let store = Store::open(&dir)?;
            match store.install(&bytes, &file.display().to_string(), &verifier, unix_now())? {
                Installed::Unchanged { sequence } => {
                    println!("already active: sequence {sequence} in {}", dir.display())
                }
                Installed::Replaced { from, to } => println!(
                    "installed sequence {to} in {} (was {})",
                    dir.display(),
                    from.map_or("none".to_string(), |s| s.to_string())
                ),
            }
            Ok(())
        }
        Command::Rollback {
            pubkeys,
            dir,
            model,
            allow_lower_sequence,
        } => {
            let verifier = verifier(&pubkeys, model.as_deref())?;
            let store = Store::open(&dir)?;
            let (from, to) = store.rollback(&verifier, unix_now(), allow_lower_sequence)?;
            println!(
                "rolled back {} from sequence {from} to {to}; restart `lanewatch run` to use it",
                dir.display()
            );
            Ok(())
        }
    }
}

fn verifier(pubkeys: &[PathBuf], model: Option<&Path>) -> anyhow::Result<Verifier> {
    let keys = TrustedKeys::from_files(pubkeys)?;
    let embedder = model
        .map(EmbedderId::from_model_file)
        .transpose()
        .context("reading the box's embedder (--model)")?;
    Ok(Verifier::new(keys).with_embedder(embedder))
}

fn read(path: &Path) -> Result<Vec<u8>, WatchlistError> {
    read_capped(path)?.ok_or_else(|| {
        WatchlistError::new(
            path.display().to_string(),
            crate::watchlist::Rejection::Io(std::io::ErrorKind::NotFound.into()),
        )
    })
}

fn decode(path: &Path, bytes: &[u8]) -> Result<(Header, Body), WatchlistError> {
    decode_unverified(bytes).map_err(|kind| WatchlistError::new(path.display().to_string(), kind))
}

fn inspect(file: &Path, pubkeys: &[PathBuf], entries: bool) -> anyhow::Result<()> {
    let bytes = read(file)?;
    let (header, body, signature) = if pubkeys.is_empty() {
        let (h, b) = decode(file, &bytes)?;
        (h, b, "NOT CHECKED (pass --pubkey to check it)".to_string())
    } else {
        let keys = TrustedKeys::from_files(pubkeys)?;
        let (h, b) = Verifier::new(keys)
            .authenticate(&bytes)
            .map_err(|kind| WatchlistError::new(file.display().to_string(), kind))?;
        (h, b, "valid".to_string())
    };
    println!("{}", file.display());
    println!(
        "  format:      version {}, {} bytes, sha256 {}",
        header.version,
        bytes.len(),
        hex::encode(Sha256::digest(&bytes))
    );
    println!("  signature:   key {}: {signature}", header.key_id);
    println!("  sequence:    {}", body.sequence);
    println!("  created:     {}", utc(body.created_at));
    println!("  expires:     {}", utc(body.expires_at));
    println!(
        "  embedder:    {} ({} dims, {})",
        body.embedder,
        body.dim,
        body.metric.as_str()
    );
    println!(
        "  thresholds:  distance <= {}, margin >= {}",
        body.thresholds.max_distance, body.thresholds.min_margin
    );
    println!(
        "  views:       {} ({})",
        body.views.as_str(),
        body.views.meaning()
    );
    let embeddings: usize = body.entries.iter().map(|e| e.embeddings.len()).sum();
    println!(
        "  entries:     {} ({embeddings} embeddings)",
        body.entries.len()
    );
    let mut lists: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for e in &body.entries {
        *lists.entry((&e.list, e.severity.as_str())).or_default() += 1;
    }
    for ((list, severity), n) in lists {
        println!("    list {list:?}, {severity}: {n}");
    }
    if entries {
        for e in &body.entries {
            println!("  - {}", describe(e));
        }
    }
    Ok(())
}

fn describe(e: &Entry) -> String {
    format!(
        "{} {:?} list {:?} {} ({} embeddings, {} photos)",
        e.id,
        e.display_name,
        e.list,
        e.severity,
        e.embeddings.len(),
        e.photo_sha256.len()
    )
}

fn diff(old: &Path, new: &Path) -> anyhow::Result<()> {
    let (_, a) = decode(old, &read(old)?)?;
    let (_, b) = decode(new, &read(new)?)?;
    println!("signatures not checked; use `watchlist verify` for that");
    let field = |name: &str, x: String, y: String| {
        if x != y {
            println!("  {name}: {x} -> {y}");
        }
    };
    field("sequence", a.sequence.to_string(), b.sequence.to_string());
    field("created", utc(a.created_at), utc(b.created_at));
    field("expires", utc(a.expires_at), utc(b.expires_at));
    field("embedder", a.embedder.to_string(), b.embedder.to_string());
    field("dim", a.dim.to_string(), b.dim.to_string());
    field("metric", a.metric.as_str().into(), b.metric.as_str().into());
    field(
        "thresholds",
        format!("{:?}", a.thresholds),
        format!("{:?}", b.thresholds),
    );
    field("views", a.views.as_str().into(), b.views.as_str().into());
    if b.sequence <= a.sequence {
        println!(
            "  warning: NEW's sequence is not greater than OLD's; boxes will refuse it as a rollback"
        );
    }
    let old_by_id: BTreeMap<&str, &Entry> = a.entries.iter().map(|e| (e.id.as_str(), e)).collect();
    let new_by_id: BTreeMap<&str, &Entry> = b.entries.iter().map(|e| (e.id.as_str(), e)).collect();
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for (id, e) in &new_by_id {
        match old_by_id.get(id) {
            None => {
                added += 1;
                println!("+ {}", describe(e));
            }
            Some(o) if o != e => {
                changed += 1;
                let mut what = Vec::new();
                if o.display_name != e.display_name {
                    what.push(format!("name {:?} -> {:?}", o.display_name, e.display_name));
                }
                if o.list != e.list {
                    what.push(format!("list {:?} -> {:?}", o.list, e.list));
                }
                if o.severity != e.severity {
                    what.push(format!("severity {} -> {}", o.severity, e.severity));
                }
                if o.embeddings != e.embeddings {
                    what.push(format!(
                        "embeddings changed ({} -> {})",
                        o.embeddings.len(),
                        e.embeddings.len()
                    ));
                }
                if o.photo_sha256 != e.photo_sha256 {
                    what.push("photo hashes changed".into());
                }
                println!("~ {id}: {}", what.join(", "));
            }
            Some(_) => {}
        }
    }
    for (id, e) in &old_by_id {
        if !new_by_id.contains_key(id) {
            removed += 1;
            println!("- {}", describe(e));
        }
    }
    println!("{added} added, {removed} removed, {changed} changed");
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for unix seconds (civil-from-days; no date crate on the box).
pub fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_798_761_599), "2026-12-31T23:59:59Z");
        assert!(super::utc(u64::MAX).len() > 10);
    }
}
