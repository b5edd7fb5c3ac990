//! `lanewatch watchlist …`: what a technician does with watchlist files: inspect, verify, diff,
//! install on a box, and roll back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::watchlist::format::{Body, Entry, Header, decode_unverified};
use crate::watchlist::store::{Installed, Store, read_capped};
use crate::watchlist::text::{printable, quoted};
use crate::watchlist::verify::{EmbedderId, Verifier, unix_now};
use crate::watchlist::{TrustedKeys, WatchlistError};

/// Which embedder the box runs, for commands that change what a box matches against. A box
/// always knows its embedder, so the check is on by default.
#[derive(clap::Args, Clone, Debug)]
pub struct BoxEmbedder {
    /// The box's embedder ONNX file (default: the `lanewatch run` configuration's
    /// models.embedder with --config, else the bundled `models/dlib_resnet_v1.onnx`).
    #[arg(long, conflicts_with = "any_embedder")]
    pub model: Option<PathBuf>,
    /// The box's `lanewatch run` configuration (TOML): its [models] embedder is checked.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["model", "any_embedder"])]
    pub config: Option<PathBuf>,
    /// Accept a list made by any embedder. A list made by another embedder makes the box match
    /// nobody; only for a technician's bench without the box's model.
    #[arg(long)]
    pub any_embedder: bool,
}

impl BoxEmbedder {
    /// The embedder to check lists against; `None` (with a warning on stderr) only with
    /// `--any-embedder`.
    pub fn resolve(&self, command: &str) -> anyhow::Result<Option<EmbedderId>> {
        if self.any_embedder {
            eprintln!(
                "lanewatch {command}: WARNING: --any-embedder: the list's embedder is NOT checked; a list made by another model makes this box match nobody"
            );
            return Ok(None);
        }
        let (path, whence) = match (&self.model, &self.config) {
            (Some(m), _) => (m.clone(), "--model".to_string()),
            (None, Some(c)) => (
                crate::config::Config::read(c)?.models.embedder,
                format!("models.embedder of {}", c.display()),
            ),
            (None, None) => (
                crate::config::ModelsConfig::default().embedder,
                "the bundled models folder, the default".to_string(),
            ),
        };
        EmbedderId::from_model_file(&path)
            .map(Some)
            .with_context(|| {
                format!(
                    "reading the box's embedder {} ({whence}); give the box's model with --model FILE or --config FILE (or, on a bench only, --any-embedder)",
                    path.display()
                )
            })
    }
}

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
    /// Show what changed between two watchlists (signatures checked only with --pubkey).
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Check both signatures against these public keys first.
        #[arg(long = "pubkey")]
        pubkeys: Vec<PathBuf>,
    },
    /// Verify a watchlist and make it the active one in a box's state directory.
    Install {
        file: PathBuf,
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        embedder: BoxEmbedder,
    },
    /// Make the previous watchlist active again (the current one becomes the previous).
    Rollback {
        #[arg(long = "pubkey", required = true)]
        pubkeys: Vec<PathBuf>,
        #[arg(long)]
        dir: PathBuf,
        #[command(flatten)]
        embedder: BoxEmbedder,
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
        Command::Diff { old, new, pubkeys } => diff(&old, &new, &pubkeys),
        Command::Install {
            file,
            pubkeys,
            dir,
            embedder,
        } => {
            let verifier = Verifier::new(TrustedKeys::from_files(&pubkeys)?)
                .with_embedder(embedder.resolve("watchlist install")?);
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
                // Only sync respects a rollback's hold; an operator's install is never held.
                Installed::Held { sequence, hold } => println!(
                    "not installed: sequence {sequence} is held back by a rollback (up to {hold})"
                ),
            }
            Ok(())
        }
        Command::Rollback {
            pubkeys,
            dir,
            embedder,
            allow_lower_sequence,
        } => {
            let verifier = Verifier::new(TrustedKeys::from_files(&pubkeys)?)
                .with_embedder(embedder.resolve("watchlist rollback")?);
            let store = Store::open(&dir)?;
            let (from, to) = store.rollback(&verifier, unix_now(), allow_lower_sequence)?;
            println!(
                "rolled back {} from sequence {from} to {to}; restart `lanewatch run` to use it",
                dir.display()
            );
            if to < from {
                println!(
                    "`lanewatch sync` will not install sequence {from} or lower again; a list above {from}, or a `watchlist install`, lifts that hold"
                );
            }
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
        println!("    list {}, {severity}: {n}", quoted(list));
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
        "{} {} list {} {} ({} embeddings, {} photos)",
        printable(&e.id),
        quoted(&e.display_name),
        quoted(&e.list),
        e.severity,
        e.embeddings.len(),
        e.photo_sha256.len()
    )
}

fn diff(old: &Path, new: &Path, pubkeys: &[PathBuf]) -> anyhow::Result<()> {
    let (a, b) = if pubkeys.is_empty() {
        println!(
            "UNVERIFIED: neither signature was checked (OLD {} and NEW {} may be forged); pass --pubkey to check them",
            old.display(),
            new.display()
        );
        (decode(old, &read(old)?)?.1, decode(new, &read(new)?)?.1)
    } else {
        let verifier = Verifier::new(TrustedKeys::from_files(pubkeys)?);
        let check = |path: &Path| -> anyhow::Result<Body> {
            let (_, body) = verifier
                .authenticate(&read(path)?)
                .map_err(|kind| WatchlistError::new(path.display().to_string(), kind))?;
            Ok(body)
        };
        let (a, b) = (check(old)?, check(new)?);
        println!("signatures: both valid");
        (a, b)
    };
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
                    what.push(format!(
                        "name {} -> {}",
                        quoted(&o.display_name),
                        quoted(&e.display_name)
                    ));
                }
                if o.list != e.list {
                    what.push(format!("list {} -> {}", quoted(&o.list), quoted(&e.list)));
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
                println!("~ {}: {}", printable(id), what.join(", "));
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

/// A watchlist sequence number from the command line: at most
/// [`crate::watchlist::format::MAX_SEQUENCE`], so that no list can refuse every later one.
pub fn parse_sequence(text: &str) -> Result<u64, String> {
    let max = crate::watchlist::format::MAX_SEQUENCE;
    let n: u64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a whole number from 0 to {max}"))?;
    if n > max {
        return Err(format!(
            "{n} is over the largest sequence {max} (2^53): a list numbered that high would make every later list look like a rollback"
        ));
    }
    Ok(n)
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
    fn sequences_are_capped() {
        assert_eq!(super::parse_sequence("7"), Ok(7));
        assert_eq!(super::parse_sequence("9007199254740992"), Ok(1 << 53));
        for bad in ["9007199254740993", "18446744073709551615", "-1", "x", ""] {
            assert!(super::parse_sequence(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn formats_utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_798_761_599), "2026-12-31T23:59:59Z");
        assert!(super::utc(u64::MAX).len() > 10);
    }
}
