//! API errors in AWS's shape: an exception name (`__type`), a message, and an HTTP status.

use std::fmt;

/// The exception names CloudWatch Logs returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    ResourceNotFound,
    ResourceAlreadyExists,
    InvalidParameter,
    LimitExceeded,
    OperationAborted,
    ServiceUnavailable,
    Throttling,
    Validation,
    MalformedQuery,
    InvalidOperation,
    UnknownOperation,
    SerializationException,
    MissingAction,
    TooManyTags,
    AccessDenied,
    /// An access key id no credential has.
    UnrecognizedClient,
    /// A signature that does not match, or one outside the clock-skew window.
    InvalidSignature,
    /// An Authorization header missing one of its parts.
    IncompleteSignature,
    /// No Authorization header where one is required.
    MissingAuthenticationToken,
    /// Temporary credentials past their expiry.
    ExpiredToken,
    /// A group's KMS key is disabled (KMS's own error, passed on).
    KmsDisabled,
    /// A group's KMS key is pending deletion or otherwise not in a usable state.
    KmsInvalidState,
    /// A group's KMS key does not exist.
    KmsNotFound,
    /// The KMS holding a group's key cannot be reached.
    KmsUnavailable,
}

/// Every kind with its `__type` and HTTP status: the one place they are declared.
const KINDS: [(ErrorKind, &str, u16); 24] = [
    (
        ErrorKind::ResourceNotFound,
        "ResourceNotFoundException",
        400,
    ),
    (
        ErrorKind::ResourceAlreadyExists,
        "ResourceAlreadyExistsException",
        400,
    ),
    (
        ErrorKind::InvalidParameter,
        "InvalidParameterException",
        400,
    ),
    (ErrorKind::LimitExceeded, "LimitExceededException", 400),
    (
        ErrorKind::OperationAborted,
        "OperationAbortedException",
        400,
    ),
    (
        ErrorKind::ServiceUnavailable,
        "ServiceUnavailableException",
        503,
    ),
    (ErrorKind::Throttling, "ThrottlingException", 400),
    (ErrorKind::Validation, "ValidationException", 400),
    (ErrorKind::MalformedQuery, "MalformedQueryException", 400),
    (
        ErrorKind::InvalidOperation,
        "InvalidOperationException",
        400,
    ),
    (
        ErrorKind::UnknownOperation,
        "UnknownOperationException",
        400,
    ),
    (
        ErrorKind::SerializationException,
        "SerializationException",
        400,
    ),
    (ErrorKind::MissingAction, "MissingAction", 400),
    (ErrorKind::TooManyTags, "TooManyTagsException", 400),
    (ErrorKind::AccessDenied, "AccessDeniedException", 400),
    (
        ErrorKind::UnrecognizedClient,
        "UnrecognizedClientException",
        400,
    ),
    (
        ErrorKind::InvalidSignature,
        "InvalidSignatureException",
        400,
    ),
    (
        ErrorKind::IncompleteSignature,
        "IncompleteSignatureException",
        400,
    ),
    (
        ErrorKind::MissingAuthenticationToken,
        "MissingAuthenticationTokenException",
        400,
    ),
    (ErrorKind::ExpiredToken, "ExpiredTokenException", 400),
    (ErrorKind::KmsDisabled, "DisabledException", 400),
    (ErrorKind::KmsInvalidState, "KMSInvalidStateException", 400),
    (ErrorKind::KmsNotFound, "NotFoundException", 400),
    (ErrorKind::KmsUnavailable, "KeyUnavailableException", 500),
];

impl ErrorKind {
    fn entry(self) -> &'static (ErrorKind, &'static str, u16) {
        KINDS
            .iter()
            .find(|(k, _, _)| *k == self)
            .expect("every kind is in KINDS")
    }

    /// The `__type` string clients match on.
    pub fn type_name(self) -> &'static str {
        self.entry().1
    }

    /// The kind a `__type` names (the part after a `#`, if any), for errors another server sent.
    pub fn from_type_name(name: &str) -> Option<ErrorKind> {
        let name = name.rsplit('#').next().unwrap_or(name);
        KINDS
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| *k)
    }

    /// HTTP status: 400 for client errors, 503 for faults.
    pub fn http_status(self) -> u16 {
        self.entry().2
    }
}

/// An error as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// Where in a query the error is (0-based character offsets, start and end), reported as
    /// MalformedQueryException's `queryCompileError`.
    pub location: Option<(usize, usize)>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            location: None,
        }
    }
    /// A MalformedQueryException at characters `start..end` of the query.
    pub fn malformed_at(message: impl Into<String>, start: usize, end: usize) -> Self {
        ApiError {
            location: Some((start, end)),
            ..Self::new(ErrorKind::MalformedQuery, message)
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn group_not_found() -> Self {
        Self::new(
            ErrorKind::ResourceNotFound,
            "The specified log group does not exist.",
        )
    }
    pub fn stream_not_found() -> Self {
        Self::new(
            ErrorKind::ResourceNotFound,
            "The specified log stream does not exist.",
        )
    }
    pub fn already_exists() -> Self {
        Self::new(
            ErrorKind::ResourceAlreadyExists,
            "The specified resource already exists.",
        )
    }
    pub fn bad_token() -> Self {
        Self::invalid("The specified nextToken is invalid.")
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }
    /// AWS's wording for a failed member constraint (the value quoted whole, as AWS does).
    pub fn constraint(value: &str, param: &str, constraint: &str) -> Self {
        Self::invalid(format!(
            "1 validation error detected: Value '{value}' at '{param}' failed to satisfy constraint: Member must {constraint}"
        ))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.type_name(), self.message)
    }
}

impl std::error::Error for ApiError {}
