//! Insights functions with no DataFusion equivalent: IP tests, URL and hex codecs, JSON array
//! tests, `split`, `parseDate`. Each reads its arguments as text, row by row.

use arrow::array::{Array, ArrayRef, AsArray, BooleanBuilder, Float64Builder, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use std::net::IpAddr;
use std::sync::Arc;

/// Declares the text functions once: each variant with the name plans know it by.
macro_rules! text_functions {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum TextFn {
            $($(#[$doc])* $variant,)*
        }

        impl TextFn {
            /// Every text function.
            pub const ALL: &'static [TextFn] = &[$(TextFn::$variant,)*];

            /// The name plans know it by.
            pub fn name(self) -> &'static str {
                match self {
                    $(TextFn::$variant => $name,)*
                }
            }
        }
    };
}

text_functions! {
    IsValidIp => "lw_is_valid_ip",
    IsValidIpV4 => "lw_is_valid_ipv4",
    IsValidIpV6 => "lw_is_valid_ipv6",
    IsIpInSubnet => "lw_is_ip_in_subnet",
    IsIpv4InSubnet => "lw_is_ipv4_in_subnet",
    IsIpv6InSubnet => "lw_is_ipv6_in_subnet",
    IsPrivateIp => "lw_is_private_ip",
    IsPublicIp => "lw_is_public_ip",
    IsReservedIp => "lw_is_reserved_ip",
    Ipv4ToNumber => "lw_ipv4_to_number",
    UrlEncode => "lw_url_encode",
    UrlDecode => "lw_url_decode",
    HexToAscii => "lw_hex_to_ascii",
    HexToDec => "lw_hex_to_dec",
    DecToHex => "lw_dec_to_hex",
    JsonArraySize => "lw_json_array_size",
    JsonArrayContains => "lw_json_array_contains",
    /// `split(s, delimiter)`: a JSON list of the parts.
    Split => "lw_split",
    /// `parseDate(s, javaPattern)`: epoch milliseconds (UTC).
    ParseDate => "lw_parse_date",
    /// The `pattern` command's template of a line (not callable by name).
    Pattern => "lw_pattern_template",
    /// The severity a pattern names (not callable by name).
    Severity => "lw_pattern_severity",
}

impl TextFn {
    /// The function as a DataFusion UDF.
    pub fn udf(self) -> ScalarUDF {
        ScalarUDF::from(TextUdf {
            f: self,
            signature: Signature::variadic_any(Volatility::Immutable),
        })
    }
}

enum Out {
    Bool,
    Num,
    Text,
}

impl TextFn {
    fn out(self) -> Out {
        use TextFn::*;
        match self {
            Ipv4ToNumber | HexToDec | JsonArraySize | ParseDate => Out::Num,
            UrlEncode | UrlDecode | HexToAscii | DecToHex | Pattern | Severity | Split => Out::Text,
            _ => Out::Bool,
        }
    }

    pub fn call(self, args: Vec<Expr>) -> Expr {
        self.udf().call(args)
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct TextUdf {
    f: TextFn,
    signature: Signature,
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse().ok()
}

fn in_subnet(ip: &str, cidr: &str) -> Option<bool> {
    let ip = parse_ip(ip)?;
    let (net, bits) = cidr.trim().split_once('/')?;
    let net: IpAddr = net.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    Some(match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    })
}

fn is_private(ip: IpAddr) -> bool {
    match ip {
        // RFC 1918.
        IpAddr::V4(a) => a.is_private(),
        // Unique local addresses (fc00::/7), the IPv6 counterpart.
        IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

fn is_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            a.is_loopback()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_broadcast()
                || a.is_documentation()
                || a.is_multicast()
                || o[0] == 0
                || o[0] >= 240
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
        }
        IpAddr::V6(a) => {
            a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (a.segments()[0] & 0xffc0) == 0xfe80
                || a.segments()[0] == 0x2001 && a.segments()[1] == 0x0db8
        }
    }
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn url_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let h = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A Java `DateTimeFormatter` pattern as a chrono format string (the common letters).
fn java_to_chrono(p: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = p.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'literal' ('' is a quote).
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '%' {
                    out.push('%');
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        let mut n = 1;
        while i + n < chars.len() && chars[i + n] == c {
            n += 1;
        }
        let spec = match (c, n) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M', 1 | 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', _) => "%d",
            ('H', _) => "%H",
            ('h', _) => "%I",
            ('m', _) => "%M",
            ('s', _) => "%S",
            ('S', 3) => "%3f",
            ('S', 6) => "%6f",
            ('S', 9) => "%9f",
            ('S', _) => "%f",
            ('a', _) => "%p",
            ('E', 4) => "%A",
            ('E', _) => "%a",
            ('X', 1) | ('Z', _) | ('x', 1) => "%z",
            ('X' | 'x', _) => "%:z",
            ('%', _) => "%%",
            _ => {
                for _ in 0..n {
                    out.push(c);
                }
                i += n;
                continue;
            }
        };
        out.push_str(spec);
        i += n;
    }
    out
}

