//! A minimal, lenient bencode reader (BEP 3) for tracker responses and the
//! BEP 10 extension handshake, until the crate's strict `bencode` module
//! lands; then this goes away. Nesting depth is bounded; sizes are bounded by
//! the input, which the callers cap.

/// Nesting deeper than this is refused (tracker responses need 4).
const DEPTH_MAX: usize = 32;

#[derive(Debug)]
pub(crate) enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    pub(crate) fn as_dict(&self) -> Option<&[(&'a [u8], Value<'a>)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
    pub(crate) fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

pub(crate) fn get<'d, 'a>(dict: &'d [(&'a [u8], Value<'a>)], key: &[u8]) -> Option<&'d Value<'a>> {
    dict.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

pub(crate) fn parse(input: &[u8]) -> Result<Value<'_>, &'static str> {
    let mut pos = 0;
    let value = parse_at(input, &mut pos, 0)?;
    if pos != input.len() {
        return Err("trailing bytes after the response");
    }
    Ok(value)
}

fn parse_at<'a>(input: &'a [u8], pos: &mut usize, depth: usize) -> Result<Value<'a>, &'static str> {
    if depth > DEPTH_MAX {
        return Err("nested too deeply");
    }
    match input.get(*pos) {
        None => Err("truncated"),
        Some(b'i') => {
            *pos += 1;
            let end = find(input, *pos, b'e')?;
            let text = std::str::from_utf8(&input[*pos..end]).map_err(|_| "bad integer")?;
            let i = text.parse::<i64>().map_err(|_| "bad integer")?;
            *pos = end + 1;
            Ok(Value::Int(i))
        }
        Some(b'l') => {
            *pos += 1;
            let mut items = Vec::new();
            while input.get(*pos) != Some(&b'e') {
                items.push(parse_at(input, pos, depth + 1)?);
            }
            *pos += 1;
            Ok(Value::List(items))
        }
        Some(b'd') => {
            *pos += 1;
            let mut items = Vec::new();
            while input.get(*pos) != Some(&b'e') {
                let key = parse_at(input, pos, depth + 1)?
                    .as_bytes()
                    .ok_or("dictionary key is not a string")?;
                let value = parse_at(input, pos, depth + 1)?;
                items.push((key, value));
            }
            *pos += 1;
            Ok(Value::Dict(items))
        }
        Some(b'0'..=b'9') => {
            let colon = find(input, *pos, b':')?;
            let text = std::str::from_utf8(&input[*pos..colon]).map_err(|_| "bad length")?;
            let len = text.parse::<usize>().map_err(|_| "bad length")?;
            let start = colon + 1;
            let end = start.checked_add(len).ok_or("bad length")?;
            let bytes = input.get(start..end).ok_or("truncated string")?;
            *pos = end;
            Ok(Value::Bytes(bytes))
        }
        Some(_) => Err("unexpected byte"),
    }
}

fn find(input: &[u8], from: usize, byte: u8) -> Result<usize, &'static str> {
    input[from..]
        .iter()
        .position(|&b| b == byte)
        .map(|i| from + i)
        .ok_or("truncated")
}
