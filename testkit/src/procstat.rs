//! This process's CPU time and peak memory, read from /proc (Linux).

/// User plus system CPU seconds used by this process so far.
pub fn cpu_seconds() -> Option<f64> {
    cpu_seconds_in("/proc/self/stat")
}

/// The same for another process.
pub fn cpu_seconds_of(pid: u32) -> Option<f64> {
    cpu_seconds_in(&format!("/proc/{pid}/stat"))
}

fn cpu_seconds_in(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture we run on.
    Some((utime + stime) / 100.0)
}

/// Peak resident set size in bytes (VmHWM).
pub fn peak_rss_bytes() -> Option<u64> {
    status_bytes("/proc/self/status", "VmHWM:")
}

/// The same for another process.
pub fn peak_rss_bytes_of(pid: u32) -> Option<u64> {
    status_bytes(&format!("/proc/{pid}/status"), "VmHWM:")
}

/// Resident set size now, in bytes (VmRSS).
pub fn rss_bytes() -> Option<u64> {
    status_bytes("/proc/self/status", "VmRSS:")
}

fn status_bytes(path: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The CPU, as benchmark tables print it: model, cores, and the SIMD flags the decoders use
/// (the same build runs at very different speeds with and without AVX-512).
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let simd: Vec<&str> = flags
        .split_whitespace()
        .filter(|f| {
            ["avx", "fma", "f16c", "avx512"]
                .iter()
                .any(|p| f.starts_with(p))
        })
        .collect();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "cpu: {} | {cores} cores | {}",
        field("model name"),
        simd.join(" ")
    )
}
