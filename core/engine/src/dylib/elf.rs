//! A bounds check of an ELF file's headers before the system loader maps it.
//!
//! The loader maps the segments the headers describe; a truncated file then fails with SIGBUS
//! when a page past its end is touched, killing the process with no message. Checking that every
//! segment and section the headers name lies inside the file turns that into an error. Written
//! here because it is twenty lines of header reads: ELF parsing crates read what they are asked
//! for and do not promise this check.

/// Why the ELF image `bytes` cannot be what its headers say; `Ok` for an image whose headers,
/// segments and sections all lie inside it, and for anything that is not ELF (the loader refuses
/// those with a message of its own).
pub fn check(bytes: &[u8]) -> Result<(), String> {
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(());
    }
    let wide = match bytes.get(4) {
        Some(1) => false,
        Some(2) => true,
        _ => return Err("its ELF header is cut short or has an unknown class".into()),
    };
    let little = match bytes.get(5) {
        Some(1) => true,
        Some(2) => false,
        _ => return Err("its ELF header is cut short or has an unknown byte order".into()),
    };
    let read = |at: usize, len: usize| -> Result<u64, String> {
        let field = bytes.get(at..at + len).ok_or("its headers end past the end of the file")?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { field[len - 1 - i] } else { field[i] };
            value = value << 8 | u64::from(byte);
        }
        Ok(value)
    };
    let word = if wide { 8 } else { 4 };
    let (ph_at, sh_at, sizes_at) = if wide { (0x20, 0x28, 0x36) } else { (0x1c, 0x20, 0x2a) };
    let table = |offset: u64, entry: u64, count: u64| -> Result<Vec<u64>, String> {
        let end = entry.checked_mul(count).and_then(|n| n.checked_add(offset));
        if end.is_none_or(|end| end > bytes.len() as u64) {
            return Err("its header tables end past the end of the file".into());
        }
        Ok((0..count).map(|i| offset + i * entry).collect())
    };
    let within = |offset: u64, size: u64, what: &str| -> Result<(), String> {
        match offset.checked_add(size) {
            Some(end) if end <= bytes.len() as u64 => Ok(()),
            _ => Err(format!(
                "a {what} ends at byte {} but the file has {} bytes",
                offset.saturating_add(size),
                bytes.len()
            )),
        }
    };
    let (ph_entry, ph_count) = (read(sizes_at, 2)?, read(sizes_at + 2, 2)?);
    for at in table(read(ph_at, word)?, ph_entry, ph_count)? {
        let at = at as usize;
        let (offset, size) = if wide {
            (read(at + 8, 8)?, read(at + 32, 8)?)
        } else {
            (read(at + 4, 4)?, read(at + 16, 4)?)
        };
        within(offset, size, "segment")?;
    }
    let (sh_entry, sh_count) = (read(sizes_at + 4, 2)?, read(sizes_at + 6, 2)?);
    let sh_offset = read(sh_at, word)?;
    if sh_offset != 0 {
        for at in table(sh_offset, sh_entry, sh_count)? {
            let at = at as usize;
            // Sections of type NOBITS (8, e.g. .bss) occupy no bytes of the file.
            if read(at + 4, 4)? == 8 {
                continue;
            }
            let (offset, size) = if wide {
                (read(at + 24, 8)?, read(at + 32, 8)?)
            } else {
                (read(at + 16, 4)?, read(at + 20, 4)?)
            };
            within(offset, size, "section")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cut_of_a_real_library_is_refused_and_the_whole_is_accepted() {
        // This test binary is itself an ELF file with segments and sections to check.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if !me.starts_with(b"\x7fELF") {
            return;
        }
        assert_eq!(check(&me), Ok(()));
        for cut in [0, 4, 5, 6, 20, 63, 64, 200, me.len() / 3, me.len() / 2, me.len() - 1] {
            if cut >= 4 {
                assert!(check(&me[..cut]).is_err(), "a cut at {cut} of {} bytes passed", me.len());
            }
        }
        assert_eq!(check(b"not a library"), Ok(()));
    }
}
