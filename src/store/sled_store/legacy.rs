//! The first store layout (one JSON record per finding under `V`, pointers under `F`, one index
//! key per indicator), kept only to migrate such stores when they are opened.

/// Namespaces of the first layout. None of them is used by the current one.
#[cfg(test)]
pub(super) const PREFIXES: [u8; 7] = [b'F', b'V', b'I', b'N', b'D', b'E', b'A'];

/// Namespace of the records.
pub(super) const RECORD: u8 = b'V';

/// The JSON part of a first-layout record (after its binary header), or `None`.
pub(super) fn record_json(v: &[u8]) -> Option<&[u8]> {
    const FIXED: usize = 10;
    if v.len() < FIXED + 2 || v[0] != 1 {
        return None;
    }
    let sl = *v.get(FIXED)? as usize;
    let s_end = FIXED + 1 + sl;
    let fl = *v.get(s_end)? as usize;
    v.get(s_end + 1 + fl..)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_json_after_the_header() {
        let mut v = vec![1, 0];
        v.extend_from_slice(&7i64.to_be_bytes());
        v.extend_from_slice(b"\x04hibp\x08breaches{}");
        assert_eq!(super::record_json(&v), Some(&b"{}"[..]));
        assert_eq!(super::record_json(b"{\"a\":1}"), None);
    }
}
