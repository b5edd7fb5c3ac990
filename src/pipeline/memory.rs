//! Resident memory of this process, for the status line, `lanewatch bench` and the memory test.

/// Current and peak resident set size in bytes (`VmRSS`, `VmHWM` from `/proc/self/status`).
/// `None` where procfs is not available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Resident {
    pub current_bytes: u64,
    pub peak_bytes: u64,
}

pub fn resident() -> Option<Resident> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kb| kb.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    Some(Resident {
        current_bytes: field("VmRSS:")?,
        peak_bytes: field("VmHWM:")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn reads_a_plausible_resident_size() {
        let r = super::resident().expect("procfs");
        assert!(
            r.current_bytes > 1 << 20 && r.peak_bytes >= r.current_bytes,
            "{r:?}"
        );
    }
}
