//! Identifiers and timestamps the agent stamps on what it creates.

use std::time::{SystemTime, UNIX_EPOCH};

/// A random (version 4) UUID, from the kernel's random source.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    fill_random(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A random u64 (seeds for the scheduler, jitter).
pub fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    fill_random(&mut b);
    u64::from_le_bytes(b)
}

fn fill_random(buf: &mut [u8]) {
    use std::io::Read;
    // /dev/urandom never blocks after boot and never fails short on Linux;
    // if it cannot be opened at all (a broken chroot), fall back to the
    // clock mixed with the address of the buffer, which is unique enough
    // for ids (never for secrets: wren has none of its own).
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_err()
    {
        let mut x = now_nanos() as u64 ^ (buf.as_ptr() as u64).rotate_left(32);
        for byte in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
    }
}

/// Unix time in nanoseconds.
pub fn now_nanos() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_v4_and_distinct() {
        let a = super::uuid();
        let b = super::uuid();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
    }
}