/// `parseDate`: a date-time written in a Java pattern, as epoch ms; without an offset, UTC.
fn parse_date(s: &str, java: &str) -> Option<i64> {
    let fmt = java_to_chrono(java);
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_str(s, &fmt) {
        return Some(t.timestamp_millis());
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, &fmt) {
        return Some(t.and_utc().timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, &fmt)
        .ok()
        .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
}

fn hex_digits(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s)
}

fn hex_to_ascii(s: &str) -> Option<String> {
    let h = hex_digits(s);
    if h.len() % 2 != 0 {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(h.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn dec_to_hex(s: &str) -> Option<String> {
    let v: f64 = s.trim().parse().ok()?;
    let n = v.trunc() as i64;
    Some(if n < 0 {
        format!("-0x{:x}", n.unsigned_abs())
    } else {
        format!("0x{n:x}")
    })
}

fn json_array(s: &str) -> Option<Vec<serde_json::Value>> {
    match serde_json::from_str::<serde_json::Value>(s.trim()).ok()? {
        serde_json::Value::Array(a) => Some(a),
        _ => None,
    }
}

enum Value {
    Bool(bool),
    Num(f64),
    Text(String),
}

fn eval(f: TextFn, a: &str, b: Option<&str>) -> Option<Value> {
    use TextFn::*;
    Some(match f {
        Pattern => Value::Text(crate::pattern::template(a)),
        Split => {
            let parts: Vec<String> = match b? {
                "" => a.chars().map(String::from).collect(),
                d => a.split(d).map(String::from).collect(),
            };
            Value::Text(serde_json::to_string(&parts).ok()?)
        }
        ParseDate => Value::Num(parse_date(a, b?)? as f64),
        Severity => Value::Text(crate::pattern::severity(a)?.to_string()),
        IsValidIp => Value::Bool(parse_ip(a).is_some()),
        IsValidIpV4 => Value::Bool(matches!(parse_ip(a), Some(IpAddr::V4(_)))),
        IsValidIpV6 => Value::Bool(matches!(parse_ip(a), Some(IpAddr::V6(_)))),
        IsIpInSubnet => Value::Bool(in_subnet(a, b?).unwrap_or(false)),
        IsIpv4InSubnet => Value::Bool(
            matches!(parse_ip(a), Some(IpAddr::V4(_))) && in_subnet(a, b?).unwrap_or(false),
        ),
        IsIpv6InSubnet => Value::Bool(
            matches!(parse_ip(a), Some(IpAddr::V6(_))) && in_subnet(a, b?).unwrap_or(false),
        ),
        IsPrivateIp => Value::Bool(parse_ip(a).is_some_and(is_private)),
        IsPublicIp => {
            Value::Bool(parse_ip(a).is_some_and(|ip| !is_private(ip) && !is_reserved(ip)))
        }
        IsReservedIp => Value::Bool(parse_ip(a).is_some_and(is_reserved)),
        Ipv4ToNumber => match parse_ip(a)? {
            IpAddr::V4(v) => Value::Num(u32::from(v) as f64),
            IpAddr::V6(_) => return None,
        },
        UrlEncode => Value::Text(url_encode(a)),
        UrlDecode => Value::Text(url_decode(a)?),
        HexToAscii => Value::Text(hex_to_ascii(a)?),
        HexToDec => Value::Num(i64::from_str_radix(hex_digits(a), 16).ok()? as f64),
        DecToHex => Value::Text(dec_to_hex(a)?),
        JsonArraySize => Value::Num(json_array(a)?.len() as f64),
        JsonArrayContains => {
            let needle = b?;
            Value::Bool(json_array(a).is_some_and(|arr| {
                arr.iter().any(|v| match v {
                    serde_json::Value::String(s) => s == needle,
                    serde_json::Value::Number(n) => n.to_string() == needle,
                    serde_json::Value::Bool(x) => x.to_string() == needle,
                    _ => false,
                })
            }))
        }
    })
}

impl ScalarUDFImpl for TextUdf {
    fn name(&self) -> &str {
        self.f.name()
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(match self.f.out() {
            Out::Bool => DataType::Boolean,
            Out::Num => DataType::Float64,
            Out::Text => DataType::Utf8,
        })
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let cols: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| {
                let arr = a.to_array(rows)?;
                Ok(arrow::compute::cast(&arr, &DataType::Utf8)?)
            })
            .collect::<Result<_>>()?;
        let text: Vec<_> = cols.iter().map(|c| c.as_string::<i32>()).collect();
        let get = |c: usize, i: usize| -> Option<&str> {
            let a = text.get(c)?;
            a.is_valid(i).then(|| a.value(i))
        };
        let values = (0..rows).map(|i| get(0, i).and_then(|a| eval(self.f, a, get(1, i))));
        let out: ArrayRef = match self.f.out() {
            Out::Bool => {
                let mut b = BooleanBuilder::with_capacity(rows);
                values.for_each(|v| match v {
                    Some(Value::Bool(x)) => b.append_value(x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            Out::Num => {
                let mut b = Float64Builder::with_capacity(rows);
                values.for_each(|v| match v {
                    Some(Value::Num(x)) => b.append_value(x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
            Out::Text => {
                let mut b = StringBuilder::new();
                values.for_each(|v| match v {
                    Some(Value::Text(x)) => b.append_value(x),
                    _ => b.append_null(),
                });
                Arc::new(b.finish())
            }
        };
        Ok(ColumnarValue::Array(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_and_codec_helpers() {
        assert_eq!(in_subnet("10.1.2.3", "10.0.0.0/8"), Some(true));
        assert_eq!(in_subnet("11.1.2.3", "10.0.0.0/8"), Some(false));
        assert_eq!(in_subnet("2001:db8::1", "2001:db8::/32"), Some(true));
        assert!(is_private("192.168.1.1".parse().unwrap()));
        assert!(!is_private("8.8.8.8".parse().unwrap()));
        assert!(is_reserved("127.0.0.1".parse().unwrap()));
        assert_eq!(url_encode("a b/c?d=1"), "a+b%2Fc%3Fd%3D1");
        assert_eq!(url_decode("a+b%2Fc%3Fd%3D1").as_deref(), Some("a b/c?d=1"));
        assert_eq!(hex_to_ascii("0x48656c6c6f").as_deref(), Some("Hello"));
        assert_eq!(dec_to_hex("255").as_deref(), Some("0xff"));
        assert_eq!(dec_to_hex("-255.7").as_deref(), Some("-0xff"));
        assert_eq!(
            parse_date("2024-05-19 06:10:00.250", "yyyy-MM-dd HH:mm:ss.SSS"),
            Some(1716099000250)
        );
        assert_eq!(
            parse_date("19/May/2024:06:10:00 +0200", "dd/MMM/yyyy:HH:mm:ss Z"),
            Some(1716091800000)
        );
        assert_eq!(parse_date("2024-05-19", "yyyy-MM-dd"), Some(1716076800000));
        assert_eq!(
            parse_date("2024-05-19T06:10:00Z", "yyyy-MM-dd'T'HH:mm:ss'Z'"),
            Some(1716099000000)
        );
        assert_eq!(parse_date("garbage", "yyyy-MM-dd"), None);
    }
}
