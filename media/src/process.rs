//! What a process has used, from Linux's `/proc`: CPU time and memory. The node exports its own in
//! `/metrics`; the benchmark reads the SFU process's from outside, so both count the same way.

use std::{fs, io};

/// Clock ticks per second in `/proc/<pid>/stat` (USER_HZ, fixed at 100 in Linux's ABI on every
/// architecture we run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// A process's use so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// CPU time in user and kernel mode, all threads, in seconds.
    pub cpu_seconds: f64,
    /// Memory resident now, in bytes.
    pub rss_bytes: u64,
    /// The most ever resident, in bytes.
    pub peak_rss_bytes: u64,
}

/// Reads `pid`'s use (`None`: this process).
pub fn usage(pid: Option<u32>) -> io::Result<Usage> {
    let dir = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
    let stat = fs::read_to_string(format!("{dir}/stat"))?;
    let status = fs::read_to_string(format!("{dir}/status"))?;
    parse(&stat, &status).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("unreadable {dir}/stat")))
}

fn parse(stat: &str, status: &str) -> Option<Usage> {
    // The command name may hold spaces and parentheses: fields are counted after its closing one.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let kilobytes = |key: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        cpu_seconds: ticks as f64 / TICKS_PER_SECOND,
        rss_bytes: kilobytes("VmRSS:") * 1024,
        peak_rss_bytes: kilobytes("VmHWM:") * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_parse_even_with_odd_command_names() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 100 0 0";
        let status = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t  10240 kB\n";
        let usage = parse(stat, status).unwrap();
        assert!((usage.cpu_seconds - 3.8).abs() < 1e-9, "{usage:?}");
        assert_eq!((usage.rss_bytes, usage.peak_rss_bytes), (10240 * 1024, 20480 * 1024));
        assert_eq!(parse("garbage", ""), None);
        assert_eq!(parse("1 (x) S 1 2", ""), None);
    }

    #[test]
    fn this_process_has_used_something() {
        let usage = usage(None).unwrap();
        assert!(usage.rss_bytes > 0 && usage.peak_rss_bytes >= usage.rss_bytes, "{usage:?}");
    }
}
