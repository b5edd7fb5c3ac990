//! `lanewatch keygen --out NAME`: a new ed25519 signing key for issuing watchlists.

use std::path::PathBuf;

use crate::watchlist::keys::{self, KeyId};

#[derive(clap::Args)]
pub struct Args {
    /// Secret key file to create (mode 0600); the public key is written to NAME.pub.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn execute(args: Args) -> anyhow::Result<()> {
    let (public, public_path) = keys::generate(&args.out)?;
    println!(
        "secret key: {} (mode 0600; keep it off the boxes)",
        args.out.display()
    );
    println!(
        "public key: {} (give this to the boxes with --pubkey)",
        public_path.display()
    );
    println!("key id:     {}", KeyId::of(&public));
    Ok(())
}
