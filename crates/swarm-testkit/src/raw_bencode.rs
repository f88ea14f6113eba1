//! A bencode writer for hostile test corpora: dict keys are written in the
//! order given (so unsorted or repeated keys can be made on purpose), integers
//! may be out of any range, and `Raw` puts bytes no writer would produce
//! (`i-0e`, `i01e`) where a value goes.

/// A value to write.
pub enum B {
    I(i128),
    S(Vec<u8>),
    L(Vec<B>),
    D(Vec<(&'static str, B)>),
    /// Raw bytes, written as they are.
    Raw(&'static [u8]),
}

/// A byte string from text.
pub fn s(x: &str) -> B {
    B::S(x.as_bytes().to_vec())
}

/// Appends `b`'s encoding to `out`.
pub fn enc(b: &B, out: &mut Vec<u8>) {
    match b {
        B::I(n) => out.extend_from_slice(format!("i{n}e").as_bytes()),
        B::S(v) => {
            out.extend_from_slice(format!("{}:", v.len()).as_bytes());
            out.extend_from_slice(v);
        }
        B::L(items) => {
            out.push(b'l');
            items.iter().for_each(|i| enc(i, out));
            out.push(b'e');
        }
        B::D(items) => {
            out.push(b'd');
            for (k, v) in items {
                enc(&s(k), out);
                enc(v, out);
            }
            out.push(b'e');
        }
        B::Raw(r) => out.extend_from_slice(r),
    }
}

/// `b`'s encoding.
pub fn bytes(b: &B) -> Vec<u8> {
    let mut out = Vec::new();
    enc(b, &mut out);
    out
}
