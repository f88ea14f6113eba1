//! CRC-32C (Castagnoli), bitwise: BEP 42 (a DHT node id tied to its IP)
//! and BEP 40 (canonical peer priority) hash a few bytes with it, once per
//! table admission or connection decision, so no table is worth its cache.

/// The CRC-32C of `parts` one after the other.
pub fn crc32c(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &b in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::crc32c;

    #[test]
    fn the_standard_check_value_and_parts_chain() {
        // The CRC catalogue's check value for CRC-32/ISCSI.
        assert_eq!(crc32c(&[b"123456789"]), 0xe306_9283);
        assert_eq!(crc32c(&[b"1234", b"56789"]), 0xe306_9283);
        assert_eq!(crc32c(&[]), 0);
    }
}
