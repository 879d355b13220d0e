//! Start-up's code pages are given back once the server is up.
//!
//! Most of an idle Roost's resident memory was the executable's own code: its `.text` is
//! about 17 MiB, and although a request runs a small part of it, the kernel maps the pages
//! around each one that faults (fault-around, read-ahead), so start-up alone (configuration,
//! RocksDB's open, the migrations) left nearly all of it resident: 14 of an idle server's
//! 24 MiB. Once the listeners are bound, [`drop_startup_pages`] asks the kernel to page out
//! the read-only file mappings (`MADV_PAGEOUT`); what requests run faults back in, the rest
//! stays on disk. Measured in docs/performance.md ("RSS").
//!
//! Only pages no other process maps are paged out (the kernel skips shared ones), so a
//! shared library's pages that other programs use, or a second Roost started from the same
//! file, are left alone. Pages are clean file pages: nothing is written, and dropping them
//! costs one read from disk (or the page cache) the next time that code runs.

/// Page out the executable's and shared libraries' read-only mappings. Best effort: on
/// kernels without `MADV_PAGEOUT` (before 5.4) or other systems, nothing happens.
#[cfg(target_os = "linux")]
pub fn drop_startup_pages() {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return;
    };
    let mut advised = 0usize;
    for (start, end) in read_only_file_mappings(&maps) {
        // SAFETY: the range is one of this process's own mappings, as /proc listed it; the
        // advice changes residency, never contents (the pages are clean, read-only file
        // pages that fault back in unchanged).
        let ok = unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_PAGEOUT) == 0
        };
        if ok {
            advised += end - start;
        }
    }
    tracing::debug!(mib = advised >> 20, "start-up code pages given back");
}

#[cfg(not(target_os = "linux"))]
pub fn drop_startup_pages() {}

/// The address ranges of `/proc/self/maps` lines that map a file and are not writable: code,
/// read-only data. Writable mappings (`.data`, copy-on-write pages) and anonymous memory
/// are not advised: paging those out would mean swapping, not dropping.
fn read_only_file_mappings(maps: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    maps.lines().filter_map(|line| {
        // address perms offset dev inode pathname
        let mut fields = line.split_whitespace();
        let range = fields.next()?;
        let perms = fields.next()?;
        let path = fields.nth(3)?;
        if !path.starts_with('/') || perms.contains('w') {
            return None;
        }
        let (start, end) = range.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        (end > start).then_some((start, end))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_file_mappings_are_chosen() {
        let maps = "\
55d0a0000000-55d0a0400000 r--p 00000000 fd:01 123 /usr/bin/roost
55d0a0400000-55d0a1400000 r-xp 00400000 fd:01 123 /usr/bin/roost
55d0a1400000-55d0a1410000 rw-p 01400000 fd:01 123 /usr/bin/roost
55d0a2000000-55d0a2100000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
7f0000200000-7f0000300000 r-xp 00000000 fd:01 456 /usr/lib/libc.so.6
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]
garbage line
";
        let chosen: Vec<_> = read_only_file_mappings(maps).collect();
        assert_eq!(
            chosen,
            vec![
                (0x55d0a0000000, 0x55d0a0400000),
                (0x55d0a0400000, 0x55d0a1400000),
                (0x7f0000200000, 0x7f0000300000),
            ]
        );
    }
}
