//! `trainer export`: a checkpoint to an ONNX embedder with the model contract, checked against
//! burn in tract. The work is in [`crate::export`].

pub use crate::export::ExportArgs as Args;
use crate::export::export;

pub fn execute(args: Args) -> anyhow::Result<()> {
    let e = export(&args)?;
    println!(
        "wrote {} ({} bytes): {} {}x{} → {}-d, threshold {} (FAR {}), burn vs tract max |diff| {:.2e}",
        e.path.display(),
        e.bytes,
        e.contract.name,
        e.contract.input.width.unwrap_or(0),
        e.contract.input.height.unwrap_or(0),
        e.contract.embedding.as_ref().map_or(0, |s| s.dim),
        e.contract.embedding.as_ref().map_or(0.0, |s| s.threshold),
        e.contract.embedding.as_ref().map_or(0.0, |s| s.far),
        e.max_abs_diff
    );
    Ok(())
}
