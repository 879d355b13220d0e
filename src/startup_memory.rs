//! Memory that only start-up used is given back once the server is up.
//!
//! Two kinds, both measured in docs/performance.md ("RSS"):
//!
//! * **Code pages.** Most of an idle Roost's resident memory was the executable's own code:
//!   its `.text` is about 17 MiB, and although a request runs a small part of it, the kernel
//!   maps the pages around each one that faults (fault-around, read-ahead), so start-up alone
//!   (configuration, RocksDB's open, the services' set-up) left nearly all of it resident: 14
//!   of an idle server's 24 MiB. `drop_code_pages` asks the kernel to page out the
//!   read-only file mappings (`MADV_PAGEOUT`); what requests run faults back in, the rest
//!   stays on disk.
//! * **The C heap's free pages.** Rust allocates from mimalloc (`main.rs`), but RocksDB's C++
//!   uses the C library's malloc, and opening the database allocates and frees about 1 MiB
//!   (options files parsed and written, the manifest) that glibc keeps inside its heap, below
//!   what stays allocated, where its own trimming (which only shrinks the heap's top) never
//!   reaches. `trim_c_heap` hands those free pages back (`malloc_trim`).
//!
//! Only pages no other process maps are paged out (the kernel skips shared ones), so a
//! shared library's pages that other programs use, or a second Roost started from the same
//! file, are left alone. Only mappings whose pages are all the file's own are advised:
//! dropping them writes nothing and costs one read from disk (or the page cache) the next
//! time that code runs. A read-only mapping the loader wrote to first (the relocated
//! pointers of `.data.rel.ro`) holds private copies, which would go to swap instead.

/// Give back what start-up alone used; called once the listeners are bound. Best effort.
pub fn give_back() {
    drop_code_pages();
    trim_c_heap();
}

/// Return the C heap's free pages to the system. glibc only; elsewhere nothing happens.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_c_heap() {
    // SAFETY: malloc_trim only releases memory glibc's allocator holds free; it is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_c_heap() {}

/// Page out the executable's and shared libraries' read-only mappings. Best effort: on
/// kernels without `MADV_PAGEOUT` (before 5.4) or other systems, nothing happens.
#[cfg(target_os = "linux")]
fn drop_code_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut advised = 0usize;
    for (start, end) in clean_read_only_file_mappings(&smaps) {
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
fn drop_code_pages() {}

/// The address ranges of `/proc/self/smaps` mappings that map a file, are not writable and
/// hold no private copies (`Anonymous: 0 kB`): code and read-only data as the file has them.
/// Writable mappings, anonymous memory and copied pages are not advised: paging those out
/// would mean swapping, not dropping.
fn clean_read_only_file_mappings(smaps: &str) -> Vec<(usize, usize)> {
    let mut chosen = Vec::new();
    // The mapping whose fields are being read, if it is a candidate so far.
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        if let Some(range) = mapping_header(line) {
            chosen.extend(current.take());
            current = range;
        } else if let Some(kib) = line.strip_prefix("Anonymous:")
            && kib.trim() != "0 kB"
        {
            current = None;
        }
    }
    chosen.extend(current);
    chosen
}

/// For a mapping's header line (`address perms offset dev inode pathname`): `Some` of its
/// range if it is a candidate (a file, not writable), `Some(None)` if not; `None` for the
/// field lines that follow it.
fn mapping_header(line: &str) -> Option<Option<(usize, usize)>> {
    let mut fields = line.split_whitespace();
    let (start, end) = fields.next()?.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let path = fields.nth(3);
    let candidate = path.is_some_and(|p| p.starts_with('/')) && !perms.contains('w');
    Some((candidate && end > start).then_some((start, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clean_read_only_file_mappings_are_chosen() {
        let smaps = "\
55d0a0000000-55d0a0400000 r--p 00000000 fd:01 123 /usr/bin/roost
Rss:                 768 kB
Anonymous:             0 kB
55d0a0400000-55d0a1400000 r-xp 00400000 fd:01 123 /usr/bin/roost
Anonymous:             0 kB
55d0a1400000-55d0a1408000 r--p 01400000 fd:01 123 /usr/bin/roost
Anonymous:            28 kB
55d0a1408000-55d0a1410000 rw-p 01408000 fd:01 123 /usr/bin/roost
Anonymous:             8 kB
55d0a2000000-55d0a2100000 rw-p 00000000 00:00 0                          [heap]
Anonymous:          1024 kB
7f0000000000-7f0000100000 rw-p 00000000 00:00 0
Anonymous:             4 kB
7f0000200000-7f0000300000 r-xp 00000000 fd:01 456 /usr/lib/libc.so.6
Anonymous:             0 kB
VmFlags: rd ex mr mw me sd
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
Anonymous:             0 kB
7f0000400000-7f0000500000 r--p 00000000 fd:01 789 /usr/lib/locale/C.utf8/LC_CTYPE
";
        assert_eq!(
            clean_read_only_file_mappings(smaps),
            vec![
                (0x55d0a0000000, 0x55d0a0400000),
                (0x55d0a0400000, 0x55d0a1400000),
                (0x7f0000200000, 0x7f0000300000),
                (0x7f0000400000, 0x7f0000500000),
            ]
        );
    }
}
