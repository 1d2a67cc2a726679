//! CPU time of a process, read from /proc/PID/stat (Linux).

use std::time::Duration;

/// Clock ticks per second of /proc/PID/stat's utime and stime (USER_HZ, 100 on Linux).
const USER_HZ: u64 = 100;

/// User plus system CPU time consumed so far by process `pid`.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name is in parentheses and may contain spaces: split after the last ')'
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields after the name start at field 3 (state); utime is field 14, stime field 15
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 1000 / USER_HZ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_cpu_is_readable_and_grows() {
        let a = super::process_cpu(std::process::id()).expect("readable");
        let mut x = 0u64;
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_millis(100) {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        }
        std::hint::black_box(x);
        let b = super::process_cpu(std::process::id()).expect("readable");
        assert!(b > a, "{a:?} -> {b:?}");
    }
}
