//! What the benchmarks measure processes by, from /proc: CPU time (schedstat's
//! nanoseconds; /proc/PID/stat's 10 ms ticks are too coarse for one stream) and peak
//! memory.

/// `root` and its direct children (nginx's worker, say).
pub fn family(root: u32) -> Vec<u32> {
    let mut pids = vec![root];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(stat) = stat(pid)
            && stat.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(root)
        {
            pids.push(pid);
        }
    }
    pids
}

/// Fields of /proc/PID/stat after the command name: [0]=state, [1]=ppid.
fn stat(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

/// CPU time of all the threads of `pids`, in seconds.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let mut ns = 0u64;
    for pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            ns += stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    ns as f64 / 1e9
}

/// Peak resident memory (VmHWM) of `pids`, summed.
pub fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
