//! IP address tests and conversions.

use super::{text_fn, values, Function, Returns};
use crate::compile::*;

const BOOL: Returns = Returns::Fixed(Ty::Bool);

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        names: &["isValidIp"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the text is an IPv4 or IPv6 address.",
        build: values(|_, a| text_fn(TextFn::IsValidIp, a, Ty::Bool)),
    },
    Function {
        names: &["isValidIpV4"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the text is an IPv4 address.",
        build: values(|_, a| text_fn(TextFn::IsValidIpV4, a, Ty::Bool)),
    },
    Function {
        names: &["isValidIpV6"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the text is an IPv6 address.",
        build: values(|_, a| text_fn(TextFn::IsValidIpV6, a, Ty::Bool)),
    },
    Function {
        names: &["isIpInSubnet"],
        args: (2, 2),
        usage: "an address and a CIDR range",
        returns: BOOL,
        doc: "Whether the address is in the CIDR range.",
        build: values(|_, a| text_fn(TextFn::IsIpInSubnet, a, Ty::Bool)),
    },
    Function {
        names: &["isIpv4InSubnet"],
        args: (2, 2),
        usage: "an address and a CIDR range",
        returns: BOOL,
        doc: "Whether the IPv4 address is in the CIDR range.",
        build: values(|_, a| text_fn(TextFn::IsIpv4InSubnet, a, Ty::Bool)),
    },
    Function {
        names: &["isIpv6InSubnet"],
        args: (2, 2),
        usage: "an address and a CIDR range",
        returns: BOOL,
        doc: "Whether the IPv6 address is in the CIDR range.",
        build: values(|_, a| text_fn(TextFn::IsIpv6InSubnet, a, Ty::Bool)),
    },
    Function {
        names: &["isPrivateIp"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the address is private (RFC 1918, unique local).",
        build: values(|_, a| text_fn(TextFn::IsPrivateIp, a, Ty::Bool)),
    },
    Function {
        names: &["isPublicIp"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the address is public.",
        build: values(|_, a| text_fn(TextFn::IsPublicIp, a, Ty::Bool)),
    },
    Function {
        names: &["isReservedIp"],
        args: (1, 1),
        usage: "",
        returns: BOOL,
        doc: "Whether the address is reserved (loopback, link-local, documentation...).",
        build: values(|_, a| text_fn(TextFn::IsReservedIp, a, Ty::Bool)),
    },
    Function {
        names: &["ipv4ToNumber"],
        args: (1, 1),
        usage: "",
        returns: Returns::Fixed(Ty::Num),
        doc: "An IPv4 address as a 32-bit number.",
        build: values(|_, a| text_fn(TextFn::Ipv4ToNumber, a, Ty::Num)),
    },
];
