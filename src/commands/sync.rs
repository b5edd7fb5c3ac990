//! `lanewatch sync --url URL --pubkey PUB --dir STATE [--every 60s] [--model M | --config FILE |
//! --any-embedder]`: keep a box's watchlist in step with the issuer's web server. Lists made by
//! another embedder than the box's are refused (default: the bundled model); after an operator's
//! rollback, the list rolled away from (and anything at or below its sequence) is not re-installed.

use std::path::PathBuf;
use std::time::Duration;

use super::watchlist::BoxEmbedder;
use crate::http::Transport;
use crate::watchlist::sync::{SyncConfig, SyncOutcome, Syncer};
use crate::watchlist::verify::Verifier;
use crate::watchlist::{Store, TrustedKeys};

#[derive(clap::Args)]
pub struct Args {
    /// http:// or https:// URL of the signed watchlist file.
    #[arg(long)]
    pub url: String,
    /// PEM file of the private CA that signed the server's certificate (https:// only); trusted
    /// instead of the bundled public roots.
    #[arg(long, value_name = "FILE.pem")]
    pub ca_cert: Option<PathBuf>,
    #[arg(long = "pubkey", required = true)]
    pub pubkeys: Vec<PathBuf>,
    /// The box's state directory.
    #[arg(long)]
    pub dir: PathBuf,
    /// Keep running, syncing at this interval (e.g. 60s, 5m, 1h). Without it, sync once and exit.
    #[arg(long, value_parser = parse_duration)]
    pub every: Option<Duration>,
    /// The box's embedder: lists made by another model are refused.
    #[command(flatten)]
    pub embedder: BoxEmbedder,
}

/// `500ms`, `60s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (digits, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 60s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use ms, s, m or h)"
            ));
        }
    };
    if d.is_zero() {
        return Err("the interval must be greater than zero".into());
    }
    Ok(d)
}

fn report(outcome: &SyncOutcome) {
    match outcome {
        SyncOutcome::NotModified => println!("lanewatch sync: not modified"),
        SyncOutcome::Unchanged { sequence } => {
            println!("lanewatch sync: sequence {sequence} already active")
        }
        SyncOutcome::Installed { from, to } => println!(
            "lanewatch sync: installed sequence {to} (was {})",
            from.map_or("none".to_string(), |s| s.to_string())
        ),
        SyncOutcome::Held { sequence, hold } => println!(
            "lanewatch sync: sequence {sequence} not installed: an operator rolled back from sequence {hold}; waiting for a list above {hold}"
        ),
    }
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let keys = TrustedKeys::from_files(&args.pubkeys)?;
    let embedder = args.embedder.resolve("sync")?;
    let store = Store::open(&args.dir)?.respecting_hold();
    let verifier = Verifier::new(keys).with_embedder(embedder);
    let url = args.url.clone();
    let config = SyncConfig {
        ca_cert: args.ca_cert,
        ..SyncConfig::new(args.url)
    };
    let syncer = Syncer::new(config, store, verifier)?;
    if syncer.transport() == Transport::Plain {
        eprintln!(
            "lanewatch sync: {} is plain http://: the transport is unauthenticated (the watchlist's signature is still checked)",
            url
        );
    }
    let mut sleep = std::thread::sleep;
    let Some(every) = args.every else {
        report(&syncer.sync(&mut sleep)?);
        return Ok(());
    };
    loop {
        // A failed cycle is reported and the box keeps its active list until the next one.
        match syncer.sync(&mut sleep) {
            Ok(outcome) => report(&outcome),
            Err(e) => eprintln!("lanewatch sync: error: {e:#}"),
        }
        std::thread::sleep(every);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "s", "0s", "5d", "-1s", "1.5s", "99999999999999999999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
