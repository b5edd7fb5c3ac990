//! `trainer quantize`: post-training int8 quantisation of an embedder (calibration table,
//! QLinearConv and QDQ models, acceptance gate). The work is in [`crate::quantize`].

pub use crate::quantize::Args;
use crate::quantize::run;

pub fn execute(args: Args) -> anyhow::Result<()> {
    let s = run(&args)?;
    println!("trainer quantize: {}", args.model.display());
    println!(
        "  batch norms folded  {} (the bundled model has its affines folded at import)",
        s.folded_batch_norms
    );
    println!("  method              {}", s.method);
    println!("  table sha256        {}", s.table_sha256);
    println!(
        "  int8 (QLinearConv)  {} sha256 {}",
        args.out.display(),
        s.int8_sha256
    );
    if let (Some(p), Some(h)) = (&args.qdq_out, &s.qdq_sha256) {
        println!("  QDQ                 {} sha256 {h}", p.display());
    }
    for (what, d) in [("int8", &s.int8_drift), ("QDQ", &s.qdq_drift)] {
        if let Some(d) = d {
            println!(
                "  {what:<4} vs fp32         mean cosine {:.5}, min {:.5} over {} calibration faces",
                d.mean_cosine, d.min_cosine, d.faces
            );
        }
    }
    if s.int8_drift.is_none() {
        println!("  cosine gate         skipped (no --calib-images)");
    }
    if let Some((f, i, q)) = s.ms_per_face {
        let q = q.map_or(String::new(), |q| format!(", QDQ {q:.1} ms"));
        println!(
            "  tract per face      fp32 {f:.1} ms, int8 {i:.1} ms{q} (this machine, this run)"
        );
    }
    if let Some((f, i)) = s.lfw {
        println!(
            "  LFW accuracy        fp32 {:.2}%, int8 {:.2}%",
            100.0 * f,
            100.0 * i
        );
    }
    Ok(())
}
