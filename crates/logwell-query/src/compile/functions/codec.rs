//! Hashes and encodings: MD5, SHA-256, Base64, URL and hex.

use super::{text_fn, values, Function, Returns};
use crate::compile::*;

const STR: Returns = Returns::Fixed(Ty::Str);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["md5"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "The MD5 digest, hex.",
        build: values(|_, a| Ok(t(f::md5(text(a[0].clone())), Ty::Str))),
    },
    Function {
        names: &["sha256"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "The SHA-256 digest, hex.",
        build: values(|_, a| {
            let digest = f::sha256(text(a[0].clone()));
            Ok(t(f::encode(digest, lit("hex")), Ty::Str))
        }),
    },
    Function {
        names: &["base64Encode"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Base64 (padded) of the text's bytes.",
        build: values(|_, a| Ok(t(f::encode(text(a[0].clone()), lit("base64pad")), Ty::Str))),
    },
    Function {
        names: &["base64Decode"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Base64 decoded to text.",
        build: values(|_, a| {
            let bytes = f::decode(text(a[0].clone()), lit("base64pad"));
            Ok(t(bytes.cast_to_type(DataType::Utf8), Ty::Str))
        }),
    },
    Function {
        names: &["urlEncode"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Percent-encoded for a URL.",
        build: values(|_, a| text_fn(TextFn::UrlEncode, a, Ty::Str)),
    },
    Function {
        names: &["urlDecode"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Percent-decoded.",
        build: values(|_, a| text_fn(TextFn::UrlDecode, a, Ty::Str)),
    },
    Function {
        names: &["hexToAscii"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "Hex digits decoded to text.",
        build: values(|_, a| text_fn(TextFn::HexToAscii, a, Ty::Str)),
    },
    Function {
        names: &["hexToDec"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Num),
        doc: "Hex digits as a number.",
        build: values(|_, a| text_fn(TextFn::HexToDec, a, Ty::Num)),
    },
    Function {
        names: &["decToHex"],
        args: (1, 1),
        usage: "",
        returns: STR,
        doc: "A number in hex digits.",
        build: values(|_, a| text_fn(TextFn::DecToHex, a, Ty::Str)),
    },
];
