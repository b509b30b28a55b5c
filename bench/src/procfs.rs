//! Figures of a running process from Linux's `/proc`: resident memory and CPU time.

use anyhow::{bail, Context, Result};

/// Resident memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the most it was ever resident (high-water mark).
    pub hwm_kib: u64,
}

impl Memory {
    /// Reads the memory of process `pid`.
    pub fn of(pid: u32) -> Result<Memory> {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Memory::parse(&status).with_context(|| format!("no VmRSS/VmHWM in {path}"))
    }

    fn parse(status: &str) -> Option<Memory> {
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Some(Memory {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
        })
    }

    /// `RSS 123.4 MiB (peak 130.0 MiB)`.
    pub fn line(&self) -> String {
        format!(
            "RSS {:.1} MiB (peak {:.1} MiB)",
            mib(self.rss_kib),
            mib(self.hwm_kib)
        )
    }
}

/// KiB as MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// CPU time (user + system) process `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = cpu_ticks(&stat).with_context(|| format!("cannot parse {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_second()? as f64)
}

/// CPU time this process has used so far, in seconds.
pub fn own_cpu_seconds() -> Result<f64> {
    cpu_seconds(std::process::id())
}

/// `utime + stime` (fields 14 and 15) of a `/proc/<pid>/stat` line. The command name (field
/// 2) is in parentheses and may hold spaces, so fields are counted after its closing one.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// `sysconf(_SC_CLK_TCK)`, from `getconf` (100 on every Linux we run on).
fn clock_ticks_per_second() -> Result<u64> {
    static TICKS: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let ticks = *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8(out.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
    });
    match ticks {
        Some(ticks) if ticks > 0 => Ok(ticks),
        _ => bail!("getconf CLK_TCK failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_stat() {
        let status = "Name:\tcommand-api\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\n";
        assert_eq!(
            Memory::parse(status),
            Some(Memory {
                rss_kib: 102_400,
                hwm_kib: 204_800
            })
        );
        assert_eq!(Memory::parse("Name:\tx\n"), None);
        let stat = "42 (tokio runtime) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0";
        assert_eq!(cpu_ticks(stat), Some(300));
    }

    #[test]
    fn reads_this_process() {
        let memory = Memory::of(std::process::id()).unwrap();
        assert!(memory.rss_kib > 0 && memory.hwm_kib >= memory.rss_kib);
        assert!(own_cpu_seconds().unwrap() >= 0.0);
    }
}
